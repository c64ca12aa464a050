"""Where the seismic records come from: the synthetic network, or real miniSEED files
read with obspy (installed separately; imported only when asked for)."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import Any

from ...errors import UsageError
from .synthetic import synthetic_record

MINISEED_SUFFIXES = (".mseed", ".miniseed", ".ms")


class SyntheticNetwork:
    def __init__(self, stations: int, seed: int = 0):
        self.stations = stations
        self.seed = seed

    def __len__(self) -> int:
        return self.stations

    def record(self, index: int) -> dict[str, Any]:
        return synthetic_record(index, self.seed)


class MiniSeedDirectory:
    """One record per miniSEED file of `path` (its first channel, gaps filled with 0), in
    file-name order; the sensitivity of each channel comes from the StationXML files of
    the same directory, since a flat response is all phase 1 removes."""

    def __init__(self, path: str):
        self.path = path
        self.files = sorted(str(p) for p in Path(path).iterdir() if p.suffix.lower() in MINISEED_SUFFIXES)
        self._inventory = None

    def __len__(self) -> int:
        return len(self.files)

    def record(self, index: int) -> dict[str, Any]:
        import obspy

        if self._inventory is None:
            self._inventory = obspy.Inventory()
            for xml in sorted(Path(self.path).glob("*.xml")):
                self._inventory += obspy.read_inventory(str(xml))
        trace = obspy.read(self.files[index]).merge(fill_value=0)[0]
        response = self._inventory.get_response(trace.id, trace.stats.starttime)
        return {
            "station": trace.id,
            "fs": float(trace.stats.sampling_rate),
            "sensitivity": float(response.instrument_sensitivity.value),
            "data": trace.data,
        }


def open_source(stations: int, seed: int, data_dir: str | None) -> SyntheticNetwork | MiniSeedDirectory:
    """The synthetic network, or `data_dir`'s miniSEED files (a UsageError without obspy)."""
    if data_dir is None:
        return SyntheticNetwork(stations, seed)
    if find_spec("obspy") is None:
        raise UsageError("seismic: data_dir needs obspy to read miniSEED (pip install obspy)")
    if not Path(data_dir).is_dir():
        raise UsageError(f"seismic: data_dir {data_dir} is not a directory")
    source = MiniSeedDirectory(data_dir)
    if not source.files:
        raise UsageError(f"seismic: data_dir {data_dir} has no miniSEED files ({', '.join(MINISEED_SUFFIXES)})")
    return source
