"""The sweep's progress lines on stderr: which cell, how far, and an ETA.

Plain lines, not a redrawn bar: a sweep often runs inside a batch job whose output is a
file. The ETA is the time per finished run so far times the runs left; for batch jobs
running side by side that is the throughput, which is what the wait depends on. Cells
that fail in planning (too few processes for a mapping) take no time and count for
neither.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from .spec import Cell

PREFIX = "hpcflow sweep: "


def duration(seconds: float) -> str:
    """3.2 s, 4m05s, 1h02m."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Progress:
    def __init__(
        self,
        total: int,
        done: int,
        to_run: int,
        quiet: bool = False,
        shown: list[str] | None = None,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.total = total
        self.done = done  # cells in runs.jsonl, earlier sessions included
        self.to_run = to_run  # runs left to start or to finish
        self.quiet = quiet
        self.shown = shown  # the params a cell's label names (default: all)
        self.stream = stream
        self.clock = clock
        self.t0 = clock()
        self.ran = 0

    def say(self, text: str) -> None:
        if not self.quiet:
            print(PREFIX + text, file=self.stream or sys.stderr, flush=True)

    def eta(self) -> str:
        if not self.ran:
            return "ETA unknown"
        per_run = (self.clock() - self.t0) / self.ran
        return f"ETA {duration(per_run * self.to_run)}"

    def elapsed(self) -> str:
        return duration(self.clock() - self.t0)

    def starting(self, cell: Cell) -> None:
        self.say(f"[{self.done + 1}/{self.total}] {cell.label(self.shown)} ({self.elapsed()} elapsed, {self.eta()})")

    def submitted(self, cell: Cell, how: str) -> None:
        self.say(f"submitted {cell.label(self.shown)} {how}")

    def finished(self, cell: Cell, row: dict[str, Any], ran: bool = True, announce: bool = False) -> None:
        """Count a recorded cell (`ran`: not one refused in planning); `announce` names
        it (batch runs, which do not start one at a time); a failure always shows why."""
        self.done += 1
        if ran:
            self.ran += 1
            self.to_run -= 1
        if announce:
            state = f"ok, {row['runtime_s']:.2f} s" if row["status"] == "ok" else "failed"
            self.say(f"[{self.done}/{self.total}] {cell.label(self.shown)}: {state} ({self.eta()})")
        if row["status"] != "ok":
            self.say(f"  failed: {row.get('error', 'unknown error')}")
