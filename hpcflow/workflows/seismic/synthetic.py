"""Deterministic synthetic broadband records: one hour of BHZ at 20 samples/s per station
of a made-up network "XX" (the FDSN code for data that is not real).

Each record is a shared ambient field (microseism peaks at 0.07 and 0.14 Hz) delayed by
the station's distance from a distant source at 3 km/s, plus local noise, one regional
earthquake, a DC offset and a drift, seen through a flat instrument response and
digitised to int32 counts. So the correlation of two stations' spectra has a peak at
their delay, and every phase-1 step has something to remove.
"""

from __future__ import annotations

import numpy as np

from ...grouping import stable_hash

NETWORK = "XX"
CHANNEL = "BHZ"
SAMPLING_RATE = 20.0
DURATION_S = 3600
WAVE_SPEED_M_S = 3000.0
APERTURE_M = 100_000.0  # stations lie within this distance of the network's centre
SENSITIVITY = 6.0e8  # counts per m/s, about that of a broadband seismometer and digitiser
FIELD_AMPLITUDE_M_S = 1e-6


def station_code(index: int) -> str:
    return f"S{index + 1:03d}"


def seed_id(index: int) -> str:
    """NET.STA.LOC.CHA with an empty location code, as SEED names a channel."""
    return f"{NETWORK}.{station_code(index)}..{CHANNEL}"


def _rng(*key: object) -> np.random.Generator:
    return np.random.default_rng(stable_hash(key))


def _shaped_noise(rng: np.random.Generator, n: int, fs: float) -> np.ndarray:
    """Gaussian noise with the ambient spectrum: two microseism peaks over a weak floor."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / fs)
    shape = np.exp(-0.5 * ((f - 0.14) / 0.04) ** 2) + 0.4 * np.exp(-0.5 * ((f - 0.07) / 0.015) ** 2) + 0.02
    out = np.fft.irfft(spec * shape, n)
    return out / out.std()


def ambient_field(seed: int, n: int, fs: float = SAMPLING_RATE) -> np.ndarray:
    """The wavefield every station records, `n` samples long."""
    return FIELD_AMPLITUDE_M_S * _shaped_noise(_rng("field", seed), n, fs)


def station_offset_m(index: int, seed: int) -> float:
    """Distance along the source's direction of station `index` from the network's centre."""
    return float(_rng("station", seed, index).uniform(-APERTURE_M, APERTURE_M))


def synthetic_record(index: int, seed: int = 0) -> dict:
    """Station `index`'s hour: `{station, fs, sensitivity, data}` with int32 counts."""
    fs, n = SAMPLING_RATE, int(DURATION_S * SAMPLING_RATE)
    max_lag = int(APERTURE_M / WAVE_SPEED_M_S * fs)
    field = ambient_field(seed, n + 2 * max_lag, fs)
    delay = round(station_offset_m(index, seed) / WAVE_SPEED_M_S * fs)  # samples after the centre
    start = max_lag - delay
    rng = _rng("record", seed, index)
    velocity = field[start : start + n] + 0.3 * FIELD_AMPLITUDE_M_S * _shaped_noise(rng, n, fs)
    t = np.arange(n) / fs
    onset = 1800.0 + delay / fs
    after = np.clip(t - onset, 0.0, None)
    velocity += 20 * FIELD_AMPLITUDE_M_S * (t >= onset) * np.exp(-after / 60.0) * np.sin(2 * np.pi * 0.5 * after)
    sensitivity = SENSITIVITY * float(rng.uniform(0.9, 1.1))
    counts = velocity * sensitivity + float(rng.uniform(-2000, 2000)) + float(rng.uniform(-1, 1)) * t
    return {"station": seed_id(index), "fs": fs, "sensitivity": sensitivity, "data": np.round(counts).astype(np.int32)}
