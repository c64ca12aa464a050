"""A deterministic simulation of the dynamic worker pool, to compare scaling policies.

Real runs on a shared node are too noisy and too slow to choose a drain time or a
hysteresis length, or to show that a policy answers a burst within one step. Here time
is simulated (an event queue, no sleeping, no processes): items arrive, each passes
through a chain of PEs with given service times, workers take tasks from one FIFO
queue, and every `interval` the scaler observes the pool exactly as the coordinator
would and workers are woken or parked by the coordinator's rules, including its
between-steps rules: work queued while workers are parked asks the scaler's `demand`,
and a worker that finishes a task with the pool above target is parked; `demand` is
also asked when a worker finishes and nothing is queued. Runtime and process
time are measured as `hpcflow.metrics` defines them.

    python -m hpcflow.autoscale.simulate                      # the standard comparison
    python -m hpcflow.autoscale.simulate backlog:drain=1,k=5  # try other parameters
"""

from __future__ import annotations

import argparse
import heapq
import random
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from statistics import mean

from .observation import Observation, ServiceTimes
from .scaler import AutoScaler, make_autoscaler
from .spec import DEFAULT_INTERVAL_S

# Event kinds, in the order simultaneous events are handled: a finished task frees its
# worker and queues the next stage before new items arrive, and the scaler samples last.
_DONE, _WOKEN, _ARRIVE, _TICK = range(4)
_PARKED, _WAKING, _IDLE, _BUSY = range(4)


@dataclass(frozen=True)
class Item:
    """One input arriving at `t` and processed by `stages`, a chain of (pe, seconds)."""

    t: float
    stages: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Outcome:
    """One simulated run, measured as `hpcflow.metrics` measures a real one."""

    label: str
    runtime_s: float
    process_time_s: float
    direction_changes: int
    """Times the target turned from rising to falling or back: thrashing shows here."""
    timeline: tuple[tuple[float, int, int], ...]
    """(t, active, queued) at every sample."""


def simulate(
    items: Sequence[Item],
    workers: int,
    scaler: AutoScaler | None = None,
    *,
    wake_s: float = 0.0,
    label: str = "",
) -> Outcome:
    """Run `items` on a pool of `workers`, scaled by `scaler` or always all on (None).

    `wake_s` is how long a woken worker takes before it takes tasks (a Redis consumer
    starting up); 0 is the shared-memory engine's semaphore."""
    if scaler and scaler.max_workers > workers:
        raise ValueError(f"scaler may ask for {scaler.max_workers} workers, the pool has {workers}")
    return _Pool(items, workers, scaler, wake_s).run(label or (scaler.name if scaler else "always-on"))


class _Pool:
    def __init__(self, items: Sequence[Item], workers: int, scaler: AutoScaler | None, wake_s: float) -> None:
        self.items = items
        self.scaler = scaler
        self.wake_s = wake_s
        self.interval = scaler.interval if scaler else DEFAULT_INTERVAL_S
        self.events: list[tuple[float, int, int, int]] = []  # (t, kind, seq, payload)
        self.seq = 0
        self.queue: deque[tuple[int, int]] = deque()  # (item, stage)
        self.queued_by_pe: Counter[str] = Counter()
        self.service = ServiceTimes()
        self.state = [_PARKED] * workers
        self.since = [0.0] * workers  # idle since (idle), ready at (waking)
        self.active_since = [0.0] * workers
        self.task: list[tuple[int, int, float] | None] = [None] * workers  # (item, stage, started)
        self.process_time = 0.0
        self.remaining = sum(len(item.stages) for item in items)
        self.last_done = 0.0
        self.timeline: list[tuple[float, int, int]] = []

    def run(self, label: str) -> Outcome:
        first = self.scaler.initial() if self.scaler else len(self.state)
        for w in range(first):
            self.state[w] = _IDLE
        for i, item in enumerate(self.items):
            self._push(item.t, _ARRIVE, i)
        self._push(0.0, _TICK, 0)
        handlers: dict[int, Callable[[float, int], None]] = {
            _DONE: self._done,
            _WOKEN: self._woken,
            _ARRIVE: self._arrive,
            _TICK: self._tick,
        }
        while self.remaining:
            t, kind, _, payload = heapq.heappop(self.events)
            handlers[kind](t, payload)
            self._dispatch(t)
        for w, state in enumerate(self.state):
            if state != _PARKED:
                self.process_time += self.last_done - self.active_since[w]
        targets = [n for _, n in self.scaler.history] if self.scaler else []
        return Outcome(label, self.last_done, self.process_time, direction_changes(targets), tuple(self.timeline))

    def _push(self, t: float, kind: int, payload: int) -> None:
        heapq.heappush(self.events, (t, kind, self.seq, payload))
        self.seq += 1

    def _enqueue(self, item: int, stage: int) -> None:
        self.queue.append((item, stage))
        self.queued_by_pe[self.items[item].stages[stage][0]] += 1

    def _arrive(self, t: float, item: int) -> None:
        self._enqueue(item, 0)
        self._on_demand(t)

    def _done(self, t: float, w: int) -> None:
        task = self.task[w]
        assert task is not None
        item, stage, started = task
        self.service.record(self.items[item].stages[stage][0], t - started)
        self.task[w] = None
        self.state[w], self.since[w] = _IDLE, t
        self.remaining -= 1
        self.last_done = t
        if stage + 1 < len(self.items[item].stages):
            self._enqueue(item, stage + 1)
        self._on_demand(t, done=True)
        if self.scaler and sum(s != _PARKED for s in self.state) > self.scaler.target:
            self.state[w] = _PARKED  # the coordinator parks a worker done above target
            self.process_time += t - self.active_since[w]

    def _on_demand(self, t: float, done: bool = False) -> None:
        """The coordinator's rule between steps: ask the scaler's `demand` when work is
        queued while workers are parked, or a worker is done and nothing is queued, and
        wake workers up to its answer (parking is left to the finished worker)."""
        if self.scaler and ((self.queue and _PARKED in self.state) or (done and not self.queue)):
            active = [w for w, s in enumerate(self.state) if s != _PARKED]
            self._scale(t, active, self.scaler.demand(self._observe(t, active)), up_only=True)

    def _woken(self, t: float, w: int) -> None:
        if self.state[w] == _WAKING and self.since[w] == t:  # not parked and woken again since
            self.state[w] = _IDLE

    def _dispatch(self, t: float) -> None:
        idle = [w for w, s in enumerate(self.state) if s == _IDLE]
        idle.sort(key=lambda w: self.since[w])
        for w in idle:
            if not self.queue:
                return
            item, stage = self.queue.popleft()
            pe, seconds = self.items[item].stages[stage]
            self.queued_by_pe[pe] -= 1
            self.state[w] = _BUSY
            self.task[w] = (item, stage, t)
            self._push(t + seconds, _DONE, w)

    def _tick(self, t: float, n: int) -> None:
        active = [w for w, s in enumerate(self.state) if s != _PARKED]
        self.timeline.append((t, len(active), len(self.queue)))
        if self.scaler:
            self._scale(t, active, self.scaler.step(self._observe(t, active)))
        self._push((n + 1) * self.interval, _TICK, n + 1)

    def _observe(self, t: float, active: list[int]) -> Observation:
        states = [self.state[w] for w in active]
        waiting = [t - self.since[w] if self.state[w] == _IDLE else 0.0 for w in active if self.state[w] != _WAKING]
        return Observation(
            t=t,
            queued=len(self.queue),
            active=len(active),
            busy=states.count(_BUSY),
            waking=states.count(_WAKING),
            queued_by_pe={pe: n for pe, n in self.queued_by_pe.items() if n},
            service_s=self.service.snapshot(),
            idle_s=sum(waiting) / len(waiting) if waiting else 0.0,
        )

    def _scale(self, t: float, active: list[int], target: int, up_only: bool = False) -> None:
        """The coordinator's rules: wake parked workers up to the target; park waking,
        then idle workers (longest idle first) down to it; never a busy one."""
        if up_only and target <= len(active):
            return
        if target > len(active):
            parked = [w for w, s in enumerate(self.state) if s == _PARKED]
            for w in parked[: target - len(active)]:
                self.active_since[w] = t
                if self.wake_s > 0:
                    self.state[w], self.since[w] = _WAKING, t + self.wake_s
                    self._push(t + self.wake_s, _WOKEN, w)
                else:
                    self.state[w], self.since[w] = _IDLE, t
            return
        waking = [w for w in active if self.state[w] == _WAKING]
        idle = sorted((w for w in active if self.state[w] == _IDLE), key=lambda w: self.since[w])
        for w in (waking + idle)[: len(active) - target]:
            self.state[w] = _PARKED
            self.process_time += t - self.active_since[w]


def direction_changes(targets: Sequence[int]) -> int:
    """How often a sequence of targets turns from rising to falling or back."""
    turns, last = 0, 0
    for a, b in pairwise(targets):
        sign = (b > a) - (b < a)
        if sign and last and sign != last:
            turns += 1
        last = sign or last
    return turns


def _beta_seconds(rng: random.Random, scale: float) -> float:
    """A Beta(2,5) latency, mean 0.29 x `scale`: mostly short with a long right tail,
    the shape the paper's synthetic workloads sleep for."""
    return rng.betavariate(2, 5) * scale


def bursty_load(seed: int = 0, bursts: int = 6, size: int = 200, gap_s: float = 10.0, scale: float = 0.3) -> list[Item]:
    """`bursts` batches of `size` items every `gap_s` seconds, each through two PEs:
    the whole pool is needed for about two seconds, then nothing until the next batch."""
    rng = random.Random(seed)
    return [
        Item(b * gap_s, (("Parse", _beta_seconds(rng, scale)), ("Analyse", _beta_seconds(rng, scale))))
        for b in range(bursts)
        for _ in range(size)
    ]


def waves_load(seed: int = 0, waves: int = 12) -> list[Item]:
    """Batches of 20-300 items spread over half a second, 2-8 s apart, through a short
    and a long PE: bursts that overlap, so the pool is rarely all needed or all idle."""
    rng = random.Random(seed)
    items: list[Item] = []
    t = 0.0
    for _ in range(waves):
        for _ in range(rng.randint(20, 300)):
            stages = (("Parse", _beta_seconds(rng, 0.3)), ("Analyse", _beta_seconds(rng, 0.6)))
            items.append(Item(t + rng.uniform(0, 0.5), stages))
        t += rng.uniform(2, 8)
    return items


def steady_load(seed: int = 0, rate: float = 20.0, duration_s: float = 60.0, scale: float = 1.0) -> list[Item]:
    """Poisson arrivals at `rate` items a second through one PE of Beta(2,5) latency:
    about `rate` x 0.29 x `scale` workers are needed at any time (5.7 by default)."""
    rng = random.Random(seed)
    items, t = [], rng.expovariate(rate)
    while t < duration_s:
        items.append(Item(t, (("Latency", _beta_seconds(rng, scale)),)))
        t += rng.expovariate(rate)
    return items


def upfront_load(seed: int = 0, n: int = 2000, scale: float = 0.1) -> list[Item]:
    """All `n` items queued at the start (dispel4py's dynamic mapping queues a
    producer's iterations up front): nothing to save, runtime must not suffer."""
    rng = random.Random(seed)
    return [Item(0.0, (("Latency", _beta_seconds(rng, scale)),)) for _ in range(n)]


LOADS: dict[str, Callable[[int], list[Item]]] = {
    "bursty": bursty_load,
    "waves": waves_load,
    "steady": steady_load,
    "steady-fast": lambda seed: steady_load(seed, rate=200.0, scale=0.05),  # 15 ms tasks
    "steady-slow": lambda seed: steady_load(seed, rate=2.0, scale=5.0),  # 1.4 s tasks
    "upfront": upfront_load,
}


@dataclass(frozen=True)
class Ratios:
    """A policy against always-on over several seeds of one load (means)."""

    label: str
    runtime_s: float
    process_time_s: float
    runtime: float
    process_time: float
    direction_changes: float


def compare(
    load: Callable[[int], list[Item]], workers: int, specs: Sequence[str], seeds: int = 1, wake_s: float = 0.0
) -> list[Ratios]:
    """Always-on, then each `autoscale=` spec, on `seeds` draws of `load`."""
    runs: dict[str, list[tuple[Outcome, Outcome]]] = {"always-on": [], **{spec: [] for spec in specs}}
    for seed in range(seeds):
        items = load(seed)
        base = simulate(items, workers, wake_s=wake_s)
        runs["always-on"].append((base, base))
        for spec in specs:
            scaler = make_autoscaler(spec, workers, free_wakes=wake_s == 0)  # as the engines make it
            runs[spec].append((simulate(items, workers, scaler, wake_s=wake_s), base))
    return [
        Ratios(
            label,
            mean(r.runtime_s for r, _ in pairs),
            mean(r.process_time_s for r, _ in pairs),
            mean(r.runtime_s / b.runtime_s for r, b in pairs),
            mean(r.process_time_s / b.process_time_s for r, b in pairs),
            mean(r.direction_changes for r, _ in pairs),
        )
        for label, pairs in runs.items()
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hpcflow.autoscale.simulate", description=__doc__.split("\n")[0])
    parser.add_argument("specs", nargs="*", default=["naive", "idle", "backlog"], help="autoscale option values")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--seeds", type=int, default=5, help="draws of each load; means are shown")
    parser.add_argument("--wake", type=float, default=0.0, help="seconds a woken worker takes to start")
    parser.add_argument("--load", action="append", choices=list(LOADS), help="loads to run (default: all)")
    args = parser.parse_args(argv)
    print(f"{'load':12} {'policy':24} {'runtime s':>9} {'process s':>9} {'runtime':>8} {'process':>8} {'turns':>6}")
    for name in args.load or LOADS:
        for r in compare(LOADS[name], args.workers, args.specs, args.seeds, args.wake):
            print(
                f"{name:12} {r.label:24} {r.runtime_s:9.2f} {r.process_time_s:9.1f}"
                f" {r.runtime:8.1%} {r.process_time:8.1%} {r.direction_changes:6.1f}"
            )


if __name__ == "__main__":
    main()
