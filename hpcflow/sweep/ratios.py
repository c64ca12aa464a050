"""The paper's ratio tables (Tables 1-3 of the dispel4py optimisation paper).

For a compared pair (numerator, denominator), a cell is a params combination and a CPU
count; its runtime ratio is the numerator's mean runtime over the successful repeats
divided by the denominator's, and likewise for process time. Below 1, the numerator is
faster (or spends less process time). The table closes with the best cell by runtime,
the best by process time, and the mean and standard deviation of the ratios over the
cells (the sample standard deviation, n - 1; none for a single cell).

Only successful runs count; a cell where either side has none is listed as missing and
left out of the best, mean and std rows.
"""

from __future__ import annotations

import csv
import json
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .spec import params_key

CSV_COLUMNS = (
    "numerator",
    "denominator",
    "row",
    "params",
    "cpus",
    "runtime_ratio",
    "process_time_ratio",
    "numerator_runtime_s",
    "denominator_runtime_s",
    "numerator_process_time_s",
    "denominator_process_time_s",
)


@dataclass(frozen=True)
class Means:
    """A mapping's successful repeats in one cell."""

    runs: int
    runtime_s: float
    process_time_s: float
    runtime_sd: float
    process_time_sd: float


@dataclass(frozen=True)
class CellRatio:
    params: dict[str, Any]
    cpus: int
    numerator: Means
    denominator: Means

    @property
    def runtime(self) -> float:
        return self.numerator.runtime_s / self.denominator.runtime_s

    @property
    def process_time(self) -> float:
        return self.numerator.process_time_s / self.denominator.process_time_s


@dataclass(frozen=True)
class RatioTable:
    numerator: str
    denominator: str
    entries: tuple[tuple[dict[str, Any], int, CellRatio | None], ...]  # (params, cpus, ratio or None: missing)

    @property
    def cells(self) -> tuple[CellRatio, ...]:
        return tuple(ratio for _, _, ratio in self.entries if ratio is not None)

    @property
    def missing(self) -> tuple[tuple[dict[str, Any], int], ...]:
        return tuple((params, cpus) for params, cpus, ratio in self.entries if ratio is None)

    @property
    def best_runtime(self) -> CellRatio | None:
        return min(self.cells, key=lambda c: (c.runtime, c.process_time), default=None)

    @property
    def best_process_time(self) -> CellRatio | None:
        return min(self.cells, key=lambda c: (c.process_time, c.runtime), default=None)

    def mean(self) -> tuple[float, float] | None:
        if not self.cells:
            return None
        return statistics.fmean(c.runtime for c in self.cells), statistics.fmean(c.process_time for c in self.cells)

    def std(self) -> tuple[float, float] | None:
        if len(self.cells) < 2:
            return None
        return statistics.stdev(c.runtime for c in self.cells), statistics.stdev(c.process_time for c in self.cells)


def cell_means(rows: list[dict[str, Any]]) -> dict[tuple[str, int, str], Means]:
    """(params key, cpus, mapping) -> the means of its successful runs."""
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row.get("status") == "ok":
            groups[params_key(row["params"]), int(row["cpus"]), row["mapping"]].append(row)
    return {key: _means(group) for key, group in groups.items()}


def _means(rows: list[dict[str, Any]]) -> Means:
    runtimes = [float(r["runtime_s"]) for r in rows]
    process = [float(r["process_time_s"]) for r in rows]
    sd = statistics.stdev if len(rows) > 1 else (lambda _: 0.0)
    return Means(len(rows), statistics.fmean(runtimes), statistics.fmean(process), sd(runtimes), sd(process))


def cells_of(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
    """The (params, cpus) cells of some runs: params in the order they first appear,
    CPU counts ascending within each."""
    params: dict[str, dict[str, Any]] = {}
    cpus: dict[str, set[int]] = defaultdict(set)
    for row in rows:
        key = params_key(row["params"])
        params.setdefault(key, row["params"])
        cpus[key].add(int(row["cpus"]))
    return [(p, n) for key, p in params.items() for n in sorted(cpus[key])]


def ratio_tables(
    rows: list[dict[str, Any]],
    compare: list[tuple[str, str]] | tuple[tuple[str, str], ...],
    cells: list[tuple[dict[str, Any], int]] | None = None,
) -> list[RatioTable]:
    """One table per compared pair, over `cells` (default: every cell of `rows`)."""
    means = cell_means(rows)
    cells = cells if cells is not None else cells_of(rows)
    tables = []
    for numerator, denominator in compare:
        entries = []
        for params, cpus in cells:
            num = means.get((params_key(params), cpus, numerator))
            den = means.get((params_key(params), cpus, denominator))
            usable = num and den and den.runtime_s > 0 and den.process_time_s > 0
            entries.append((params, cpus, CellRatio(params, cpus, num, den) if usable else None))
        tables.append(RatioTable(numerator, denominator, tuple(entries)))
    return tables


def write_ratios_csv(tables: list[RatioTable], path: Path) -> None:
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(CSV_COLUMNS)
        for table in tables:
            pair = [table.numerator, table.denominator]
            for cell in table.cells:
                out.writerow([*pair, "cell", *_cell_columns(cell)])
            best = (("best (runtime)", table.best_runtime), ("best (process time)", table.best_process_time))
            for label, cell in best:
                if cell is not None:
                    out.writerow([*pair, label, *_cell_columns(cell)])
            for label, values in (("mean", table.mean()), ("std", table.std())):
                if values is not None:
                    out.writerow([*pair, label, "", "", _round(values[0]), _round(values[1]), "", "", "", ""])


def _cell_columns(cell: CellRatio) -> list[Any]:
    return [
        json.dumps(cell.params, sort_keys=True),
        cell.cpus,
        _round(cell.runtime),
        _round(cell.process_time),
        _round(cell.numerator.runtime_s),
        _round(cell.denominator.runtime_s),
        _round(cell.numerator.process_time_s),
        _round(cell.denominator.process_time_s),
    ]


def _round(value: float) -> float:
    return round(value, 4)
