"""Ambient-noise cross-correlation, phase 1 (the dispel4py paper's seismology use case).

Nine stateless PEs in a chain pre-process each station's hour of data and write its
spectrum to `spectra/<NET.STA.LOC.CHA>.npy` under the run directory, ready for phase 2
(correlating station pairs). The records are synthetic (`stations`, `seed`) unless
`data_dir` names a directory of miniSEED files (and StationXML), or `source` is
`obspy-examples`: five real recordings that obspy ships in its package; both are read
with obspy.

scipy does the signal work; it is imported here only when the workflow is built, so a
missing scipy is one clear error, not a traceback.
"""

from __future__ import annotations

from importlib.util import find_spec
from itertools import pairwise
from typing import Any

from ...errors import UsageError
from ...graph import WorkflowGraph
from ..params import Param
from ..workdir import work_dir
from .sources import SOURCES

PARAMS = {
    "stations": Param(int, "synthetic stations (network XX), an hour of 20 Hz data each", least=1),
    "seed": Param(int, "of the synthetic records"),
    "data_dir": Param(str, "real miniSEED files (and StationXML), read with obspy", unit="path"),
    "source": Param(str, "where the records come from", choices=SOURCES),
}


def build(
    stations: int = 50,
    seed: int = 0,
    data_dir: str | None = None,
    source: str = "synthetic",
    run_dir: str | None = None,
) -> tuple[WorkflowGraph, dict, dict[str, Any]]:
    """The phase-1 chain over `stations` synthetic stations (or the files of `data_dir`, or
    obspy's example records)."""
    if isinstance(stations, bool) or not isinstance(stations, int) or stations < 1:
        raise UsageError(f"seismic: stations must be a positive integer, got {stations!r}")
    if find_spec("scipy") is None:
        raise UsageError("seismic needs scipy (pip install -e '.[workflows]' in hpcflow's source tree)")
    from . import pes
    from .sources import open_source

    records = open_source(stations, seed, data_dir, source)
    out_dir = work_dir(run_dir, "seismic")
    chain = [
        pes.ReadTraces(records),
        pes.Decimate(),
        pes.Detrend(),
        pes.Demean(),
        pes.RemoveResponse(),
        pes.Bandpass(),
        pes.Normalise(),
        pes.Spectrum(),
        pes.WriteSpectrum(str(out_dir)),
    ]
    graph = WorkflowGraph()
    for upstream, downstream in pairwise(chain):
        graph.connect(upstream, "output", downstream, "input")
    info = {"work_s": 0.0, "stations": len(records), "output_dir": str(out_dir)}
    return graph, {chain[0]: len(records)}, info
