"""The four workloads of `peers.py`, described once so every system runs the same thing.

A workload is a source of items, in one go or in bursts after a pause, a chain of
stages (the very PE objects of hpcflow's `pipeline` workflow, or of `hybrid.py`'s
graph, whose `_process` every peer calls), and for the stateful one a group-by count
and a global total at the end. Its expected result is computed from the definition,
not from a run, so every system's output is checked against the same independent
answer: the multiset of the last stage's items, or the total's dict of counts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import hybrid

from hpcflow.workflows import pipeline


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    items: int
    processes: int
    stages: int = 3
    latency: float = 0.0  # mean seconds a stage sleeps per item
    latency_dist: str = "fixed"
    bursts: int = 0  # 0: every item at once; else this many bursts, each after `pause`
    pause: float = 0.0
    stateful: bool = False  # hybrid.py's graph: slow stage, 3 cheap ones, group-by count, total

    @property
    def tasks(self) -> int:
        """Stage executions (the source's calls and the stateful tail not counted)."""
        return self.items * (4 if self.stateful else self.stages)

    def pipeline_params(self) -> dict[str, Any]:
        burst = -(-self.items // self.bursts) if self.bursts else 0
        return {
            "items": self.items,
            "stages": self.stages,
            "latency": self.latency,
            "latency_dist": self.latency_dist,
            "burst": burst,
            "pause": self.pause,
        }

    def hpcflow_graph(self):
        """hpcflow's own form of the workload: the graph and its inputs."""
        if self.stateful:
            graph, source = hybrid.build(self.latency)
            return graph, {source: self.items}
        graph, inputs, _ = pipeline.build(**self.pipeline_params())
        return graph, inputs

    @property
    def work_s(self) -> float:
        """Seconds of injected latency in all (the exact sum of the draws); 0 for the stateful graph."""
        if self.stateful:
            return 0.0
        return pipeline.build(**self.pipeline_params())[2]["work_s"]

    def source_items(self) -> list:
        """Every item the source emits, in order (the same values in every system)."""
        if self.stateful:
            source = hybrid.Source()
            return [source._process(None) for _ in range(self.items)]
        source = pipeline.Source(items=self.items)
        return [source.item() for _ in range(self.items)]

    def batches(self) -> list[list]:
        """The source's items as they arrive: one batch, or one per burst (each after `pause`)."""
        items = self.source_items()
        if not self.bursts:
            return [items]
        size = self.pipeline_params()["burst"]
        return [items[i : i + size] for i in range(0, len(items), size)]

    def stage_pes(self) -> list:
        """The stage PE objects, in order; a peer calls `apply(pe, item)` for each."""
        if self.stateful:
            return [hybrid.Slow(self.latency), hybrid.Cheap(), hybrid.Cheap(), hybrid.Cheap()]
        params = self.pipeline_params()
        return [pipeline.Stage(params["latency"], 0.0, params["latency_dist"], 0, (0, s)) for s in range(self.stages)]

    def expected(self) -> Any:
        """The right answer: for the stateful graph, Total's dict of counts per key; else
        the sorted items the last stage emits (`(key, value + stages)`)."""
        items = self.source_items()
        if self.stateful:
            return dict(sorted(Counter(key for key, _ in items).items()))
        return sorted((key, value + self.stages) for key, value in items)


def apply(pe, item):
    """One stage task: what every peer runs (a module-level function, so that it pickles)."""
    return pe._process(item)


def count_by_key(items: list) -> dict:
    """The stateful tail for the peers without a group-by operator: a count per key, then
    the total's dict (the same thing hpcflow's CountByKey and Total compute in two steps)."""
    return dict(sorted(Counter(key for key, _ in items).items()))


def result_of(workload: Workload, outputs: list) -> Any:
    """A system's raw outputs (last stage's items, or the stateful total) in `expected()`'s form."""
    if workload.stateful:
        return outputs[0] if len(outputs) == 1 else outputs
    return sorted(tuple(item) for item in outputs)


def workloads(quick: bool) -> list[Workload]:
    """The issue's four workloads; `quick` makes the tiny-task one smaller (20 000 items
    take Dask futures about two minutes a run) and keeps the rest as they are."""
    return [
        Workload("tiny", "tiny tasks: no-op, 3 stages", 2000 if quick else 20000, 8),
        Workload(
            "latency",
            "latency-bound: 2 stages, Beta(2,5) sleeps of mean 20 ms",
            300,
            16,
            stages=2,
            latency=0.02,
            latency_dist="beta",
        ),
        Workload(
            "bursty",
            "bursty: 3 bursts of 96 items after 2 s pauses, 2 stages of 20 ms",
            288,
            8,
            stages=2,
            latency=0.02,
            bursts=3,
            pause=2.0,
        ),
        Workload(
            "stateful",
            "stateful: slow stage (20 ms), 3 cheap, group-by count, global total",
            400,
            8,
            latency=0.02,
            stateful=True,
        ),
    ]
