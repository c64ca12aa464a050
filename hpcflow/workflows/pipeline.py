"""The synthetic benchmark pipeline.

A source emits `items` items `(key, value)`; it fans out to `fanout` branches of `stages`
stages, each sleeping `latency` seconds and busy-working `cpu` seconds per item. With
`stateful`, the branches end in a group-by count per key (2 instances) and a global total
that emits in postprocess(); otherwise the last stages' outputs are the results.
"""

from __future__ import annotations

import time

from ..graph import WorkflowGraph
from ..grouping import stable_hash
from ..pe import GenericPE, IterativePE, ProducerPE

KEYS = 16


class Source(ProducerPE):
    def __init__(self, seed: int = 0):
        super().__init__()
        self.seed = seed
        self.count = 0

    def _process(self, inputs):
        i = self.count
        self.count += 1
        return (stable_hash((self.seed, i)) % KEYS, i)


def busy(seconds: float) -> None:
    """Burn CPU for `seconds` of this process's CPU time."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


class Stage(IterativePE):
    def __init__(self, latency: float = 0.0, cpu: float = 0.0):
        super().__init__()
        self.latency = latency
        self.cpu = cpu

    def _process(self, data):
        if self.latency:
            time.sleep(self.latency)
        if self.cpu:
            busy(self.cpu)
        key, value = data
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
):
    if stages < 1 or fanout < 1 or items < 0:
        from ..errors import UsageError

        raise UsageError("pipeline needs stages >= 1, fanout >= 1 and items >= 0")
    graph = WorkflowGraph()
    source = Source(seed)
    graph.add(source)
    ends = []
    for _ in range(fanout):
        prev = source
        for _ in range(stages):
            stage = Stage(latency, cpu)
            graph.connect(prev, "output", stage, "input")
            prev = stage
        ends.append(prev)
    if stateful:
        count, total = CountByKey(), Total()
        for end in ends:
            graph.connect(end, "output", count, "input")
        graph.connect(count, "output", total, "input")
    info = {"work_s": items * fanout * stages * (latency + cpu)}
    return graph, {source: items}, info
