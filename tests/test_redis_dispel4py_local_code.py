"""test_dispel4py_local_code.py's workflow on the Redis mappings, against a real
redis-server: a PE holding a function defined in a function is shipped with cloudpickle;
one that holds what cannot be shipped at all is refused before the run, named."""

from __future__ import annotations

import pytest
from test_dispel4py_local_code import HoldsLock, check

from hpcflow import UsageError, WorkflowGraph, run
from tests.dispel4py_corpus.pes import NumberProducer

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("mapping", ["dyn_redis", "dyn_auto_redis", "hybrid_redis", "hybrid_auto_redis"])
def test_undeclared_port_and_local_function_on_redis(redis_server, mapping):
    check(mapping, redis_url=redis_server)


def test_a_pe_that_cannot_be_shipped_to_redis_workers_is_named(redis_server):
    producer = NumberProducer()
    graph = WorkflowGraph()
    graph.connect(producer, "output", HoldsLock(), "input")
    with pytest.raises(UsageError, match=r"PE HoldsLock cannot be shipped to the Redis workers \(cloudpickle"):
        run(graph, {producer: 2}, "dyn_redis", 3, redis_url=redis_server)
