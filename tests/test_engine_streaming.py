"""The streaming engine: outputs leave a worker while a call runs, their delivery is
idempotent when a worker dies mid-call, credits hold a fast producer back, and the
scheduler's deliveries ledger and flow control behave as their docstrings say."""

from __future__ import annotations

import os
from collections import Counter

import pytest
from conftest import require
from graphs import Count, KillMidCall, SignalFirst, Tag, WriteThenWait, canonical, chain

from hpcflow import ConsumerPE, run
from hpcflow.engines.delivery import DeliveryLedger
from hpcflow.engines.flow import FlowControl
from hpcflow.engines.protocol import Chunk, Delivery
from hpcflow.errors import RunAborted
from hpcflow.transports import find_server_binary

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("no_leftover_processes")]


def transport_options(mapping: str, tmp_path) -> dict:
    if "redis" not in mapping:
        return {}
    require(find_server_binary() is not None, "redis-server")
    return {}  # redis_url="auto": a private server for the run


@pytest.mark.parametrize("mapping", ["dyn_multi", "dyn_redis", "multi"])
def test_outputs_leave_while_the_call_that_writes_them_still_runs(mapping, tmp_path):
    fifo = tmp_path / "seen"
    os.mkfifo(fifo)
    src = WriteThenWait(fifo, n=50, timeout=60)
    graph = chain(src, SignalFirst(fifo), Tag())
    result = run(graph, {src: 1}, mapping, 4, **transport_options(mapping, tmp_path))
    out = result.output("Tag")
    assert ("tag", ("seen during the call", True)) in out
    assert len(out) == 51


@pytest.mark.parametrize("mapping", ["dyn_multi", "dyn_redis"])
def test_a_pool_worker_killed_mid_call_after_delivering_part_of_it_loses_and_duplicates_nothing(mapping, tmp_path):
    marker = tmp_path / "killed"
    src = Count()
    graph = chain(src, KillMidCall(marker, at=5, n=40, after=30), Tag())
    marker.touch()
    expected = run(graph, {src: 12}, "simple")
    marker.unlink()
    result = run(graph, {src: 12}, mapping, 4, **transport_options(mapping, tmp_path))
    assert marker.exists(), "the worker was not killed"
    assert canonical(result.outputs) == canonical(expected.outputs)
    assert result.metrics.items == expected.metrics.items
    assert result.metrics.workers_replaced == 1
    assert result.metrics.replays_resumed >= 1  # outputs of its lease had left, and were not sent again


class Slow(ConsumerPE):
    def _process(self, data):
        import time

        time.sleep(0.02)


def test_a_fast_producer_is_held_back_by_a_slow_unmeasured_pe():
    """Without credits the producer's 300 outputs would all be queued at once."""
    src = Count()
    result = run(chain(src, Slow()), {src: 300}, "dyn_multi", 4, max_backlog_s=0.1)
    assert result.metrics.items["Slow"] == 300
    assert result.metrics.peak_queued < 60


# -- the ledger ------------------------------------------------------------------------------


def delivery(lo: int, hi: int, source: int = 7) -> Delivery:
    return Delivery(source, lo, hi, [Chunk("B", None, hi - lo, b"", 1)], [])


def test_ledger_records_marks_and_drops_a_repeated_delivery():
    ledger = DeliveryLedger()
    assert ledger.accept(delivery(0, 4)) and ledger.accept(delivery(4, 9))
    assert ledger.delivered(7) == 9
    assert not ledger.accept(delivery(4, 9))  # a late or repeated message
    assert ledger.duplicates == 1
    assert ledger.accept(delivery(9, 12))  # a replay resumes after the mark
    ledger.forget([7])
    assert ledger.delivered(7) == 0 and ledger.marks == {}


def test_ledger_refuses_a_replay_that_overlaps_what_was_delivered():
    ledger = DeliveryLedger()
    ledger.accept(delivery(0, 4))
    with pytest.raises(RunAborted, match="overlap the 4 already delivered"):
        ledger.accept(delivery(2, 6))


# -- flow control ----------------------------------------------------------------------------


def flow(queued: dict[str, int], service: dict[str, float], capacity: int = 2) -> FlowControl:
    return FlowControl(
        1.0, 10_000, Counter({pe: capacity for pe in "ABC"}), lambda pe: service.get(pe, 0.0), Counter(queued)
    )


def test_an_unmeasured_pe_counts_each_queued_task_as_the_whole_bound():
    assert not flow({"B": 2}, {}).over("B")
    assert flow({"B": 3}, {}).over("B")
    assert not flow({"B": 30}, {"B": 0.01}).over("B")
    assert flow({"B": 30}, {"B": 0.1}).over("B")


def test_a_held_credit_goes_when_the_pe_drains():
    f = flow({"B": 30}, {"B": 0.1})
    assert f.hold(1, {"B"})
    assert f.releasable(lambda pe: [2]) == []  # worker 2 is free to run B's tasks
    assert f.hold(1, {"B"})  # a second OUTPUT
    f.queued_by_pe["B"] = 5
    assert f.releasable(lambda pe: [2]) == [(1, 2)]  # both credits at once


def test_held_credits_never_wait_on_each_other():
    """Workers 1 and 2 both wait to send to B, which only they run: one is let go."""
    f = flow({"B": 30}, {"B": 0.1})
    assert f.hold(1, {"B"}) and f.hold(2, {"B"})
    released = f.releasable(lambda pe: [1, 2])
    assert len(released) == 1 and len(f.held) == 1
