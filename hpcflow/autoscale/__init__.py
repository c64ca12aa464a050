"""Auto-scaling of a dynamic worker pool: when to wake parked workers and when to park.

Saving process time (the wall time workers spend active) without losing runtime comes
down to one decision taken every sampling interval; this package takes it, with no
processes, queues or clocks of its own, so it is tested with scripted observations.

The coordinator's contract::

    scaler = make_autoscaler(options.autoscale, max_workers=pool_size, free_wakes=shared_memory)
    start scaler.initial() workers active, park the rest (free wakes: `backlog` starts at 0)
    every scaler.interval seconds (the first one as soon as the run starts):
        obs = Observation(t, queued, active, busy, waking, ready, queued_by_pe,
                          service_s, idle_s)        # counters the coordinator keeps
        target = scaler.step(obs)
        if target > active: wake parked workers until active == target
        if target < active: park workers being woken, then idle ones, until
                            active == target or none of them is left;
                            never interrupt a worker running a task
    after a task report or (free wakes) streamed outputs, between steps, if work is
    queued while workers are parked, or if a pool worker reported and nothing is queued
    for the pool:
        target = scaler.demand(obs)                 # a policy without `demand`: unchanged
        wake parked workers until active == target
    after a task report (not streamed outputs), if active > target: park the reporting worker
    scaler.history -> [(t, target), ...] for the metrics timeline

`service_s` comes from a `ServiceTimes` the coordinator feeds with the duration of each
finished task. A target below `busy` (the paper's rules can ask for it) is reached as
busy workers finish and are parked at later steps.

Policies, selected by `autoscale=` (see `spec`): `backlog` (default), and the paper's
`naive` (queue size) and `idle` (consumer idle time) for comparison.
`python -m hpcflow.autoscale.simulate` compares them on simulated loads.
"""

from .observation import Observation, ServiceTimes
from .scaler import AutoScaler, make_autoscaler
from .spec import DEFAULT_INTERVAL_S, POLICIES, parse_spec

__all__ = [
    "DEFAULT_INTERVAL_S",
    "POLICIES",
    "AutoScaler",
    "Observation",
    "ServiceTimes",
    "make_autoscaler",
    "parse_spec",
]
