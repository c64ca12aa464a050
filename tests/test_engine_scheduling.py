"""Scheduling properties of the shared-memory engine: bounded memory under a fast
source, spawn as well as fork, PEs instantiated once per worker, metrics recorded."""

from __future__ import annotations

import os

import psutil
import pytest
from graphs import Add, Count, canonical, chain, linear, word_count_pipeline

from hpcflow import IterativePE, run
from hpcflow.api import prepare
from hpcflow.engines.coordinator import Coordinator
from hpcflow.engines.protocol import MAX_CHUNK
from hpcflow.workflows.pipeline import build

pytestmark = pytest.mark.timeout(300)


def test_million_item_source_runs_in_bounded_memory():
    graph, inputs, _ = build(items=1_000_000, stages=1)
    rss0 = psutil.Process().memory_info().rss
    result = run(graph, inputs, "dyn_multi", 4, collect=False, max_queued=2000)
    grown = psutil.Process().memory_info().rss - rss0
    m = result.metrics
    assert m.items == {"Source": 1_000_000, "Stage": 1_000_000}
    # the source is only fed while fewer than max_queued tasks wait; what each worker
    # holds (at most a chunk's worth) may come back on top of that
    assert m.peak_queued <= 2000 + 4 * MAX_CHUNK
    assert grown < 100 * 2**20, f"coordinator grew by {grown / 2**20:.0f} MiB"


@pytest.mark.parametrize("mapping", ["multi", "hybrid_multi"])
def test_fast_source_is_throttled_on_static_and_hybrid(mapping):
    graph, inputs, _ = build(items=100_000, stages=2, stateful=True)
    result = run(graph, inputs, mapping, 10, collect=True, max_queued=1000)
    assert result.output("Total")[0]["total"] == 100_000
    assert result.metrics.peak_queued <= 1000 + 10 * MAX_CHUNK  # vs 100 000 unthrottled


@pytest.mark.parametrize("mapping", ["multi", "dyn_multi", "hybrid_multi"])
def test_spawn_start_method(mapping):
    graph, inputs = word_count_pipeline(60) if mapping != "dyn_multi" else (None, None)
    if graph is None:
        src = Count()
        graph, inputs = chain(src, Add(1), Add(2)), {src: 60}
    expected = run(graph, inputs, "simple")
    result = run(graph, inputs, mapping, 6, start_method="spawn")
    assert canonical(result.outputs) == canonical(expected.outputs)


class CountInstances(IterativePE):
    """Emits (pid, how many times preprocess ran in this object)."""

    def __init__(self):
        super().__init__()
        self.preprocessed = 0

    def preprocess(self):
        self.preprocessed += 1

    def _process(self, x):
        return (os.getpid(), self.preprocessed, id(self))


def test_pool_workers_hold_one_copy_of_each_pe():
    src = Count()
    graph = chain(src, Add(0, sleep=0.001), CountInstances())
    result = run(graph, {src: 200}, "dyn_multi", 4)
    seen = result.output("CountInstances")
    assert {n for _, n, _ in seen} == {1}  # preprocess once, never again
    copies_per_pid = {}
    for pid, _, obj in seen:
        copies_per_pid.setdefault(pid, set()).add(obj)
    assert all(len(objs) == 1 for objs in copies_per_pid.values())  # no per-task copies
    assert len(copies_per_pid) <= 4  # 3 pool workers and the producer's process, which helps the pool


def test_metrics_are_recorded():
    src = Count()
    graph = chain(src, Add(0, sleep=0.002), Add(1))
    m = run(graph, {src: 100}, "dyn_multi", 3).metrics
    d = m.to_dict()
    for key in (
        "runtime_s",
        "process_time_s",
        "cpu_time_s",
        "items",
        "timeline",
        "host",
        "allocation",
        "hpcflow_version",
        "startup_s",
        "tail_s",
        "workers_started",
    ):
        assert key in d
    assert d["workers_started"] == 3
    assert 0 < d["process_time_s"] <= 3 * d["runtime_s"] * 1.01
    assert d["timeline"] and all(len(s) == 3 for s in d["timeline"])


@pytest.mark.parametrize("mapping", ["multi", "dyn_multi", "hybrid_multi", "dyn_auto_multi"])
def test_the_coordinator_sleeps_while_its_workers_work(monkeypatch, mapping):
    """It wakes for a message, a worker's exit or a timeline sample, never in a busy loop
    (it did without an auto-scaler: its next scaling step was always due)."""
    from hpcflow.engines import coordinator
    from hpcflow.transports import shm

    woken_for_nothing = 0
    real_wait = shm.wait

    def wait(objects, timeout=None):
        nonlocal woken_for_nothing
        ready = real_wait(objects, timeout)
        woken_for_nothing += not ready
        return ready

    monkeypatch.setattr(shm, "wait", wait)
    src = Count()
    result = run(chain(src, Add(1, sleep=0.02)), {src: 30}, mapping, 3)
    assert sorted(result.output("Add")) == list(range(2, 32))
    steps = result.metrics.runtime_s / min(coordinator.SAMPLE_S, 0.1)  # samples and auto-scaler steps
    assert woken_for_nothing <= 2 * steps + 5


def test_the_roots_are_fed_before_the_pool_workers_start(monkeypatch):
    """The first task does not wait for the last worker's start: the roots' first inputs
    are handed out as soon as the pinned instances are started, before any pool worker."""
    graph, inputs = linear(30)
    coord = Coordinator(prepare(graph, inputs, "dyn_multi", 4))
    fed_at_pool_start = []
    start = coord.start_worker

    def start_worker(pinned=None):
        if pinned is None:
            fed_at_pool_start.append(sum(feed.sent for feed in coord.feeds.values()))
        return start(pinned)

    monkeypatch.setattr(coord, "start_worker", start_worker)
    outcome = coord.run()
    assert outcome.failure is None
    assert len(fed_at_pool_start) == coord.plan.pool >= 1
    assert all(sent > 0 for sent in fed_at_pool_start)
