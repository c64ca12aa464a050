"""The synthetic benchmark pipeline.

A source emits `items` items `(key, value)`; it fans out to `fanout` branches of `stages`
stages, each sleeping `latency` seconds and busy-working `cpu` seconds per item. With
`stateful`, the branches end in a group-by count per key (2 instances) and a global total
that emits in postprocess(); otherwise the last stages' outputs are the results.

Two options shape the load for the auto-scaling benchmark, both off by default:

- `burst` > 0: the source emits its items `burst` at a time, waiting `pause` seconds
  before every burst (the first one too: a source that waited only between bursts
  would look cheap on its first call, and the engine would then batch all its later
  calls into one chunk), so the pool alternates between all needed and idle.
- `latency_dist="beta"`: each stage sleeps a Beta(2,5) draw scaled to a mean of
  `latency` (0 to 3.5 x `latency`, mostly short with a long tail, the shape of the
  dispel4py paper's injected latencies), seeded by the item, the branch and the stage,
  so that every mapping and every repeat sleeps the same.
"""

from __future__ import annotations

import math
import random
import time

from ..errors import UsageError
from ..graph import WorkflowGraph
from ..grouping import stable_hash
from ..pe import GenericPE, IterativePE, ProducerPE
from .params import Param

KEYS = 16
_MASK64 = (1 << 64) - 1


def item_key(seed: int, i: int) -> int:
    """The key of the source's i-th item: a 64-bit integer mix (splitmix64's finaliser) of
    seed and i, the same in every process; a few integer operations, so a cheap source
    costs as little as a bare counter would (a BLAKE2b hash an item made the producer
    the bottleneck of tiny-task runs)."""
    x = (seed * 0x9E3779B97F4A7C15 + (i + 1) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (x ^ (x >> 31)) % KEYS


BETA_MEAN = 2 / 7  # of Beta(2,5): a draw divided by it has mean 1
LATENCY_DISTS = ("fixed", "beta")
PARAMS = {
    "items": Param(int, "items the source emits", least=0),
    "stages": Param(int, "stages of each branch", least=1),
    "latency": Param(float, "each stage sleeps this per item", unit="seconds", least=0),
    "cpu": Param(float, "each stage busy-works this per item", unit="seconds", least=0),
    "fanout": Param(int, "branches the source feeds", least=1),
    "stateful": Param(bool, "end the branches in a group-by count and a global total"),
    "seed": Param(int, "of the items' keys"),
    "burst": Param(int, "emit the items this many at a time (0: all at once)", least=0),
    "pause": Param(float, "the source waits this before every burst", unit="seconds", least=0),
    "latency_dist": Param(
        str, "fixed: every sleep is latency; beta: Beta(2,5) draws of mean latency", choices=LATENCY_DISTS
    ),
}


class Source(ProducerPE):
    """One item a call; with `burst`, `burst` items a call, each after a `pause`."""

    def __init__(self, seed: int = 0, items: int = 0, burst: int = 0, pause: float = 0.0):
        super().__init__()
        self.seed = seed
        self.items = items
        self.burst = burst
        self.pause = pause
        self.count = 0

    def item(self) -> tuple[int, int]:
        i = self.count
        self.count += 1
        return (item_key(self.seed, i), i)

    def _process(self, inputs):
        if not self.burst:
            return self.item()
        if self.pause:
            time.sleep(self.pause)
        for _ in range(min(self.burst, self.items - self.count)):
            self.write("output", self.item())
        return None


def busy(seconds: float) -> None:
    """Burn CPU for `seconds` of this process's CPU time."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def beta_latency(mean: float, seed: int, branch: int, stage: int, value: int) -> float:
    """The sleep of one item in one stage under `latency_dist="beta"`."""
    rng = random.Random(stable_hash((seed, branch, stage, value)))
    return mean * rng.betavariate(2, 5) / BETA_MEAN


class Stage(IterativePE):
    def __init__(self, latency: float = 0.0, cpu: float = 0.0, dist: str = "fixed", seed: int = 0, position=(0, 0)):
        super().__init__()
        self.latency = latency
        self.cpu = cpu
        self.dist = dist
        self.seed = seed
        self.position = position  # (branch, stage): seeds a beta latency

    def _process(self, data):
        key, value = data
        if self.latency:
            if self.dist == "beta":
                time.sleep(beta_latency(self.latency, self.seed, *self.position, value))
            else:
                time.sleep(self.latency)
        if self.cpu:
            busy(self.cpu)
        return (key, value + 1)


class CountByKey(GenericPE):
    numprocesses = 2

    def __init__(self):
        super().__init__()
        self._add_input("input", grouping=[0])
        self._add_output("output")
        self.counts: dict[int, int] = {}

    def process(self, inputs):
        key = inputs["input"][0]
        self.counts[key] = self.counts.get(key, 0) + 1

    def postprocess(self):
        for key, n in sorted(self.counts.items()):
            self.write("output", (key, n))


class Total(GenericPE):
    def __init__(self):
        super().__init__()
        self._add_input("input", grouping="global")
        self._add_output("output")
        self.counts: dict[int, int] = {}

    def process(self, inputs):
        key, n = inputs["input"]
        self.counts[key] = self.counts.get(key, 0) + n

    def postprocess(self):
        self.write("output", {"total": sum(self.counts.values()), "keys": dict(sorted(self.counts.items()))})


def build(
    items: int = 1000,
    stages: int = 3,
    latency: float = 0.0,
    cpu: float = 0.0,
    fanout: int = 1,
    stateful: bool = False,
    seed: int = 0,
    burst: int = 0,
    pause: float = 0.0,
    latency_dist: str = "fixed",
):
    """The pipeline graph, the source's number of calls, and `work_s`: the seconds of
    latency and CPU work injected in all (the exact sum of the draws for beta)."""
    for name, value, least in (
        ("stages", stages, 1),
        ("fanout", fanout, 1),
        ("items", items, 0),
        ("burst", burst, 0),
        ("pause", pause, 0),
        ("latency", latency, 0),
        ("cpu", cpu, 0),
    ):
        if value < least:
            raise UsageError(f"pipeline needs {name} >= {least}, got {value}")
    if latency_dist not in LATENCY_DISTS:
        raise UsageError(f"pipeline: latency_dist must be one of {', '.join(LATENCY_DISTS)}, got {latency_dist!r}")
    graph = WorkflowGraph()
    source = Source(seed, items, burst, pause)
    graph.add(source)
    ends = []
    for branch in range(fanout):
        prev = source
        for stage in range(stages):
            pe = Stage(latency, cpu, latency_dist, seed, (branch, stage))
            graph.connect(prev, "output", pe, "input")
            prev = pe
        ends.append(prev)
    if stateful:
        count, total = CountByKey(), Total()
        for end in ends:
            graph.connect(end, "output", count, "input")
        graph.connect(count, "output", total, "input")
    if latency_dist == "beta" and latency:
        sleep_s = sum(
            beta_latency(latency, seed, b, s, i + s) for b in range(fanout) for s in range(stages) for i in range(items)
        )
    else:
        sleep_s = items * fanout * stages * latency
    calls = math.ceil(items / burst) if burst else items
    return graph, {source: calls}, {"work_s": sleep_s + items * fanout * stages * cpu}
