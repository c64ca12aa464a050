"""The stateful hybrid mapping: stateful instances pinned with private queues, routing
straight to the chosen instance, postprocess() in topological order."""

from __future__ import annotations

import os

import pytest
from graphs import Count, KeyBy, canonical, chain, word_count_pipeline

from hpcflow import GenericPE, run
from hpcflow.grouping import stable_hash

pytestmark = pytest.mark.timeout(120)

HYBRIDS = ["hybrid_multi", "hybrid_auto_multi"]


class KeyOwners(GenericPE):
    """Group-by key; reports, per key it saw, its instance and its process."""

    numprocesses = 4

    def __init__(self):
        super().__init__()
        self._add_input("input", grouping=[0])
        self._add_output("output")
        self.keys = set()

    def process(self, inputs):
        self.keys.add(inputs["input"][0])

    def postprocess(self):
        for key in sorted(self.keys):
            self.write("output", (key, self.instance, os.getpid()))


class SeenAll(GenericPE):
    numprocesses = 3

    def __init__(self):
        super().__init__()
        self._add_input("input", grouping="all")
        self._add_output("output")
        self.items = []

    def process(self, inputs):
        self.items.append(inputs["input"])

    def postprocess(self):
        self.write("output", (self.instance, sorted(self.items)))


@pytest.mark.parametrize("mapping", HYBRIDS)
@pytest.mark.parametrize("processes", [6, 9, 16])
def test_every_key_is_seen_by_exactly_one_instance(mapping, processes):
    src = Count()
    graph = chain(src, KeyBy(), KeyOwners())
    owners = run(graph, {src: 200}, mapping, processes).output("KeyOwners")
    keys = [k for k, _, _ in owners]
    assert sorted(keys) == sorted(set(keys)) == sorted(f"k{i}" for i in range(7))
    for key, instance, _ in owners:
        assert instance == stable_hash(key) % 4  # the same choice in every process
    pids = {instance: pid for _, instance, pid in owners}
    assert len(set(pids.values())) == len(pids)  # each instance in a process of its own


@pytest.mark.parametrize("mapping", HYBRIDS)
def test_broadcast_reaches_every_instance(mapping):
    src = Count()
    graph = chain(src, SeenAll())
    seen = run(graph, {src: 30}, mapping, 5).output("SeenAll")
    assert sorted(i for i, _ in seen) == [0, 1, 2]
    assert all(items == list(range(1, 31)) for _, items in seen)


@pytest.mark.parametrize("mapping", HYBRIDS)
@pytest.mark.parametrize("processes", [6, 8, 32])
def test_word_count_then_global_total_reaches_the_sink(mapping, processes):
    graph, inputs = word_count_pipeline(300)
    expected = run(graph, inputs, "simple")
    result = run(graph, inputs, mapping, processes)
    assert canonical(result.outputs) == canonical(expected.outputs)
    (total,) = result.output("GlobalSum")
    assert total == {"total": 300, "n": 7}  # seven keys, each counted once, emitted in postprocess
