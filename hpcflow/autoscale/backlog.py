"""The default policy: size the pool to the queued work, up at once, down as it runs out.

The target is the number of workers that would work off what is queued within `drain`
seconds, from each PE's measured seconds per task, and never fewer than the active
workers that have a task to run:

    need = ceil(sum over PEs of queued_by_pe[pe] * service_s[pe] / drain)
    want = max(busy, min(max(need, active), busy + ready))

Busy workers count towards `need`: a task shorter than `drain` frees its worker for the
queue in time. When tasks are longer than `drain`, `need` exceeds what there is to run
and the cap `busy + ready` gives every runnable task a worker of its own, since one
would otherwise wait a whole task for a busy worker. A task of a PE not measured yet
counts as one worker's worth, so the start of a run (or of a new stage) gets a worker
per task rather than none until the first durations come back. An active worker is
kept while there is a task for it (`active` in the max): parking it would not save its
busy time, only stretch the queue's tail, and the end of a run or of a burst with it.

Scaling up happens in one step, to the whole need: the paper's one-worker-a-step rules
take N/2 steps to answer a burst. It need not even wait for a step: the coordinator
asks `demand` whenever work is queued while workers are parked, and the target rises
the moment the queue outgrows the active workers (a burst arriving just after a step
would otherwise wait up to a whole interval). Scaling down waits for `k` consecutive
samples all below the current target, then goes to the highest of them (Dask's
`wait_count`, the stabilisation window of Kubernetes' autoscaler); with k = 1 the
window is one observation, so `demand` also lowers the target at once when a worker
finishes with nothing queued, and that worker is parked there and then. Workers being
woken count as capacity because the target is an absolute number of active workers,
not an increment. The target never goes below `busy`: only idle workers are parked, no
task is cut short.

With nothing queued and nothing running the target is 0, and the policy wakes a worker
the moment a task is queued (`parks_all`): where waking is free (shared memory, whose
coordinator also asks `demand` when a worker's streamed outputs queue work), the engine
lets it park the whole pool (`min_workers` 0), so no worker waits through a pause for
the next burst. On the real bursty benchmark (8 processes) that took process time from
0.44 to 0.35 of dyn_multi's at the same runtime; in the simulator, bursty 29.1% ->
24.5% and waves 53.7% -> 51.0% of always-on, the other loads within 0.4 point.

Defaults, for the shared-memory engine, where waking a parked worker costs nothing.
Chosen with `python -m hpcflow.autoscale.simulate` (16 workers, five draws of each
load, free wakes) and `experiments/bench/autoscale.py` (the real engine):

- `k` = 1 sample. Holding the target keeps idle workers active for k x interval after
  every lull; what holding buys, a worker at hand when the next tasks come, demand
  waking gives at once. Against drain = 0.5 s, k = 3 (the defaults before demand
  waking) process time fell on every simulated load: bursty 32.4% -> 29.1% of
  always-on, waves 58.8% -> 53.7%, steady 38.4% -> 35.8%, steady-fast 18.8% -> 17.9%,
  steady-slow 21.5% -> 19.5%, up-front 100% -> 99.2%, runtime within 0.3% of
  always-on everywhere. The target turns more often (105 turns on the 60 s steady
  stream instead of 28), at the cost of a flag each on shared memory.
- `drain` = 0.25 s. With k = 1 it hardly moves process time (0.1, 0.25 and 0.5 s are
  within 0.1 point on every load) but it is the latency a queued item may wait for a
  worker: a burst of less than `drain` x pool seconds of work is given fewer workers
  than the pool and takes about `drain`, which the last burst of a run adds to its
  runtime (on the real bursty benchmark, 0.5 s cost 5-10% of runtime). 0.1 s gained
  0.2% of runtime on the waves and turned the target three times as often.

Where waking takes time (a Redis consumer starting: `simulate --wake 0.3`), holding
pays again: drain = 0.5 s, k = 3 used 41.5% instead of 46.1% on the steady stream and
19.4% instead of 23.6% on steady-fast, at the same runtime; there, use
`autoscale="backlog:drain=0.5,k=3"`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from .observation import Observation

EPSILON = 1e-9  # 1.0000000001 workers of work is one worker, not two


@dataclass
class BacklogPolicy:
    """Proportional target from queued work x per-PE service time / `drain` seconds,
    keeping every active worker that has a task, scaling up at once and down after `k`
    consecutive lower targets."""

    drain: float = 0.25
    k: int = 1
    parks_all: ClassVar[bool] = True
    """Its target is at least one worker whenever a task is queued, and `demand` answers
    at once, so where waking is free the pool may be parked whole (`min_workers` 0)."""
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
        """Workers needed now, before hysteresis: never below `busy`, nor below the
        active workers that have a task to run."""
        known_s = 0.0
        unmeasured = obs.queued - sum(obs.queued_by_pe.values())
        for pe, n in obs.queued_by_pe.items():
            s = obs.service_s.get(pe)
            if s is None:
                unmeasured += n
            else:
                known_s += n * s
        need = math.ceil(known_s / self.drain - EPSILON) + max(0, unmeasured)
        return max(obs.busy, min(max(need, obs.active), obs.busy + obs.runnable))

    def demand(self, obs: Observation, current: int) -> int:
        """Between steps: up to `want` at once, as a step would (which restarts the
        scale-down window); down at once only with k = 1, a window of one observation.
        With a longer window, observations between steps would shorten it in time."""
        want = self.want(obs)
        if want > current or (want < current and self.k == 1):
            self._lower.clear()
            return want
        return current

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
