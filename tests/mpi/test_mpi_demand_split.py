"""The `mpi` mapping's demand-driven shuffle (engines/mpi_credit.py) under mpiexec: a
shuffle to a PE of several instances goes where the credits allow, and the outputs stay
those of `simple` (`mpiexec -n 4 python -m pytest --with-mpi tests/mpi`)."""

from __future__ import annotations

import time

import pytest

from hpcflow import GenericPE, IterativePE, PEError, WorkflowGraph, run
from tests.mpi.test_mpi_mapping import Double, KeyedNumbers, Numbers, rank, same_outputs

pytestmark = [pytest.mark.mpi(min_size=4), pytest.mark.timeout(120)]


class SometimesSlow(IterativePE):
    """Items of unequal cost: every fourth sleeps, so the instances' credits differ."""

    def _process(self, x):
        if x % 4 == 0:
            time.sleep(0.002)
        return x + 1


class SlowFailOn(SometimesSlow):
    def _process(self, x):
        if x == 60:
            raise ValueError(f"no {x}")
        time.sleep(0.001)
        return x


class Mixed(GenericPE):
    """Two instances, a shuffle input and a group-by input."""

    def __init__(self):
        super().__init__()
        self._add_input("a")
        self._add_input("b", grouping=[0])
        self._add_output("output")
        self.numprocesses = 2

    def process(self, inputs):
        port, (key, n) = next(iter(inputs.items()))
        self.write("output", (port, key, n))


def fan_in() -> WorkflowGraph:
    graph = WorkflowGraph()
    double = Double()
    graph.connect(Numbers(), "output", double, "input")
    graph.connect(KeyedNumbers(), "output", double, "input")
    return graph


def uneven() -> WorkflowGraph:
    graph = WorkflowGraph()
    graph.connect(Numbers(), "output", SometimesSlow(), "input")
    return graph


def mixed_ports() -> WorkflowGraph:
    graph = WorkflowGraph()
    keyed, mixed = KeyedNumbers(), Mixed()
    graph.connect(keyed, "output", mixed, "a")
    graph.connect(keyed, "output", mixed, "b")
    return graph


@pytest.mark.parametrize("build", [fan_in, uneven, mixed_ports], ids=lambda f: f.__name__)
def test_split_by_demand_gives_simples_outputs(build):
    result = run(build(), 200, mapping="mpi")
    expected = run(build(), 200, mapping="simple")
    assert result.metrics.items == expected.metrics.items
    if rank() == 0:
        assert result.outputs and same_outputs(result.outputs, expected.outputs)


def test_a_failure_stops_a_source_that_waits_for_credit():
    graph = WorkflowGraph()
    graph.connect(Numbers(), "output", SlowFailOn(), "input")
    with pytest.raises(PEError) as info:
        run(graph, 100_000, mapping="mpi")
    assert info.value.pe == "SlowFailOn" and "60" in info.value.item
    assert info.value.result.metrics.items["Numbers"] < 100_000
