"""The galaxy workflow's PEs: ReadRaDec -> GetVOTable -> FilterColumns -> InternalExtinction,
all stateless. Items are small dicts; the science lives in science.py and votable.py."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ...pe import IterativePE, ProducerPE
from . import science, votable

COLUMNS = ("MType", "logR25")


def cached_votable_name(ra: str, dec: str) -> str:
    """File name of a cached VizieR answer: the coordinates as written in the input file."""
    return f"{ra}_{dec}.xml"


class ReadRaDec(ProducerPE):
    """Emits one galaxy `{index, ra, dec}` per call, line by line from the coordinates file.

    One galaxy a call, not the whole file in one call: a mapping regains control between
    calls, so the dynamic and auto-scaling mappings can apply back-pressure and keep their
    queues bounded while galaxies stream in, instead of receiving 1000 items at once."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.calls = 0
        self._galaxies: list[tuple[str, str]] | None = None

    def _process(self, inputs: dict[str, Any]) -> dict[str, Any]:
        if self._galaxies is None:
            self._galaxies = science.read_coordinates(Path(self.path).read_text())
        i = self.calls
        self.calls += 1
        if i >= len(self._galaxies):
            raise ValueError(f"{self.path} has {len(self._galaxies)} galaxies; call {i + 1} asks for more")
        ra, dec = self._galaxies[i]
        return {"index": i, "ra": ra, "dec": dec}


class _Latency:
    """The opt-in injected latency of a heavy run: the galaxy's own seeded delay."""

    def __init__(self, heavy: bool, latency_scale: float, which: int):
        self.heavy = heavy
        self.latency_scale = latency_scale
        self.which = which  # 0: GetVOTable's delay, 1: FilterColumns'

    def wait(self, galaxy: dict[str, Any]) -> None:
        if self.heavy:
            time.sleep(science.heavy_delays(galaxy["ra"], galaxy["dec"])[self.which] * self.latency_scale)


class GetVOTable(IterativePE):
    """Adds the HyperLEDA cone-search answer (VOTable XML) of the galaxy: a cached real
    answer from `votable_dir`, else the offline synthetic catalogue's."""

    def __init__(self, votable_dir: str | None = None, heavy: bool = False, latency_scale: float = 1.0):
        super().__init__()
        self.votable_dir = votable_dir
        self.latency = _Latency(heavy, latency_scale, 0)

    def _process(self, galaxy: dict[str, Any]) -> dict[str, Any]:
        self.latency.wait(galaxy)
        ra, dec = galaxy["ra"], galaxy["dec"]
        if self.votable_dir is not None:
            document = (Path(self.votable_dir) / cached_votable_name(ra, dec)).read_text()
        else:
            document = votable.write_votable([science.synthetic_row(ra, dec)], votable.cone_search_url(ra, dec))
        return {**galaxy, "votable": document}


class FilterColumns(IterativePE):
    """Parses the VOTable and keeps the columns InternalExtinction needs."""

    def __init__(self, columns: tuple[str, ...] = COLUMNS, heavy: bool = False, latency_scale: float = 1.0):
        super().__init__()
        self.columns = tuple(columns)
        self.latency = _Latency(heavy, latency_scale, 1)

    def _process(self, galaxy: dict[str, Any]) -> dict[str, Any]:
        self.latency.wait(galaxy)
        row = votable.first_row(galaxy["votable"], self.columns)
        return {"index": galaxy["index"], "ra": galaxy["ra"], "dec": galaxy["dec"], **row}


class InternalExtinction(IterativePE):
    """Emits `{ra, dec, mtype, logr25, t, a_int}` for each galaxy (its output is the result)."""

    def _process(self, galaxy: dict[str, Any]) -> dict[str, Any]:
        t, a_int = science.internal_extinction(galaxy["MType"], galaxy["logR25"])
        return {
            "ra": float(galaxy["ra"]),
            "dec": float(galaxy["dec"]),
            "mtype": galaxy["MType"],
            "logr25": galaxy["logR25"],
            "t": t,
            "a_int": a_int,
        }
