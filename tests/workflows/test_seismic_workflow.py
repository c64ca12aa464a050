"""The seismic workflow: the phase-1 signal steps, the synthetic records, and runs whose
.npy files must be byte-equal in every mapping."""

from __future__ import annotations

import pickle
from importlib.util import find_spec

import numpy as np
import pytest

from hpcflow import run
from hpcflow.errors import UsageError
from hpcflow.workflows.seismic import build, science
from hpcflow.workflows.seismic.synthetic import SAMPLING_RATE, seed_id, station_offset_m, synthetic_record

FS = 4.0


def sine(freq: float, seconds: float, fs: float = FS, amplitude: float = 1.0) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * fs)) / fs)


def test_decimation_factors_and_lengths():
    assert science.decimation_factor(20.0) == 5
    assert science.decimation_factor(100.0) == 25
    with pytest.raises(ValueError, match="integer factor"):
        science.decimation_factor(50.0, 3.0)
    x = sine(0.1, 600, fs=20.0)
    assert len(science.decimate(x, 5)) == len(x) // 5
    assert len(science.decimate(sine(0.1, 600, fs=100.0), 25)) == 600 * 4


def test_decimation_keeps_the_band_and_removes_aliases():
    low = science.decimate(sine(0.2, 600, fs=20.0), 5)
    high = science.decimate(sine(3.0, 600, fs=20.0), 5)  # would alias to 1 Hz at 4 samples/s
    middle = slice(200, -200)
    assert np.abs(low[middle]).max() == pytest.approx(1.0, abs=0.02)
    assert np.abs(high[middle]).max() < 0.01


def test_detrend_and_demean():
    ramp = 3.0 + 0.5 * np.arange(100)
    assert np.allclose(science.detrend_simple(ramp), 0.0)
    shifted = sine(0.1, 100) + 7.0
    assert science.demean(shifted).mean() == pytest.approx(0.0, abs=1e-12)


def test_cosine_prefilter_shape():
    freqs = np.array([0.001, 0.005, 0.0055, 0.006, 1.0, 30.0, 32.5, 35.0, 40.0])
    assert science.cosine_prefilter(freqs).tolist() == pytest.approx([0, 0, 0.5, 1, 1, 1, 0.5, 0, 0])


def test_flat_response_removal_turns_counts_into_velocity():
    sensitivity = 6.0e8
    counts = sine(0.1, 1800, amplitude=2e-6 * sensitivity)
    velocity = science.remove_flat_response(counts, FS, sensitivity)
    middle = slice(len(counts) // 4, -len(counts) // 4)  # away from the 5% end tapers
    assert np.abs(velocity[middle]).max() == pytest.approx(2e-6, rel=1e-3)


def test_bandpass_keeps_the_band_and_rejects_the_rest():
    tail = slice(-1200, None)  # after the causal filter has settled
    assert np.abs(science.bandpass(sine(0.2, 3600), FS)[tail]).max() == pytest.approx(1.0, abs=0.05)
    assert np.abs(science.bandpass(sine(1.9, 3600), FS)[tail]).max() < 0.05
    assert np.abs(science.bandpass(sine(0.0005, 3600), FS)[tail]).max() < 0.05
    with pytest.raises(ValueError, match="Nyquist"):
        science.bandpass(sine(0.2, 100, fs=2.0), 2.0)


def test_envelope_normalisation_evens_out_amplitude():
    quiet, loud = sine(0.25, 600), sine(0.25, 600, amplitude=100.0)
    out = science.envelope_normalise(np.concatenate([quiet, loud]))
    n = len(quiet)
    rms = [np.sqrt(np.mean(out[a : a + n // 2] ** 2)) for a in (n // 4, n + n // 4)]
    assert rms[0] == pytest.approx(rms[1], rel=0.01)
    assert science.envelope_normalise(np.zeros(50)).tolist() == [0.0] * 50


def test_envelope_normalisation_of_a_trace_shorter_than_its_window():
    """A 2 s record at 200 samples/s is 9 samples once decimated, under the 31 of the window:
    the smoothed envelope is the plain mean of the window's samples inside the trace."""
    short = sine(0.25, 2.25)
    assert len(short) == 9
    envelope = np.abs(science.signal.hilbert(short))
    smooth = np.array([envelope[max(0, i - 15) : i + 16].sum() / 31 for i in range(9)])
    assert science.envelope_normalise(short) == pytest.approx(short / smooth)


def test_spectrum_size_and_a_known_sinusoid_peak():
    data = sine(0.25, 3600)  # 14400 samples: 2^k >= 14400 + 5000 lags is 32768
    spec = science.spectrum(data)
    assert spec.shape == (32768 // 2 + 1,) and spec.dtype == np.complex128
    assert int(np.argmax(np.abs(spec))) == round(0.25 * 32768 / FS)
    assert science.spectrum(np.ones(100)).shape == (16384 // 2 + 1,)  # at least 2 * 5000 + 1 points


def test_synthetic_records_are_deterministic_one_hour_int32():
    rec = synthetic_record(2, seed=1)
    assert rec["station"] == seed_id(2) == "XX.S003..BHZ"
    assert rec["fs"] == SAMPLING_RATE and rec["data"].dtype == np.int32 and len(rec["data"]) == 3600 * 20
    assert np.array_equal(rec["data"], synthetic_record(2, seed=1)["data"])
    assert not np.array_equal(rec["data"], synthetic_record(3, seed=1)["data"])


def run_seismic(tmp_path, mapping: str = "simple", processes: int | None = None, stations: int = 3):
    out_dir = tmp_path / mapping
    graph, inputs, info = build(stations=stations, run_dir=str(out_dir))
    result = run(graph, inputs, mapping, processes)
    files = {p.name: p.read_bytes() for p in sorted((out_dir / "spectra").glob("*.npy"))}
    return result, info, files


def test_seismic_runs_on_simple_and_writes_one_spectrum_per_station(tmp_path):
    result, info, files = run_seismic(tmp_path)
    assert info["work_s"] == 0.0 and info["stations"] == 3
    written = result.output("WriteSpectrum")
    assert sorted(w["file"] for w in written) == [f"spectra/{seed_id(i)}.npy" for i in range(3)]
    assert sorted(files) == [f"{seed_id(i)}.npy" for i in range(3)]
    spec = np.load(tmp_path / "simple" / written[0]["file"])
    assert spec.shape == (16385,) and spec.dtype == np.complex128 and written[0]["fs"] == FS


def test_spectra_correlate_at_the_synthetic_travel_time(tmp_path):
    """Phase 2 in two lines: the spectra's cross-correlation peaks at the delay between
    the two stations that the synthetic wavefield put there."""
    run_seismic(tmp_path, stations=2)
    a, b = (np.load(tmp_path / "simple" / "spectra" / f"{seed_id(i)}.npy") for i in range(2))
    cc = np.fft.irfft(np.conj(a) * b, 32768)
    lag = int(np.argmax(cc))
    lag = lag - 32768 if lag > 16384 else lag
    expected = (station_offset_m(1, 0) - station_offset_m(0, 0)) / 3000.0 * FS
    assert abs(lag - expected) <= 1.5


def test_the_graph_survives_pickling(tmp_path):
    graph, inputs, _ = build(stations=1, run_dir=str(tmp_path))
    copy = pickle.loads(pickle.dumps(graph))
    out = run(copy, {copy.get(pe.name): n for pe, n in inputs.items()}, "simple").output("WriteSpectrum")
    assert [o["station"] for o in out] == [seed_id(0)]


def test_bad_parameters_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="stations"):
        build(stations=0)
    if find_spec("obspy") is None:
        with pytest.raises(UsageError, match="obspy"):
            build(data_dir=str(tmp_path))


@pytest.mark.parametrize("mapping, processes", [("multi", 9), ("dyn_multi", 3)])
def test_parallel_mappings_write_byte_equal_spectra(tmp_path, multiset, mapping, processes):
    expected, _, expected_files = run_seismic(tmp_path)
    got, _, got_files = run_seismic(tmp_path, mapping, processes)
    assert got_files == expected_files
    assert multiset(got.outputs) == multiset(expected.outputs)
