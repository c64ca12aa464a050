"""Chained stateless stages (engines/chain.py): a pool worker runs the next pool PE on an
item in process. Every mapping's outputs and per-PE counts equal `simple`'s on chained
graphs; a worker killed mid-chain, a checkpoint taken mid-chain and a PE failing inside a
chain behave as without chains. Each source is slowed a little so that the run goes on
long after the stages are measured (chaining starts then), and each test checks that
chains did run."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest
from graphs import Add, Count, CountPerKey, GlobalSum, KeyBy, Merge, Tag, canonical, chain

from hpcflow import GenericPE, IterativePE, PEError, WorkflowGraph, run
from hpcflow.errors import RunAborted

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("no_leftover_processes")]

POOLED = ["dyn_multi", "dyn_auto_multi", "hybrid_multi", "hybrid_auto_multi"]
REDIS = ["dyn_redis", "hybrid_redis"]


class SlowCount(Count):
    """Count, 0.2 ms an item: the run outlasts the first measurements."""

    def _process(self, inputs):
        time.sleep(0.0002)
        return super()._process(inputs)


def in_a_chain() -> bool:
    """Whether the calling PE runs in a chain (a Chain.sink frame is below it)."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "sink" and frame.f_code.co_filename.endswith(os.path.join("engines", "chain.py")):
            return True
        frame = frame.f_back
    return False


def first_in_a_chain(marker: str) -> bool:
    """Whether the caller runs in a chain, for the first time in the run (it creates the
    file `marker`; a reference run creates it first)."""
    if not in_a_chain():
        return False
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


class Fork(GenericPE):
    """x to both of its ports (a fan-out of two streams from one port is tested too)."""

    def __init__(self):
        super().__init__()
        self._add_input("input")
        self._add_output("left")
        self._add_output("right")

    def process(self, inputs):
        x = inputs["input"]
        self.write("left", x)
        self.write("right", -x)


def three_stages(n=1500):
    src = SlowCount()
    return chain(src, Add(1), Add(2), Add(3)), {src: n}


def to_group_by_and_global(n=1500):
    src = SlowCount()
    return chain(src, Add(1), Add(2), KeyBy(), CountPerKey(), GlobalSum()), {src: n}


def fan_out(n=1500):
    """One port to two PEs (not chained), each going on through a chainable stage."""
    src = SlowCount()
    first, left, right = Add(1), Add(10), Add(20)
    g = WorkflowGraph()
    g.connect(src, "output", first, "input")
    g.connect(first, "output", left, "input")
    g.connect(first, "output", right, "input")
    g.connect(left, "output", Add(100), "input")
    g.connect(right, "output", Add(200), "input")
    return g, {src: n}


def two_inputs(n=1500):
    """Merge has two inputs, each fed by a chainable stream."""
    src = SlowCount()
    fork, merge, add = Fork(), Merge(), Add(5)
    g = WorkflowGraph()
    g.connect(src, "output", fork, "input")
    g.connect(fork, "left", merge, "a")
    g.connect(fork, "right", add, "input")
    g.connect(add, "output", merge, "b")
    g.connect(merge, "output", Tag(), "input")
    return g, {src: n}


GRAPHS = {"three_stages": three_stages, "group_by_and_global": to_group_by_and_global}
GRAPHS |= {"fan_out": fan_out, "two_inputs": two_inputs}


def stateless(name: str) -> bool:
    return name != "group_by_and_global"


def mappings_for(name: str, candidates: list[str]) -> list[str]:
    return [m for m in candidates if stateless(name) or not m.startswith("dyn_")]


CASES = [(g, m) for g in GRAPHS for m in mappings_for(g, POOLED)]


@pytest.mark.parametrize(("shape", "mapping"), CASES)
def test_chained_graphs_equal_simple(shape, mapping):
    graph, inputs = GRAPHS[shape]()
    expected = run(graph, inputs, "simple")
    graph, inputs = GRAPHS[shape]()
    result = run(graph, inputs, mapping, 8)
    assert canonical(result.outputs) == canonical(expected.outputs)
    assert result.metrics.items == expected.metrics.items  # every chained task counted, once
    assert result.metrics.tasks_chained > 0


@pytest.mark.parametrize("shape", list(GRAPHS))
def test_multi_and_chain_false_do_not_chain(shape):
    graph, inputs = GRAPHS[shape](300)
    expected = run(graph, inputs, "simple")
    graph, inputs = GRAPHS[shape](300)
    static = run(graph, inputs, "multi", 8)
    graph, inputs = GRAPHS[shape](300)
    unchained = run(graph, inputs, "hybrid_multi", 8, chain=False)
    for result in (static, unchained):
        assert canonical(result.outputs) == canonical(expected.outputs)
        assert result.metrics.tasks_chained == 0


@pytest.mark.parametrize(("shape", "mapping"), [(g, m) for g in GRAPHS for m in mappings_for(g, REDIS)])
def test_chained_graphs_equal_simple_on_redis(redis_server, shape, mapping):
    graph, inputs = GRAPHS[shape]()
    expected = run(graph, inputs, "simple")
    graph, inputs = GRAPHS[shape]()
    result = run(graph, inputs, mapping, 8, redis_url=redis_server)
    assert canonical(result.outputs) == canonical(expected.outputs)
    assert result.metrics.items == expected.metrics.items
    assert result.metrics.tasks_chained > 0


class FailInChain(IterativePE):
    """Raises on the first item it gets in a chain from `at` on, once per run: the item
    goes in the file `record`, created then."""

    def __init__(self, record, at=0):
        super().__init__()
        self.record, self.at = str(record), at

    def _process(self, x):
        if x >= self.at and in_a_chain():
            try:
                fd = os.open(self.record, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return x
            os.write(fd, str(x).encode())
            os.close(fd)
            raise ValueError(f"bad item {x}")
        return x


@pytest.mark.parametrize("mapping", ["dyn_multi", "hybrid_multi", "dyn_redis"])
def test_a_pe_failing_in_a_chain_is_named_with_its_item(tmp_path, mapping, request):
    options = {"redis_url": request.getfixturevalue("redis_server")} if mapping.endswith("redis") else {}
    src = SlowCount()
    graph = chain(src, Add(0), FailInChain(tmp_path / "failed", at=300), Add(1))
    with pytest.raises(PEError) as info:
        run(graph, {src: 1500}, mapping, 4, **options)
    err = info.value
    item = int((tmp_path / "failed").read_text())
    assert err.pe == "FailInChain" and f"bad item {item}" in str(err) and str(item) in err.item
    assert err.result.metrics.status == "failed"


@pytest.mark.parametrize("mapping", ["dyn_multi", "hybrid_multi"])
@pytest.mark.parametrize("policy", ["skip", "retry:1"])
def test_on_error_policies_hold_inside_a_chain(tmp_path, mapping, policy):
    """skip: the item is recorded, naming the chained PE, and left out; retry: its second
    attempt (FailInChain fails once) goes through."""
    src = SlowCount()
    graph = chain(src, Add(0), FailInChain(tmp_path / "failed", at=300), Add(1))
    result = run(graph, {src: 1500}, mapping, 4, on_error=policy)
    item = int((tmp_path / "failed").read_text())
    got = sorted(x for ports in result.outputs.values() for items in ports.values() for x in items)
    assert result.metrics.tasks_chained > 0
    if policy == "skip":
        assert got == [x + 1 for x in range(1, 1501) if x != item]
        assert [(e["pe"], f"bad item {item}" in e["error"]) for e in result.errors] == [("FailInChain", True)]
    else:
        assert got == [x + 1 for x in range(1, 1501)]
        assert result.errors == []


class MidChain(GenericPE):
    """Writes x twice; the first time it runs in a chain (once per run: a marker file), it
    waits between the two writes long enough for the first to be delivered (FLUSH_S),
    then `act`s: "kill" SIGKILLs its worker (the replay must resume after what was
    delivered); "stop" sends SIGTERM to the coordinator (this test's process) and waits,
    so that the checkpoint that stops the run is taken while the chunk runs the chain."""

    def __init__(self, marker, act):
        super().__init__()
        self._add_input("input")
        self._add_output("output")
        self.marker, self.act = str(marker), act

    def process(self, inputs):
        x = inputs["input"]
        self.write("output", (x, 0))
        if not first_in_a_chain(self.marker):
            self.write("output", (x, 1))
            return
        time.sleep(0.05)
        self.write("output", (x, 1))  # this write sends the first (it is more than FLUSH_S old)
        if self.act == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        os.kill(os.getppid(), signal.SIGTERM)
        time.sleep(1.0)  # the checkpoint is taken meanwhile; the run then stops this worker


@pytest.mark.parametrize("mapping", ["dyn_multi", "hybrid_auto_multi", "dyn_redis"])
def test_a_worker_killed_mid_chain_replays_exactly(tmp_path, mapping, request):
    options = {"redis_url": request.getfixturevalue("redis_server")} if mapping.endswith("redis") else {}
    marker = tmp_path / "killed"
    src = SlowCount()
    graph = chain(src, Add(1), MidChain(marker, "kill"), Tag())
    marker.touch()
    expected = run(graph, {src: 1500}, "simple")
    marker.unlink()
    src = SlowCount()
    graph = chain(src, Add(1), MidChain(marker, "kill"), Tag())
    result = run(graph, {src: 1500}, mapping, 4, help_pool=False, **options)  # the kill lands in a pool worker
    assert marker.exists(), "no worker was killed in a chain"
    assert canonical(result.outputs) == canonical(expected.outputs)  # nothing lost, nothing twice
    assert result.metrics.items == expected.metrics.items
    assert result.metrics.workers_replaced == 1
    assert result.metrics.replays_resumed >= 1  # the replay dropped the writes already delivered


@pytest.mark.parametrize("mapping", ["dyn_multi", "hybrid_multi"])
def test_a_checkpoint_taken_mid_chain_resumes_exactly(tmp_path, mapping):
    marker, ck = tmp_path / "signalled", str(tmp_path / "ck")

    def graph():
        src = SlowCount()
        return chain(src, Add(1), MidChain(marker, "stop"), Tag()), {src: 1500}

    marker.touch()
    expected = run(*graph(), "simple")
    marker.unlink()
    with pytest.raises(RunAborted, match="SIGTERM"):
        run(*graph(), mapping, 4, help_pool=False, checkpoint_dir=ck)
    assert marker.exists()
    resumed = run(*graph(), mapping, 4, checkpoint_dir=ck, resume=True)
    assert canonical(resumed.outputs) == canonical(expected.outputs)
    assert resumed.metrics.items == expected.metrics.items


class DoubleOnWrite(IterativePE):
    """Overrides write(): what process() returns goes through it (the hot path must not skip it)."""

    def _process(self, x):
        return x

    def write(self, name, data):
        super().write(name, data * 2)


@pytest.mark.parametrize("mapping", ["simple", "dyn_multi"])
def test_an_overridden_write_sees_what_process_returns(mapping):
    src = SlowCount()
    graph = chain(src, Add(0), DoubleOnWrite(), Add(1))
    result = run(graph, {src: 600}, mapping, 4)
    got = sorted(x for ports in result.outputs.values() for items in ports.values() for x in items)
    assert got == [2 * x + 1 for x in range(1, 601)]


# -- prefetch: a dose sent ahead to a busy worker ---------------------------------------


class Blow(IterativePE):
    """x -> (x, 200 KB): big items between pool stages."""

    def _process(self, x):
        return (x, bytes(200_000))


class Slow(IterativePE):
    """Passes an item on after 2 ms: slower than a chain takes, so its items are queued."""

    def _process(self, item):
        time.sleep(0.002)
        return item


class Shrink(IterativePE):
    def _process(self, item):
        return (item[0], len(item[1]))


@pytest.mark.parametrize("mapping", ["dyn_multi", "hybrid_multi"])
def test_big_items_with_doses_sent_ahead_never_block(mapping):
    """Workers busy writing big outputs while the queues hold big tasks: a dose sent ahead
    that filled a busy worker's pipe blocked the coordinator, and with it every worker
    (a README example hung so). The run ends, with the right result."""
    src = SlowCount()
    graph = chain(src, Blow(), Slow(), Slow(), Shrink())
    result = run(graph, {src: 300}, mapping, 6)
    got = sorted(x for ports in result.outputs.values() for items in ports.values() for x in items)
    assert got == [(x, 200_000) for x in range(1, 301)]
