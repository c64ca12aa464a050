"""Several nodes for real: `hpcflow worker` runs in a network namespace (a second node,
joined to this one by a veth pair only) against the run's private redis-server bound to
this side's veth address, and real faults hit it: a joined worker killed, the link cut
while a worker is inside a long item, its supervisor frozen past the heartbeat, and a
client with the server's password but not the run key copying entries. Every run ends
with each item exactly once, no hang, nothing left running.
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time
from collections import Counter

import netns
import pytest
import redis
from conftest import require
from graphs import Count, chain
from test_redis_join import first, start_joiner

from hpcflow import IterativePE, run
from hpcflow.transports import find_server_binary
from hpcflow.transports.redis.keys import RunKeys
from hpcflow.transports.redis.server import PrivateServer

pytestmark = [pytest.mark.timeout(150), pytest.mark.usefixtures("no_leftover_processes")]
NODE_ENV = "HPCFLOW_TEST_NODE"  # set for the workers on the second node
FENCED_LINE = "was written off by run"
HEARTBEAT_EXPIRY_S = 12  # past the heartbeat TTL (10 s) and one check interval: the node is written off
WAIT_S = 60  # the longest the harness waits for anything


class OnNode(IterativePE):
    """Emits (item, node). On the second node, the first item to reach it does what the
    test needs once: `mark` creates a file and sleeps `hold_s` (a long item), `kill`
    SIGKILLs its process."""

    def __init__(self, sleep: float, marker: str, hold_s: float = 0.0, kill: bool = False):
        super().__init__()
        self.sleep, self.marker, self.hold_s, self.kill = sleep, marker, hold_s, kill

    def _process(self, x):
        where = os.environ.get(NODE_ENV, "here")
        if where != "here" and first(self.marker):
            if self.kill:
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(self.hold_s)
        time.sleep(self.sleep)
        return (x, where)


@pytest.fixture(scope="module")
def node():
    reason = netns.unavailable()
    require(reason is None, reason or "")
    require(find_server_binary() is not None, "redis-server")
    try:
        with netns.node("17") as n:
            yield n
    except Exception as exc:  # noqa: BLE001  # a container without CAP_NET_ADMIN refuses `ip netns add`
        require(False, f"ip netns (it failed: {exc})")


@pytest.fixture
def server(node):
    """The run's private server, reachable from the second node through the veth pair."""
    s = PrivateServer(host=netns.HOST_ADDR)
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def run_key(monkeypatch):
    monkeypatch.setenv("HPCFLOW_RUN_KEY", secrets.token_hex(32))


def wait_for(path, what):
    deadline = time.monotonic() + WAIT_S
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{what} did not happen within {WAIT_S} s"
        time.sleep(0.05)


def run_with_node(node, server, run_id, items, pe, fault=None, cpus=1):
    """The run (2 processes here, `cpus` on the node); `fault(joiner)` in a thread
    meanwhile. Returns (result, the node's stderr, its exit code)."""
    joiner = start_joiner(server.url, run_id, cpus, prefix=node.exec, env={NODE_ENV: node.name})
    faulty = threading.Thread(target=fault, args=(joiner,)) if fault else None
    try:
        if faulty:
            faulty.start()
        src = Count()
        result = run(
            chain(src, pe),
            {src: items},
            "dyn_redis",
            2,
            redis_url=server.url,
            run_id=run_id,
            stall_timeout=60,
            help_pool=False,  # one local worker: the run outlasts the node's long item (as the tests assume)
        )
        if faulty:
            faulty.join(WAIT_S)
            assert not faulty.is_alive(), "the fault did not end"
        _, err = joiner.communicate(timeout=WAIT_S)
    finally:
        if joiner.poll() is None:
            os.kill(joiner.pid, signal.SIGCONT)
            joiner.kill()
            joiner.wait()
    return result, err, joiner.returncode


def assert_exact(result, items):
    out = result.output("OnNode")
    counts = Counter(x for x, _ in out)
    assert sorted(counts) == list(range(1, items + 1)), "items missing"
    assert set(counts.values()) == {1}, f"items twice: {[x for x, n in counts.items() if n > 1]}"
    assert result.metrics.status == "ok"
    return Counter(where for _, where in out)


def test_a_worker_on_another_node_joins(node, server, tmp_path):
    pe = OnNode(0.02, str(tmp_path / "never"), hold_s=0.0)
    result, err, code = run_with_node(node, server, "netns-join", 80, pe, cpus=2)
    assert code == 0, err
    where = assert_exact(result, 80)
    assert where[node.name] > 0, "the other node did no work"
    assert result.metrics.workers_joined == 2


def test_a_killed_worker_on_another_node_is_replayed(node, server, tmp_path):
    marker = tmp_path / "killed"
    pe = OnNode(0.02, str(marker), kill=True)
    result, err, code = run_with_node(node, server, "netns-kill", 80, pe, cpus=2)
    assert marker.exists(), "no worker was killed on the node"
    assert code == 0, err
    assert_exact(result, 80)
    assert result.metrics.workers_replaced == 1


CUT_LINE = "hpcflow: error: cannot reach run "  # the node's last line when it was cut off past the heartbeat


def test_link_down_while_inside_a_long_item(node, server, tmp_path):
    """The node's link is down past the heartbeat's lifetime while its worker is inside a
    long item: the coordinator writes the node off and replays; the node, which cannot
    tell how the run goes, stops its workers and says so in one line (exit 1), not
    "served"."""
    marker = tmp_path / "long"

    def cut(_joiner):
        wait_for(marker, "the long item on the node")
        node.link(up=False)
        try:
            time.sleep(HEARTBEAT_EXPIRY_S)  # the fault itself: how long the cable stays out
        finally:
            node.link(up=True)

    pe = OnNode(0.08, str(marker), hold_s=HEARTBEAT_EXPIRY_S + 2)
    result, err, code = run_with_node(node, server, "netns-link", 240, pe, fault=cut)
    assert_exact(result, 240)
    assert code == 1 and err.splitlines()[-1].startswith(CUT_LINE), err
    assert "this node's workers stop" in err and "Traceback" not in err
    assert result.metrics.workers_replaced == 1


def test_a_node_cut_off_until_the_run_ends_reports_it_and_stops(node, server, tmp_path):
    """The link stays down until the run has ended without the node: the node does not
    wait for its blocked workers' socket timeouts nor report itself served (exit 0); it
    stops once its heartbeat has expired, with one line."""
    marker = tmp_path / "started"

    def cut(joiner):
        wait_for(marker, "work on the node")
        node.link(up=False)
        try:
            joiner.wait(WAIT_S)  # the fault: the cable stays out until the node gives up
        finally:
            node.link(up=True)

    pe = OnNode(0.05, str(marker))
    result, err, code = run_with_node(node, server, "netns-cutoff", 200, pe, fault=cut)
    assert_exact(result, 200)
    assert code == 1 and err.splitlines()[-1].startswith(CUT_LINE), err
    assert "served run" not in err


def test_supervisor_frozen_past_its_heartbeat(node, server, tmp_path):
    """SIGSTOP of `hpcflow worker` for 12 s while its worker goes on: the coordinator
    writes the node off and replays; the worker's next write is refused."""
    marker = tmp_path / "started"

    def freeze(joiner):
        wait_for(marker, "work on the node")
        os.kill(joiner.pid, signal.SIGSTOP)
        try:
            time.sleep(HEARTBEAT_EXPIRY_S)  # the fault itself: how long the supervisor is frozen
        finally:
            os.kill(joiner.pid, signal.SIGCONT)

    pe = OnNode(0.08, str(marker))
    result, err, code = run_with_node(node, server, "netns-freeze", 400, pe, fault=freeze)
    where = assert_exact(result, 400)
    assert where[node.name] > 0
    assert FENCED_LINE in err, err
    assert code == 0, err
    assert result.metrics.workers_replaced == 1


class Copier:
    """A client with the server's password but not the run key: copies every entry it
    sees in the run's streams back into them, over and over, until stopped."""

    def __init__(self, url: str, run_id: str):
        self.r = redis.Redis.from_url(url)
        self.pattern = RunKeys(run_id).prefix + "*"
        self.copied = 0
        self.stop = threading.Event()

    def __call__(self) -> None:
        while not self.stop.is_set():
            for key in self.r.scan_iter(match=self.pattern, _type="stream"):
                for _, fields in self.r.xrange(key, count=50):
                    self.r.xadd(key, fields)
                    self.copied += 1
            self.stop.wait(0.02)


def test_entries_copied_by_a_password_holder_are_dropped(node, server, tmp_path):
    copier = Copier(server.url, "netns-copy")
    thread = threading.Thread(target=copier)
    thread.start()
    try:
        pe = OnNode(0.01, str(tmp_path / "never"))
        result, err, code = run_with_node(node, server, "netns-copy", 300, pe, cpus=2)
    finally:
        copier.stop.set()
        thread.join(WAIT_S)
        copier.r.close()
    assert code == 0, err
    assert copier.copied > 0, "the copier found nothing to copy"
    assert_exact(result, 300)
    assert result.metrics.rejected_messages > 0
