"""Every Redis mapping gives the outputs and item counts of `simple` on every graph
shape, against a real redis-server; a run leaves no key behind, also when it fails; a
private server (`redis_url="auto"`) is started and stopped with the run."""

from __future__ import annotations

import pytest
import redis
from graphs import ALL_SHAPES, STATEFUL, Add, Count, FailOn, canonical, chain
from test_mappings_equal_simple import run_fitting

from hpcflow import PEError, UsageError, run
from hpcflow.transports.redis.keys import RunKeys

pytestmark = pytest.mark.timeout(120)

MAPPINGS = ["dyn_redis", "dyn_auto_redis", "hybrid_redis", "hybrid_auto_redis"]

CASES = [
    (shape, mapping, processes)
    for shape in sorted(ALL_SHAPES)
    for mapping in MAPPINGS
    if not (mapping.startswith("dyn_") and shape in STATEFUL)
    for processes in (2, 6)
]


@pytest.mark.parametrize("shape,mapping,processes", CASES)
def test_redis_mapping_equals_simple(redis_server, shape, mapping, processes):
    graph, inputs = ALL_SHAPES[shape]()
    expected = run(graph, inputs, "simple")
    got = run_fitting(graph, inputs, mapping, processes, redis_url=redis_server)
    assert canonical(got.outputs) == canonical(expected.outputs)
    assert got.metrics.items == expected.metrics.items
    assert got.metrics.status == "ok"
    assert got.metrics.rejected_messages == 0


@pytest.mark.parametrize("shape", sorted(STATEFUL))
def test_dyn_redis_refuses_stateful_graph(redis_server, shape):
    graph, inputs = STATEFUL[shape]()
    with pytest.raises(UsageError, match=r"stateful.*use hybrid_redis"):
        run(graph, inputs, "dyn_redis", 4, redis_url=redis_server)


def test_idle_policy_scales_from_consumer_idle_times(redis_server):
    src = Count()
    graph = chain(src, Add(1, sleep=0.002), Add(2))
    expected = run(graph, {src: 200}, "simple")
    got = run(graph, {src: 200}, "dyn_auto_redis", 5, redis_url=redis_server, autoscale="idle:interval=0.05")
    assert canonical(got.outputs) == canonical(expected.outputs)
    assert got.metrics.autoscale == "idle" and got.metrics.autoscale_timeline


def test_keys_are_deleted_after_a_run(redis_server):
    graph, inputs = ALL_SHAPES["group_by"]()
    run(graph, inputs, "hybrid_redis", 6, redis_url=redis_server, run_id="keys-ok")
    assert redis.Redis.from_url(redis_server).keys(RunKeys("keys-ok").pattern) == []


def test_keys_are_deleted_after_a_failed_run(redis_server):
    src = Count()
    graph = chain(src, Add(0), FailOn(at=13), Add(1))
    with pytest.raises(PEError, match="bad item 13"):
        run(graph, {src: 40}, "dyn_redis", 4, redis_url=redis_server, run_id="keys-failed")
    assert redis.Redis.from_url(redis_server).keys(RunKeys("keys-failed").pattern) == []


def test_private_server_runs_and_stops_with_the_run(redis_server):  # redis_server: require() a binary
    src = Count()
    graph = chain(src, Add(1), Add(2))
    expected = run(graph, {src: 50}, "simple")
    got = run(graph, {src: 50}, "dyn_redis", 3, redis_url="auto")
    assert canonical(got.outputs) == canonical(expected.outputs)
    assert got.metrics.redis == "private server"
    assert got.metrics.redis_server_cpu_s >= 0  # counted (a short run may use less than a clock tick)
