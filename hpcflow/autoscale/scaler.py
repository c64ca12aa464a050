"""The auto-scaler: a policy between fixed bounds, with a record of what it asked for.

Shaped like Dask's `AdaptiveCore`: the scaler only turns observations into a desired
number of active workers; waking and parking them is the coordinator's business (see
the package docstring), so the whole decision logic runs in tests on scripted
observations without a process in sight.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import UsageError
from .observation import Observation
from .spec import DEFAULT_INTERVAL_S, Policy, parse_spec


class AutoScaler:
    """Desired active worker count, between `min_workers` and `max_workers`."""

    def __init__(
        self,
        policy: Policy,
        max_workers: int,
        min_workers: int = 1,
        *,
        name: str = "",
        interval: float = DEFAULT_INTERVAL_S,
    ) -> None:
        lowest = 0 if getattr(policy, "parks_all", False) else 1
        if not lowest <= min_workers <= max_workers or max_workers < 1:
            raise UsageError(
                f"auto-scaling needs {lowest} <= min_workers <= max_workers and max_workers >= 1, "
                f"got {min_workers} and {max_workers}"
            )
        self.policy = policy
        self.name = name or type(policy).__name__
        self.min_workers = min_workers
        self.max_workers = max_workers
        self.interval = interval
        self.target: int | None = None
        self.history: list[tuple[float, int]] = []
        """(t, target) of every step and, between two steps, of the highest target
        `demand` reached if above the step's: the metrics timeline, at most two entries
        an interval however often the target moves between steps."""
        self._peak: int | None = None  # index in history of the entry since the last step

    def initial(self) -> int:
        """Workers to start active, before the first observation."""
        self.target = self._clamp(self.policy.initial(self.min_workers, self.max_workers))
        return self.target

    def step(self, obs: Observation) -> int:
        """Desired active workers after observing `obs`."""
        current = self.initial() if self.target is None else self.target
        self.target = self._clamp(self.policy.target(obs, current))
        self.history.append((obs.t, self.target))
        self._peak = None
        return self.target

    def demand(self, obs: Observation) -> int:
        """Desired active workers between steps, after a task report that queued work
        while workers are parked or left a worker with nothing to run.

        A policy with a `demand` rule answers at once, so a burst does not wait up to a
        whole interval for parked workers, nor a worker with nothing left to do stay
        active as long; a policy without one (the paper's rules, one worker a step)
        keeps its target until its next step."""
        current = self.initial() if self.target is None else self.target
        rule = getattr(self.policy, "demand", None)
        if rule is None:
            return current
        self.target = self._clamp(rule(obs, current))
        if self._peak is not None:
            if self.target > self.history[self._peak][1]:
                self.history[self._peak] = (obs.t, self.target)
        elif self.target > (self.history[-1][1] if self.history else current):
            self.history.append((obs.t, self.target))
            self._peak = len(self.history) - 1
        return self.target

    def _clamp(self, n: int) -> int:
        return min(self.max_workers, max(self.min_workers, n))


def make_autoscaler(
    spec: str | Mapping[str, Any] | None, max_workers: int, min_workers: int = 1, *, free_wakes: bool = False
) -> AutoScaler:
    """The engine's entry point: an `AutoScaler` from the `autoscale=` option value.

    `free_wakes`: waking a parked worker costs nothing (shared memory), so a policy that
    wakes workers the moment work is queued (`parks_all`) may park the whole pool while
    nothing is queued; `min_workers` is then 0."""
    parsed = parse_spec(spec)
    if free_wakes and getattr(parsed.policy, "parks_all", False):
        min_workers = 0
    return AutoScaler(parsed.policy, max_workers, min_workers, name=parsed.name, interval=parsed.interval)
