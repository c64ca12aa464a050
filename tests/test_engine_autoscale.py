"""Auto-scaling in the shared-memory engine, end to end: a bursty load parks workers,
a parked worker costs no CPU, and every policy runs and is named in the metrics.

No assertion is about time: the pauses only make room for what is checked, and what
is checked is what the engine did (its metrics, and the CPU counters of its workers)."""

from __future__ import annotations

import json
import os
import threading
import time

import psutil
import pytest
from graphs import canonical, linear

from hpcflow import IterativePE, ProducerPE, WorkflowGraph, run
from hpcflow.api import prepare
from hpcflow.engines.coordinator import Coordinator
from hpcflow.workflows.pipeline import build

pytestmark = pytest.mark.timeout(120)

PROCESSES = 6  # the source's process and a pool of 5


def bursty(bursts: int = 2, pause: float = 1.0, cpu: float = 0.0):
    """Bursts of 20 items through two 10 ms stages (and `cpu` s of busy work), each
    after `pause` seconds."""
    return build(items=20 * bursts, burst=20, pause=pause, stages=2, latency=0.01, cpu=cpu)


def test_a_bursty_load_parks_workers_and_wakes_the_pool_for_a_burst():
    graph, inputs, _ = bursty()
    expected = run(graph, inputs, "simple")
    m = run(graph, inputs, "dyn_auto_multi", PROCESSES, autoscale="backlog").metrics
    assert m.status == "ok" and m.items == expected.metrics.items
    assert min(active for _, active, _ in m.timeline) < PROCESSES
    assert m.process_time_s < PROCESSES * m.runtime_s
    targets = [n for _, n in m.autoscale_timeline]
    top = targets.index(max(targets))  # the burst streams in as it is written: workers are woken for it
    assert targets[top] > targets[0]
    assert min(targets[top:]) < targets[top]  # and parked again after it


def test_on_shared_memory_the_whole_pool_is_parked_between_bursts():
    graph, inputs, _ = bursty(pause=0.5)
    expected = run(graph, inputs, "simple")
    got = run(graph, inputs, "dyn_auto_multi", PROCESSES, autoscale="backlog")
    assert canonical(got.outputs) == canonical(expected.outputs)
    targets = [n for _, n in got.metrics.autoscale_timeline]
    assert targets[0] == 0 and max(targets) > 0  # nothing queued at the start: no pool worker active
    top = targets.index(max(targets))
    assert 0 in targets[top:]  # and none again once the first burst is worked off


def test_the_papers_rules_keep_one_pool_worker_active():
    graph, inputs, _ = bursty(bursts=1, pause=0.3)
    m = run(graph, inputs, "dyn_auto_multi", PROCESSES, autoscale="idle").metrics
    assert min(n for _, n in m.autoscale_timeline) >= 1


def test_dyn_multi_keeps_every_pool_worker_active():
    graph, inputs, _ = bursty(bursts=1, pause=0.3)
    m = run(graph, inputs, "dyn_multi", PROCESSES).metrics
    assert all(active >= PROCESSES - 1 for _, active, _ in m.timeline)  # the source's process ends early
    assert "autoscale" not in m.to_dict()


TICK_S = 1 / os.sysconf("SC_CLK_TCK")  # the granularity of a process's CPU time


def cpu_s(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def parked_snapshot(coord: Coordinator) -> dict[int, tuple[float, float]]:
    """{worker id: (active seconds so far, CPU seconds)} of the pool workers parked now.

    A worker is in it only if parked before and after its CPU time is read, with no
    park in between (which would have added to its active seconds)."""
    snap = {}
    for w in list(coord.workers.values()):
        if not (w.pool and w.alive):
            continue
        before = (w.parked, w.active_s)
        try:
            cpu = cpu_s(coord.broker.slots[w.id].proc.pid)  # white-box: the shared-memory broker's process
        except psutil.NoSuchProcess:
            continue
        if before[0] and (w.parked, w.active_s) == before:
            snap[w.id] = (w.active_s, cpu)
    return snap


def test_a_parked_worker_uses_no_cpu_while_parked():
    graph, inputs, _ = bursty(bursts=2, pause=1.5, cpu=0.01)  # CPU time shows work done
    coord = Coordinator(prepare(graph, inputs, "dyn_auto_multi", PROCESSES, autoscale="backlog"))
    snaps: list[dict[int, tuple[float, float]]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if coord.started_at is not None:  # every worker has started: none is busy starting up
                snaps.append(parked_snapshot(coord))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        outcome = coord.run()
    finally:
        done.set()
        watcher.join()
    assert outcome.failure is None
    parked_spans = after_work = 0
    for a, b in zip(snaps, snaps[1:], strict=False):
        for wid in a.keys() & b.keys():
            (active_a, cpu_a), (active_b, cpu_b) = a[wid], b[wid]
            if active_a != active_b:
                continue  # woken and parked again in between: not parked throughout
            # One clock tick at most: a worker parked right after its report may still be
            # returning to its pipe read when marked parked; a polling one would burn ~1.5 s.
            assert cpu_b - cpu_a <= TICK_S + 1e-9, f"worker {wid} used {cpu_b - cpu_a:.2f} s of CPU while parked"
            parked_spans += 1
            after_work += cpu_a > 0
    # The whole pool is parked from the start to the first burst, 1.5 s in;
    # the burst wakes them all (its tasks are not measured yet: a worker each), and
    # they are parked again for the 1.5 s before the second.
    assert parked_spans >= 10
    assert after_work >= 1


@pytest.mark.parametrize(
    ("spec", "name"),
    [("naive", "naive"), ("idle", "idle"), ("backlog:drain=0.5,k=3", "backlog"), (None, "backlog")],
)
def test_every_policy_runs_and_is_named_in_the_metrics(spec, name):
    graph, inputs = linear(40)
    expected = run(graph, inputs, "simple")
    options = {"autoscale": spec} if spec else {}
    got = run(graph, inputs, "dyn_auto_multi", 4, **options)
    assert canonical(got.outputs) == canonical(expected.outputs)
    assert got.metrics.autoscale == name
    assert got.metrics.autoscale_timeline  # [t, target] from the first step on
    assert got.metrics.to_dict()["autoscale"] == name


def test_the_cli_takes_a_policy_and_records_it(cli, tmp_path):
    done = cli(
        "run", "pipeline", "-p", "items=20", "-p", "stages=1", "--mapping", "dyn_auto_multi",
        "--cpus", "2", "--autoscale", "backlog:drain=0.5,k=3", "-q", "--run-dir", "out",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["autoscale"] == "backlog" and metrics["items"]["Stage"] == 20


def test_the_cli_refuses_an_unknown_policy_in_one_line(cli):
    done = cli("run", "pipeline", "--mapping", "dyn_auto_multi", "--cpus", "2", "--autoscale", "eager")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "hpcflow: error: unknown autoscale policy 'eager'; choose one of: backlog, naive, idle"
    ]


class WritesThenWaits(ProducerPE):
    """Writes `n` items in one call, then waits (up to 20 s) for a stage to have run one:
    emits True if one did while this call was still going."""

    def __init__(self, marker: str, n: int = 10):
        super().__init__()
        self.marker, self.n = marker, n

    def _process(self, inputs):
        for i in range(self.n):
            self.write("output", i)
        deadline = time.monotonic() + 20
        while not os.path.exists(self.marker) and time.monotonic() < deadline:
            time.sleep(0.01)
        return os.path.exists(self.marker)


class MarksItsRun(IterativePE):
    def __init__(self, marker: str):
        super().__init__()
        self.marker = marker

    def _process(self, data):
        if not isinstance(data, bool):
            open(self.marker, "a").close()
        return data


def test_streamed_outputs_wake_parked_workers_before_their_call_ends(tmp_path):
    # One step at the start (every pool worker parked: nothing is queued), none after it:
    # only the source's streamed outputs can wake a worker while its call goes on.
    marker = str(tmp_path / "ran")
    graph = WorkflowGraph()
    source, stage = WritesThenWaits(marker), MarksItsRun(marker)
    graph.connect(source, "output", stage, "input")
    got = run(graph, {source: 1}, "dyn_auto_multi", 4, autoscale="backlog:interval=1000")
    items = [x for ports in got.outputs.values() for xs in ports.values() for x in xs]
    assert got.metrics.status == "ok"
    assert sorted(x for x in items if not isinstance(x, bool)) == list(range(10))
    assert [x for x in items if isinstance(x, bool)] == [True]
