"""dispel4py code that writes to an output port it never declared, and that holds a
function defined in a function, on every mapping without Redis (the Redis mappings:
test_redis_dispel4py_local_code.py; mpi: tests/mpi). The result is dispel4py's `simple`'s:
the undeclared port's items are an output of that port."""

from __future__ import annotations

import threading

import pytest
from graphs import canonical, run_fitting

from hpcflow import GenericPE, UsageError, WorkflowGraph, run
from tests.dispel4py_corpus import local_code
from tests.dispel4py_corpus.pes import NumberProducer

pytestmark = pytest.mark.timeout(300)

MAPPINGS = ["simple", "multi", "dyn_multi", "dyn_auto_multi", "hybrid_multi", "hybrid_auto_multi"]
N = 6


def expected(n=N, factor=local_code.FACTOR):
    scaled = [i * factor for i in range(1, n + 1)]
    return {"Reporter": {"output": scaled, "square": [x * x for x in scaled]}}


def check(mapping, **options):
    result = run_fitting(local_code.graph, {local_code.producer: N}, mapping, 4, **options)
    assert canonical(result.outputs) == canonical(expected())
    assert result.metrics.items == {"NumberProducer": N, "PE_scale": N, "Reporter": N}
    assert result.metrics.status == "ok"


@pytest.mark.parametrize("mapping", MAPPINGS)
def test_undeclared_port_and_local_function(mapping):
    check(mapping)


class Total(GenericPE):
    """Stateful (global grouping), writes its total in postprocess() to an undeclared port."""

    def __init__(self):
        GenericPE.__init__(self)
        self._add_input("input", grouping="global")
        self.total = 0

    def _process(self, inputs):
        self.total += inputs["input"]

    def _postprocess(self):
        self.write("total", self.total)


@pytest.mark.parametrize("mapping", ["simple", "multi", "hybrid_multi", "hybrid_auto_multi"])
def test_undeclared_port_written_in_postprocess_by_a_pinned_instance(mapping):
    producer = NumberProducer()
    graph = WorkflowGraph()
    graph.connect(producer, "output", Total(), "input")
    result = run_fitting(graph, {producer: N}, mapping, 3)
    assert result.outputs["Total"] == {"total": [N * (N + 1) // 2]}


class HoldsLock(GenericPE):
    def __init__(self):
        GenericPE.__init__(self)
        self._add_input("input")
        self.lock = threading.Lock()

    def _process(self, inputs):
        return None


def test_a_pe_that_cannot_be_shipped_to_spawned_workers_is_named():
    producer = NumberProducer()
    graph = WorkflowGraph()
    graph.connect(producer, "output", HoldsLock(), "input")
    with pytest.raises(UsageError, match=r"PE HoldsLock cannot be pickled to start a worker"):
        run(graph, {producer: 2}, "dyn_multi", 3, start_method="spawn")
