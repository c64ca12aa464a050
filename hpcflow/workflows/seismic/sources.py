"""Where the seismic records come from: the synthetic network, real miniSEED files of a
directory, or the real records obspy ships in its package; the last two are read with
obspy (imported only when asked for)."""

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


class ObspyRecords:
    """One record per miniSEED file (the channel named for it, else its first; gaps filled
    with 0), read with obspy; the sensitivity of each channel comes from the response files
    (StationXML, dataless or full SEED), since a flat response is all phase 1 removes."""

    def __init__(self, files: list[str], responses: list[str], channels: list[str | None] | None = None):
        self.files = files
        self.responses = responses
        self.channels = channels or [None] * len(files)
        self._inventory = None

    def __len__(self) -> int:
        return len(self.files)

    def record(self, index: int) -> dict[str, Any]:
        import obspy

        if self._inventory is None:
            self._inventory = obspy.Inventory()
            for path in self.responses:
                self._inventory += obspy.read_inventory(path)
        stream = obspy.read(self.files[index])
        if self.channels[index] is not None:
            stream = stream.select(id=self.channels[index])
        trace = stream.merge(fill_value=0)[0]
        response = self._inventory.get_response(trace.id, trace.stats.starttime)
        return {
            "station": trace.id,
            "fs": float(trace.stats.sampling_rate),
            "sensitivity": float(response.instrument_sensitivity.value),
            "data": trace.data,
        }


def miniseed_directory(path: str) -> ObspyRecords:
    """`path`'s miniSEED files in file-name order, with the StationXML files beside them."""
    files = sorted(str(p) for p in Path(path).iterdir() if p.suffix.lower() in MINISEED_SUFFIXES)
    return ObspyRecords(files, [str(p) for p in sorted(Path(path).glob("*.xml"))])


# Real recordings that obspy ships in its package (test data, under its own licence, LGPL),
# each with the response file of the same channel and an integer rate of at least 4 Hz:
# (record, response, channel), paths relative to obspy's package directory.
OBSPY_EXAMPLES = (
    (
        "clients/filesystem/tests/data/tsindex_data/IU/2018/001/IU.ANMO.10.BHZ.2018.001_first_minute.mseed",
        "io/stationxml/tests/data/IRIS_single_channel_with_response.xml",
        "IU.ANMO.10.BHZ",
    ),
    ("signal/tests/data/IM.I59H1..BDF_2020_10_31.mseed", "signal/tests/data/IM.I59H1..BDF_2020_10_31.xml", None),
    ("io/xseed/tests/data/arclink_full.seed", "io/xseed/tests/data/arclink_full.seed", "GR.FUR..BHE"),
    (
        "io/xseed/tests/data/II_COCO_three_channel_borehole.mseed",
        "io/xseed/tests/data/dataless.seed.II_COCO",
        "II.COCO.10.BHZ",
    ),
    ("io/mseed/tests/data/RJOB.BW.EHZ.D.300806.0000.fullseed", "io/xseed/tests/data/dataless.seed.BW_RJOB", None),
)


def obspy_examples() -> ObspyRecords:
    """The real records of `OBSPY_EXAMPLES` from the installed obspy (a UsageError if this
    obspy build left its test data out)."""
    import obspy

    root = Path(obspy.__file__).parent
    missing = [rel for rec, resp, _ in OBSPY_EXAMPLES for rel in (rec, resp) if not (root / rel).is_file()]
    if missing:
        raise UsageError(f"seismic: source=obspy-examples: obspy {obspy.__version__} lacks {missing[0]}")
    return ObspyRecords(
        [str(root / rec) for rec, _, _ in OBSPY_EXAMPLES],
        sorted({str(root / resp) for _, resp, _ in OBSPY_EXAMPLES}),
        [channel for _, _, channel in OBSPY_EXAMPLES],
    )


SOURCES = ("synthetic", "obspy-examples")


def open_source(stations: int, seed: int, data_dir: str | None, source: str = "synthetic"):
    """The synthetic network, obspy's example records, or `data_dir`'s miniSEED files (a
    UsageError without obspy)."""
    if source not in SOURCES:
        raise UsageError(f"seismic: source must be one of {', '.join(SOURCES)}, got {source!r}")
    if source == "synthetic" and data_dir is None:
        return SyntheticNetwork(stations, seed)
    if source != "synthetic" and data_dir is not None:
        raise UsageError(f"seismic: give data_dir or source={source}, not both")
    if find_spec("obspy") is None:
        what = "data_dir" if data_dir is not None else f"source={source}"
        raise UsageError(f"seismic: {what} needs obspy to read miniSEED (pip install 'hpcflow[workflows]')")
    if data_dir is None:
        return obspy_examples()
    if not Path(data_dir).is_dir():
        raise UsageError(f"seismic: data_dir {data_dir} is not a directory")
    records = miniseed_directory(data_dir)
    if not records.files:
        raise UsageError(f"seismic: data_dir {data_dir} has no miniSEED files ({', '.join(MINISEED_SUFFIXES)})")
    return records
