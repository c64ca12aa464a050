"""A workload as a dispel4py graph, for dispel4py's own `multi` mapping.

The PEs wrap the workload's stage objects (the same `_process` every system calls).
dispel4py's `multi` gives unconnected outputs to a result queue that is only read after
every process has ended, which blocks a process that writes thousands of items; so the
last PE of the graph keeps what it would emit and saves it to a file per instance in
`postprocess()`, where the caller reads it (hpcflow's `run()` collects outputs too).
"""

from __future__ import annotations

import os
import pickle
import time
import uuid
from collections import Counter
from pathlib import Path

from dispel4py.base import GenericPE, IterativePE, ProducerPE
from dispel4py.workflow_graph import WorkflowGraph
from peer_workloads import Workload


def _save(out_dir: str, items: list) -> None:
    path = Path(out_dir) / f"{os.getpid()}-{uuid.uuid4().hex}.pkl"
    path.write_bytes(pickle.dumps(items))


class Source(ProducerPE):
    """One batch a call (one item a call without bursts), after the workload's pause."""

    def __init__(self, batches: list[list], pause: float):
        ProducerPE.__init__(self)
        self.batches = batches
        self.pause = pause
        self.calls = 0

    def _process(self, inputs):
        batch = self.batches[self.calls]
        self.calls += 1
        if self.pause:
            time.sleep(self.pause)
        for item in batch:
            self.write(self.OUTPUT_NAME, item)


class Stage(IterativePE):
    """A workload stage; the last one (`out_dir` given) keeps its items and saves them."""

    def __init__(self, pe, out_dir: str | None = None):
        IterativePE.__init__(self)
        self.pe = pe
        self.out_dir = out_dir
        self.kept: list = []

    def _process(self, data):
        out = self.pe._process(data)
        if self.out_dir is None:
            return out
        self.kept.append(out)
        return None

    def postprocess(self):
        if self.out_dir is not None:
            _save(self.out_dir, self.kept)


class CountByKey(GenericPE):
    """hybrid.py's CountByKey in dispel4py: group-by the key, 2 instances."""

    def __init__(self):
        GenericPE.__init__(self)
        self._add_input("input", grouping=[0])
        self._add_output("output")
        self.numprocesses = 2
        self.counts: Counter = Counter()

    def process(self, inputs):
        self.counts[inputs["input"][0]] += 1

    def postprocess(self):
        for item in sorted(self.counts.items()):
            self.write("output", item)


class Total(GenericPE):
    """hybrid.py's Total: one instance gathers every key's count, saves the dict."""

    def __init__(self, out_dir: str):
        GenericPE.__init__(self)
        self._add_input("input", grouping="global")
        self.out_dir = out_dir
        self.counts: dict = {}

    def process(self, inputs):
        key, n = inputs["input"]
        self.counts[key] = n

    def postprocess(self):
        _save(self.out_dir, [dict(sorted(self.counts.items()))])


def build(w: Workload, out_dir: str) -> tuple[WorkflowGraph, dict]:
    """The workload's graph and dispel4py inputs (the source's number of calls)."""
    batches = w.batches() if w.bursts else [[item] for item in w.source_items()]
    source = Source(batches, w.pause)
    pes = w.stage_pes()
    chain = [Stage(pe, None if w.stateful or i < len(pes) - 1 else out_dir) for i, pe in enumerate(pes)]
    if w.stateful:
        chain += [CountByKey(), Total(out_dir)]
    graph = WorkflowGraph()
    previous = source
    for pe in chain:
        graph.connect(previous, "output", pe, "input")
        previous = pe
    return graph, {source: len(batches)}
