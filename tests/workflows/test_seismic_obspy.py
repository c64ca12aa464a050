"""The seismic workflow on real recordings: the five records obspy ships in its package
(`-p source=obspy-examples`). Each spectrum the workflow writes must equal phase 1
recomputed here step by step from its documentation (science.py's docstring) with
obspy's and scipy's own routines, not hpcflow's: obspy reads the trace and its response,
obspy detrends, builds the SAC pre-filter, bandpasses and takes the envelope, scipy
decimates."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from scipy import signal as sps

from hpcflow import run
from hpcflow.errors import UsageError
from hpcflow.workflows.seismic import build
from hpcflow.workflows.seismic.sources import OBSPY_EXAMPLES
from tests.conftest import require

# The documented settings of phase 1 (science.py's docstring), written out again here.
TARGET_SPS = 4.0
PRE_FILT = (0.005, 0.006, 30.0, 35.0)
FREQMIN, FREQMAX, CORNERS = 0.01, 1.0, 4
HALF_WINDOW = 15
MAX_SHIFT = 5000
DECIMATION_STAGES = {20.0: [5], 40.0: [10], 200.0: [10, 5]}  # largest factor <= 13 first


@pytest.fixture(scope="module")
def obspy():
    require(find_spec("obspy") is not None, "obspy (pip install 'hpcflow[workflows]')")
    import obspy

    return obspy


def real_traces(obspy) -> list[tuple[object, float]]:
    """Each example's trace and its sensitivity, read with obspy alone."""
    root = Path(obspy.__file__).parent
    out = []
    for record, response, channel in OBSPY_EXAMPLES:
        stream = obspy.read(str(root / record))
        trace = (stream.select(id=channel) if channel else stream).merge(fill_value=0)[0]
        inventory = obspy.read_inventory(str(root / response))
        sensitivity = inventory.get_response(trace.id, trace.stats.starttime).instrument_sensitivity.value
        out.append((trace, sensitivity))
    return out


def independent_phase1(trace, sensitivity: float) -> np.ndarray:
    from obspy import Trace
    from obspy.signal.filter import bandpass, envelope
    from obspy.signal.invsim import cosine_sac_taper
    from obspy.signal.util import next_pow_2

    fs = trace.stats.sampling_rate
    data = trace.data.astype(np.float64)
    for step in DECIMATION_STAGES[fs]:  # IIR anti-alias filter, zero phase
        data = sps.decimate(data, step, ftype="iir", zero_phase=True)
    work = Trace(data=data, header={"sampling_rate": TARGET_SPS})
    work.detrend("simple")
    work.detrend("demean")
    n = work.stats.npts
    padded = np.fft.rfft(work.data * sps.windows.tukey(n, 0.1), 2 * n)  # 5% cosine taper at each end
    padded *= cosine_sac_taper(np.fft.rfftfreq(2 * n, 1 / TARGET_SPS), PRE_FILT) / sensitivity
    velocity = np.fft.irfft(padded, 2 * n)[:n]
    filtered = bandpass(velocity, FREQMIN, FREQMAX, TARGET_SPS, corners=CORNERS, zerophase=False)
    smooth = ndimage.uniform_filter1d(envelope(filtered), 2 * HALF_WINDOW + 1, mode="constant")
    normalised = np.divide(filtered, smooth, out=np.zeros_like(filtered), where=smooth > 0)
    return np.fft.rfft(normalised, next_pow_2(max(2 * MAX_SHIFT + 1, n + MAX_SHIFT)))


def run_examples(tmp_path, mapping: str = "simple", processes: int | None = None):
    out_dir = tmp_path / mapping
    graph, inputs, info = build(source="obspy-examples", run_dir=str(out_dir))
    result = run(graph, inputs, mapping, processes)
    return result, info, out_dir


def test_real_records_give_the_independently_computed_spectra(obspy, tmp_path):
    result, info, out_dir = run_examples(tmp_path)
    traces = real_traces(obspy)
    assert info["stations"] == len(traces) == 5
    written = {w["station"]: w for w in result.output("WriteSpectrum")}
    assert sorted(written) == sorted(trace.id for trace, _ in traces)
    for trace, sensitivity in traces:
        got = np.load(out_dir / written[trace.id]["file"])
        want = independent_phase1(trace, sensitivity)
        assert got.shape == want.shape and written[trace.id]["fs"] == TARGET_SPS, trace.id
        scale = np.abs(want).max()
        assert scale > 0, trace.id
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9 * scale, err_msg=trace.id)


def test_real_records_cover_several_rates_and_lengths(obspy):
    """What the examples exercise: 20, 40 and 200 samples/s (decimation by 5, 10 and 50 in
    two stages) and a record shorter than the envelope's smoothing window once decimated."""
    traces = real_traces(obspy)
    assert {t.stats.sampling_rate for t, _ in traces} == set(DECIMATION_STAGES)
    decimated = [t.stats.npts // round(t.stats.sampling_rate / TARGET_SPS) for t, _ in traces]
    assert min(decimated) < 2 * HALF_WINDOW + 1 < max(decimated)


def test_real_records_give_byte_equal_spectra_on_a_parallel_mapping(obspy, tmp_path, multiset):
    expected, _, simple_dir = run_examples(tmp_path)
    got, _, dyn_dir = run_examples(tmp_path, "dyn_multi", 3)
    files = sorted(p.name for p in (simple_dir / "spectra").glob("*.npy"))
    assert len(files) == 5
    for name in files:
        assert (dyn_dir / "spectra" / name).read_bytes() == (simple_dir / "spectra" / name).read_bytes(), name
    assert multiset(got.outputs) == multiset(expected.outputs)


def test_source_and_data_dir_together_or_an_unknown_source_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="source must be one of"):
        build(source="iris")
    with pytest.raises(UsageError, match="not both"):
        build(source="obspy-examples", data_dir=str(tmp_path))
