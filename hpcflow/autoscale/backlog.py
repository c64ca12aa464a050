"""The default policy: size the pool to the queued work, up at once, down with care.

The target is the number of workers that would work off what is queued within `drain`
seconds, from each PE's measured seconds per task:

    need = ceil(sum over PEs of queued_by_pe[pe] * service_s[pe] / drain)
    want = max(busy, min(need, busy + ready))

Busy workers count towards `need`: a task shorter than `drain` frees its worker for the
queue in time. When tasks are longer than `drain`, `need` exceeds what there is to run
and the cap `busy + ready` gives every runnable task a worker of its own, since one
would otherwise wait a whole task for a busy worker. A task of a PE not measured yet
counts as one worker's worth, so the start of a run (or of a new stage) gets a worker
per task rather than none until the first durations come back.

Scaling up happens in one step, to the whole need: the paper's one-worker-a-step rules
take N/2 steps to answer a burst. Scaling down waits for `k` consecutive samples all
below the current target, then goes to the highest of them (Dask's `wait_count`, the
stabilisation window of Kubernetes' autoscaler): a dip shorter than `k` samples costs
nothing, a lull is answered within `k` samples. Workers being woken count as capacity
because the target is an absolute number of active workers, not an increment. The
target never goes below `busy`: only idle workers are parked, no task is cut short.

Defaults, chosen with `python -m hpcflow.autoscale.simulate` (16 workers, five draws of
bursty, overlapping-wave, steady Poisson and queued-up-front loads; drain 0.25-2 s,
k 1-8):

- `drain` = 0.5 s. In a steady stream the queue settles where it takes about `drain`
  to work off, so `drain` is the latency added to an item and about the most a run's
  tail can grow: a few percent of a ten-second run, noise in a long one. Doubling it
  saved at most 1.3 points of process time and cost up to 1% more runtime; halving it
  cost 2.5 points of process time on the steady stream and gained no runtime.
- `k` = 3 samples (0.3 s at the default interval). Each sample held costs about 1.3
  points of process time on the bursty load, but with k = 1 a stream of 15 ms tasks
  turns the target three times as often (17 turns a minute instead of 5) to save 0.6.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .observation import Observation

EPSILON = 1e-9  # 1.0000000001 workers of work is one worker, not two


@dataclass
class BacklogPolicy:
    """Proportional target from queued work x per-PE service time / `drain` seconds,
    scaling up at once and down after `k` consecutive lower targets."""

    drain: float = 0.5
    k: int = 3
    _lower: list[int] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.drain > 0:
            raise ValueError("drain must be more than 0 seconds")
        if self.k < 1:
            raise ValueError("k must be at least 1")

    def initial(self, min_workers: int, max_workers: int) -> int:
        """Start small: the first observation, taken as the run starts, sizes the pool."""
        return min_workers

    def want(self, obs: Observation) -> int:
        """Workers needed now, before hysteresis: never below `busy`."""
        known_s = 0.0
        unmeasured = obs.queued - sum(obs.queued_by_pe.values())
        for pe, n in obs.queued_by_pe.items():
            s = obs.service_s.get(pe)
            if s is None:
                unmeasured += n
            else:
                known_s += n * s
        need = math.ceil(known_s / self.drain - EPSILON) + max(0, unmeasured)
        return max(obs.busy, min(need, obs.busy + obs.runnable))

    def target(self, obs: Observation, current: int) -> int:
        want = self.want(obs)
        if want >= current:
            self._lower.clear()
            return want
        self._lower.append(want)
        if len(self._lower) < self.k:
            return current
        down = max(self._lower)
        self._lower.clear()
        return down
