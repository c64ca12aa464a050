"""What the coordinator sees of the worker pool at one sampling instant.

An `Observation` is a plain frozen record so that any engine can fill it cheaply from
counters it already keeps for termination (the shared-memory coordinator), or from
XLEN / XPENDING / XINFO CONSUMERS (the Redis transport). Policies read it and nothing
else: they never touch processes, queues or clocks, which is what lets the tests drive
them with scripted observations and a fake clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

EWMA_ALPHA = 0.2
"""Weight of the newest task in a service-time average: about the last ten tasks of a PE
count, so one slow outlier moves the estimate by a fifth, yet a PE whose cost changes
mid-run (a bigger input file) is tracked within a few tasks."""


@dataclass(frozen=True)
class Observation:
    """The pool at time `t` (seconds since the run started, any monotonic origin).

    Counts are of workers in the scaled pool only (not the coordinator, not pinned
    stateful instances of a hybrid mapping)."""

    t: float
    queued: int
    """Tasks waiting in the shared queue (or stream), not yet taken by a worker."""
    active: int
    """Workers counted active: running a task, waiting for one, or being woken."""
    busy: int
    """Active workers running a task at `t`. A policy that parks only idle workers keeps
    its target at or above this."""
    waking: int = 0
    """Active workers woken but not yet taking tasks (a Redis consumer starting up)."""
    ready: int | None = None
    """Tasks that can run now; `None` means all queued ones (the shared-memory case)."""
    queued_by_pe: Mapping[str, int] = field(default_factory=dict)
    """`queued` split by the PE that will process each task; may be left empty."""
    service_s: Mapping[str, float] = field(default_factory=dict)
    """Average seconds a worker spends on one task of each PE; a PE not yet measured is
    absent. `ServiceTimes` keeps these."""
    idle_s: float = 0.0
    """Mean, over active workers not being woken, of how long each has been waiting for
    a task at `t` (0 for a busy one). Only the `idle` policy reads it. On Redis: each
    consumer's `inactive` field of XINFO CONSUMERS (`idle` before Redis 7.2), taken as
    0 for a consumer with pending entries, which is running a task."""

    @property
    def runnable(self) -> int:
        """Tasks a newly woken worker could start now."""
        return self.queued if self.ready is None else self.ready


class ServiceTimes:
    """Per-PE exponentially weighted mean of task durations, for `Observation.service_s`.

    The coordinator records the duration each worker reports with a finished task; the
    mean follows a PE whose cost drifts, and is absent until its first task ends."""

    def __init__(self, alpha: float = EWMA_ALPHA) -> None:
        self.alpha = alpha
        self._mean: dict[str, float] = {}

    def record(self, pe: str, seconds: float) -> None:
        old = self._mean.get(pe)
        self._mean[pe] = seconds if old is None else old + self.alpha * (seconds - old)

    def get(self, pe: str) -> float | None:
        return self._mean.get(pe)

    def snapshot(self) -> dict[str, float]:
        return dict(self._mean)
