"""Phase 1 of ambient-noise cross-correlation (the dispel4py paper's seismology use case),
as pure functions of a trace: numpy arrays in, numpy arrays out.

The steps and their settings are those of the original workflow: decimate to 4 samples
per second, detrend ("simple": the line through the end points), demean, remove the
instrument response with the pre-filter (0.005, 0.006, 30, 35) Hz, bandpass 0.01-1 Hz
with 4 corners (causal, not zero-phase), envelope normalisation over N = 15 samples, and
the FFT of the trace padded for correlation lags of up to 5000 samples.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

TARGET_SPS = 4.0  # Nyquist 2 Hz, above the 1 Hz top of the band
PRE_FILT = (0.005, 0.006, 30.0, 35.0)
FREQMIN, FREQMAX, CORNERS = 0.01, 1.0, 4
ENVELOPE_HALF_WINDOW = 15
MAX_SHIFT = 5000  # samples of correlation lag the spectrum must hold without wrap-around
_MAX_STAGE = 13  # scipy's IIR decimation is accurate up to this factor per stage


def decimation_factor(fs: float, target_sps: float = TARGET_SPS) -> int:
    """The integer factor from `fs` to `target_sps`; ValueError if there is none."""
    factor = round(fs / target_sps)
    if factor < 1 or abs(factor * target_sps - fs) > 1e-9 * fs:
        raise ValueError(f"cannot decimate {fs} samples/s to {target_sps} by an integer factor")
    return factor


def _stages(factor: int) -> list[int]:
    stages, rest = [], factor
    while rest > 1:
        step = next((d for d in range(min(rest, _MAX_STAGE), 1, -1) if rest % d == 0), rest)
        stages.append(step)
        rest //= step
    return stages


def decimate(data: np.ndarray, factor: int) -> np.ndarray:
    """Anti-alias low-pass and downsample by `factor`, in stages of at most 13."""
    out = np.asarray(data, dtype=np.float64)
    for step in _stages(factor):
        out = signal.decimate(out, step, ftype="iir", zero_phase=True)
    return out


def detrend_simple(data: np.ndarray) -> np.ndarray:
    """Subtract the straight line through the first and last samples."""
    n = len(data)
    if n < 2:
        return data - data
    return data - np.linspace(data[0], data[-1], n)


def demean(data: np.ndarray) -> np.ndarray:
    return data - data.mean()


def cosine_prefilter(freqs: np.ndarray, corners: tuple[float, float, float, float] = PRE_FILT) -> np.ndarray:
    """1 between f2 and f3, 0 outside f1..f4, half-cosine ramps between."""
    f1, f2, f3, f4 = corners
    gain = np.zeros_like(freqs)
    rise = (freqs >= f1) & (freqs < f2)
    gain[rise] = 0.5 * (1 - np.cos(np.pi * (freqs[rise] - f1) / (f2 - f1)))
    gain[(freqs >= f2) & (freqs <= f3)] = 1.0
    fall = (freqs > f3) & (freqs <= f4)
    gain[fall] = 0.5 * (1 + np.cos(np.pi * (freqs[fall] - f3) / (f4 - f3)))
    return gain


def remove_flat_response(
    data: np.ndarray, fs: float, sensitivity: float, pre_filt: tuple[float, float, float, float] = PRE_FILT
) -> np.ndarray:
    """Counts to ground velocity (m/s) for an instrument with a flat response of
    `sensitivity` counts per m/s: a 5% cosine taper at each end, then the deconvolution
    in the frequency domain under the pre-filter, zero-padded against wrap-around."""
    n = len(data)
    nfft = 2 * n
    spectrum = np.fft.rfft(data * signal.windows.tukey(n, 0.1), nfft)
    spectrum *= cosine_prefilter(np.fft.rfftfreq(nfft, 1.0 / fs), pre_filt) / sensitivity
    return np.fft.irfft(spectrum, nfft)[:n]


def bandpass(
    data: np.ndarray, fs: float, freqmin: float = FREQMIN, freqmax: float = FREQMAX, corners: int = CORNERS
) -> np.ndarray:
    """Causal Butterworth bandpass (second-order sections)."""
    if freqmax >= fs / 2:
        raise ValueError(f"bandpass top {freqmax} Hz is not below the Nyquist frequency {fs / 2} Hz")
    sos = signal.butter(corners, [freqmin, freqmax], btype="bandpass", fs=fs, output="sos")
    return signal.sosfilt(sos, data)


def envelope_normalise(data: np.ndarray, half_window: int = ENVELOPE_HALF_WINDOW) -> np.ndarray:
    """Divide by the envelope smoothed over 2 * half_window + 1 samples, so that
    earthquakes and instrument glitches weigh no more than the ambient noise."""
    envelope = np.abs(signal.hilbert(data))
    width = 2 * half_window + 1
    # the centred moving average, as long as the trace even when the trace is shorter than
    # the window (np.convolve's "same" returns the longer of the two)
    smooth = np.convolve(envelope, np.full(width, 1.0 / width))[half_window : half_window + len(data)]
    return np.divide(data, smooth, out=np.zeros_like(data), where=smooth > 0)


def next_pow_2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def spectrum(data: np.ndarray, max_shift: int = MAX_SHIFT) -> np.ndarray:
    """The FFT for correlation: 2^k points holding the trace plus `max_shift` lags. Only
    the non-negative frequencies are kept (rfft): the rest of a real trace's spectrum is
    their mirror, and phase 2 correlates with irfft."""
    nfft = next_pow_2(max(2 * max_shift + 1, len(data) + max_shift))
    return np.fft.rfft(np.asarray(data, dtype=np.float64), nfft)
