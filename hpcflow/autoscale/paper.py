"""The two auto-scaling rules of the dispel4py optimisation paper, kept for comparison.

Both move the pool by one worker a step whatever the load, so a burst that needs the
whole pool waits `max_workers / 2` steps for it, and a quiet spell costs as many steps
to give the workers back. That is why the paper's best case reached 87% of plain dynamic
scheduling's runtime but its average was 139%. The `backlog` policy is the default.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .observation import Observation


def half_pool(min_workers: int, max_workers: int) -> int:
    """The paper's starting size, floor((N - 1) / 2) + 1: half the pool, rounded up."""
    return max(min_workers, (max_workers - 1) // 2 + 1)


@dataclass
class _OneStepRule:
    """What the paper's two rules share: a non-negative threshold, and a start at half
    the pool."""

    threshold: float = 0.0

    def __post_init__(self) -> None:
        if self.threshold < 0:
            raise ValueError("threshold must be at least 0")

    def initial(self, min_workers: int, max_workers: int) -> int:
        return half_pool(min_workers, max_workers)


@dataclass
class NaivePolicy(_OneStepRule):
    """The paper's queue-size rule: grow by one while the queue is longer than
    `threshold` tasks and not shrinking, otherwise shrink by one.

    `threshold` = 10 is the queue length the paper's code grew at."""

    threshold: int = 10
    _last_queued: int | None = field(default=None, init=False, repr=False)

    def target(self, obs: Observation, current: int) -> int:
        shrinking = self._last_queued is not None and obs.queued < self._last_queued
        self._last_queued = obs.queued
        if obs.queued > self.threshold and not shrinking:
            return current + 1
        return current - 1


@dataclass
class IdlePolicy(_OneStepRule):
    """The paper's idle-time rule (its Redis mapping): shrink by one while the active
    workers have waited for work longer than `threshold` seconds on average, otherwise
    grow by one.

    `threshold` = 0.5 s is the paper's 5 s of summed consumer idle time spread over the
    ten workers it started with."""

    threshold: float = 0.5

    def target(self, obs: Observation, current: int) -> int:
        return current - 1 if obs.idle_s > self.threshold else current + 1
