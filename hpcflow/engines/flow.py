"""Backpressure: when a root may be fed, and when a worker may send more outputs.

Two valves, one rule. The rule: a PE is backlogged when its queued tasks hold more than
`max_backlog_s` of work per instance (a task of a PE not yet measured counts as the
whole `max_backlog_s`, so at most one is queued per instance until the PE's speed is
known), and the run is when all its queues hold more than `max_queued` tasks or about
MAX_QUEUED_BYTES. The valves: a root is not fed while the run or any PE is backlogged;
a worker's OUTPUT is not answered with a CREDIT while one of the PEs it wrote to is
(outbox.py), so a producer writing a million items in one call waits mid-call. This
bounds memory, latency and the drain after SIGINT/SIGTERM whatever the PEs' speeds.

A held credit must never stop the run: it is released when no worker that could run
the backlogged PE's tasks is free to (every one of them is itself waiting for a credit),
which breaks every cycle of waits. This module only decides; the coordinator sends.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping

from .protocol import Chunk

MAX_QUEUED_BYTES = 64 << 20  # pickled bytes queued for all PEs together, about
BYTES_WEIGHT = 0.2  # of the newest chunk in a PE's measured bytes per task


class FlowControl:
    def __init__(
        self,
        max_backlog_s: float,
        max_queued: int,
        capacity: Mapping[str, int],
        service_s: Callable[[str], float],
        queued_by_pe: Counter[str],
    ):
        self.max_backlog_s = max_backlog_s
        self.max_queued = max_queued
        self.capacity = capacity
        self.service_s = service_s
        self.queued_by_pe = queued_by_pe  # the broker's, kept current by it
        self.task_bytes: dict[str, float] = {}
        self.held: dict[int, frozenset[str]] = {}  # worker -> PEs its unanswered OUTPUTs wrote to
        self.owed: Counter[int] = Counter()  # worker -> its unanswered OUTPUTs

    def measured(self, chunks: Iterable[Chunk]) -> None:
        """Learn the pickled size of a PE's tasks from the chunks made for it."""
        for c in chunks:
            if c.count:
                per_task = c.nbytes / c.count
                old = self.task_bytes.get(c.pe)
                self.task_bytes[c.pe] = per_task if old is None else old + BYTES_WEIGHT * (per_task - old)

    def over(self, pe: str) -> bool:
        """Whether the queued tasks of `pe` hold more than max_backlog_s per instance."""
        n = self.queued_by_pe[pe]
        if n <= 0:
            return False
        svc = self.service_s(pe)
        if svc <= 0:  # not measured yet: count each task as the whole bound
            return n > self.capacity[pe]
        return n * svc > self.max_backlog_s * self.capacity[pe]

    def too_many_bytes(self) -> bool:
        queued = sum(n * self.task_bytes.get(pe, 0.0) for pe, n in self.queued_by_pe.items() if n > 0)
        return queued > MAX_QUEUED_BYTES

    def backlogged(self) -> bool:
        """Whether the roots must wait."""
        if sum(self.queued_by_pe.values()) >= self.max_queued or self.too_many_bytes():
            return True
        return any(self.over(pe) for pe in self.queued_by_pe)

    def _over(self, dests: frozenset[str]) -> bool:
        return any(self.over(pe) for pe in dests) or (bool(dests) and self.too_many_bytes())

    def hold(self, wid: int, dests: Iterable[str]) -> bool:
        """Whether the credit for this worker's OUTPUT waits (recorded: see `releasable`)."""
        dests = frozenset(dests)
        if self._over(dests):
            self.held[wid] = self.held.get(wid, frozenset()) | dests
            self.owed[wid] += 1
            return True
        return False

    def releasable(self, drainers: Callable[[str], Iterable[int]]) -> list[tuple[int, int]]:
        """(worker, credits) whose held credits may go now: their PEs are below the bound
        again, or no worker that runs one of them (`drainers(pe)`) is free to take its
        tasks; of the latter one worker at a time, as releasing it may free the others."""
        out = [wid for wid, dests in self.held.items() if not self._over(dests)]
        for wid, dests in self.held.items():
            if wid not in out and any(all(d in self.held for d in drainers(pe)) for pe in dests):
                out.append(wid)
                break
        return [(wid, self.release(wid)) for wid in out]

    def release(self, wid: int) -> int:
        """Forget the worker's held credits; how many there were."""
        self.held.pop(wid, None)
        return self.owed.pop(wid, 0)
