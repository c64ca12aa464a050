"""Faults on Redis: a SIGKILLed pool worker's pending entries are replayed (nothing
lost, nothing twice), a lost pinned instance ends the run with a clear error, a failing
PE names itself, a forged message is rejected and never unpickled."""

from __future__ import annotations

import os
import pickle
import threading
import time

import pytest
import redis
from conftest import require
from graphs import Add, Count, FailOn, canonical, chain
from test_engine_faults import kill_graph

from hpcflow import GenericPE, IterativePE, PEError, run
from hpcflow.errors import RunAborted
from hpcflow.transports import find_server_binary
from hpcflow.transports.redis.keys import RunKeys

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("mapping", ["dyn_redis", "dyn_auto_redis", "hybrid_redis"])
def test_pool_worker_sigkill_loses_and_duplicates_nothing(redis_server, tmp_path, mapping):
    marker = tmp_path / "killed"
    graph, inputs = kill_graph(marker)
    marker.touch()  # the in-process reference run must not kill the test
    expected = run(graph, inputs, "simple")
    marker.unlink()
    result = run(graph, inputs, mapping, 4, redis_url=redis_server)
    assert marker.exists(), "the worker was not killed"
    assert canonical(result.outputs) == canonical(expected.outputs)
    assert result.metrics.items == expected.metrics.items
    assert result.metrics.workers_replaced == 1


class KillWhileCounting(GenericPE):
    """A stateful (global) PE that SIGKILLs its own process on item `at`."""

    def __init__(self, at=10):
        super().__init__()
        self._add_input("input", grouping="global")
        self._add_output("output")
        self.at = at

    def process(self, inputs):
        if inputs["input"] == self.at:
            os.kill(os.getpid(), 9)


def test_pinned_instance_loss_ends_run_with_clear_error(redis_server):
    src = Count()
    graph = chain(src, Add(0), KillWhileCounting(at=10))
    with pytest.raises(RunAborted, match=r"PE KillWhileCounting\[0\] died \(signal 9\)"):
        run(graph, {src: 30}, "hybrid_redis", 4, redis_url=redis_server)


def test_failing_pe_names_pe_instance_and_item(redis_server):
    src = Count()
    graph = chain(src, Add(0), FailOn(at=13), Add(1))
    with pytest.raises(PEError) as info:
        run(graph, {src: 40}, "dyn_redis", 4, redis_url=redis_server)
    err = info.value
    assert err.pe == "FailOn" and err.instance == 0
    assert "ValueError: bad item 13" in str(err)
    assert err.result.metrics.status == "failed"


class Payload:
    """What a forger would send: unpickling it would create `path`."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


class Forger(IterativePE):
    """On item 1, writes forged entries into the run's streams, as anyone who can reach
    the server could: one unsigned for the workers, one with a made-up signature for the
    coordinator."""

    def __init__(self, url, run_id, marker):
        super().__init__()
        self.url, self.run_id, self.marker = url, run_id, str(marker)

    def _process(self, x):
        if x == 1:
            keys = RunKeys(self.run_id)
            r = redis.Redis.from_url(self.url)
            evil = pickle.dumps(Payload(self.marker))
            r.xadd(keys.pool("Add"), {"d": evil})
            r.xadd(keys.events, {"d": pickle.dumps((0, ("done", evil))), "s": b"0" * 32})
            r.close()
        return x


def test_forged_messages_are_rejected_never_unpickled(redis_server, tmp_path):
    marker = tmp_path / "pwned"
    src = Count()
    graph = chain(src, Forger(redis_server, "forged", marker), Add(1))
    result = run(graph, {src: 30}, "dyn_redis", 3, redis_url=redis_server, run_id="forged")
    assert not marker.exists()
    assert sorted(result.output("Add")) == list(range(2, 32))
    assert result.metrics.rejected_messages == 2


@pytest.mark.usefixtures("no_leftover_processes")
def test_redis_server_lost_mid_run_is_a_clear_error_not_a_hang():
    from hpcflow.transports.redis.server import PrivateServer

    require(find_server_binary() is not None, "redis-server")
    server = PrivateServer()
    src = Count()
    graph = chain(src, Add(1, sleep=0.05), Add(2))
    outcome: dict = {}

    def go():
        try:
            outcome["result"] = run(graph, {src: 400}, "dyn_redis", 4, redis_url=server.url)
        except Exception as exc:  # what the test asserts on
            outcome["error"] = exc

    runner = threading.Thread(target=go)
    runner.start()
    time.sleep(1.5)  # let items flow
    server.proc.kill()
    runner.join(timeout=60)
    server.stop()
    assert not runner.is_alive(), "the run hung after its Redis server died"
    assert isinstance(outcome.get("error"), RunAborted), outcome
    assert "lost the Redis server mid-run" in str(outcome["error"])
