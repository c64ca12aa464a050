"""The streaming engine (issue #16): bounded memory inside a call, the backlog bound for
slow PEs, overlapping static stages, pinned processes that help the pool, tiny tasks.

Each check prints its figures, the reference measured in the same run, and the target
it checks. Timings drift on a shared machine: compare the ratios.

    python experiments/bench/streaming.py [memory|backlog|overlap|latency|stateful|tiny|all]

- memory:   one call writes 10^6 items of 1 KB (dyn_multi, dyn_redis, 4 processes);
            target: peak RSS of the coordinator and of every worker < 300 MB.
- backlog:  a fast producer feeds a 0.2 s/item PE (1000 items, dyn_multi, 4 processes),
            SIGINT at 4 s; target: peak_queued within the bound, the run ends < 3 s later.
- overlap:  300 items x 20 ms on 2 and 3 stages, 16 processes; target: multi <= 1.1 x dyn_multi.
- latency:  2 stages of Beta(2,5) sleeps (mean 20 ms), 300 items, 16 processes; target:
            scheduling efficiency (injected latency / (processes x runtime)) of dyn_multi
            >= 0.93, beside Pool.imap(chunksize=1) doing the same work.
- stateful: experiments/bench/hybrid.py's graph, 12 processes; target: hybrid_multi
            <= 1.15 x a Pool.imap(chunksize=1) doing the same work.
- tiny:     no-op 3 stages, 20 000 items, 8 processes; target: dyn_multi >= 0.6 x the
            task rate of Pool.imap(chunksize=100) chained over the 3 stages.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from hpcflow import ConsumerPE, ProducerPE, WorkflowGraph, run
from hpcflow.engines.protocol import DELIVERY_WINDOW
from hpcflow.errors import RunAborted
from hpcflow.workflows import pipeline

HERE = Path(__file__).resolve().parent
MB = 1 << 20


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


# -- memory: 10^6 items in one call ----------------------------------------------------


class Burst(ProducerPE):
    """Writes `n` items of about 1 KB in a single call."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def _process(self, inputs):
        pad = b"x" * 1000
        for i in range(self.n):
            self.write("output", (i, pad))


class Discard(ConsumerPE):
    def _process(self, data):
        pass


class PeakRss(threading.Thread):
    """Samples the RSS of this process's descendants every 20 ms; the peak of each."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peaks: dict[int, tuple[str, int]] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        me = psutil.Process()
        while not self.stop.wait(0.02):
            for p in me.children(recursive=True):
                try:
                    rss = p.memory_info().rss
                    name = "redis-server" if "redis" in p.name() else "worker"
                except psutil.Error:
                    continue
                old = self.peaks.get(p.pid, (name, 0))
                self.peaks[p.pid] = (name, max(old[1], rss))


def memory_child(mapping: str, items: int) -> None:
    graph = WorkflowGraph()
    src, sink = Burst(items), Discard()
    graph.connect(src, "output", sink, "input")
    sampler = PeakRss()
    sampler.start()
    result = run(graph, {src: 1}, mapping, 4)
    sampler.stop.set()
    sampler.join()
    workers = sorted(rss for name, rss in sampler.peaks.values() if name == "worker")
    servers = [rss for name, rss in sampler.peaks.values() if name == "redis-server"]
    out = {
        "items": result.metrics.items["Discard"],
        "runtime_s": result.metrics.runtime_s,
        "coordinator_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "workers_mb": [w / MB for w in workers],
        "redis_server_mb": max(servers) / MB if servers else None,
    }
    print(json.dumps(out))


def memory(items: int = 1_000_000) -> None:
    print(f"memory: {items} items of 1 KB written in one call, 4 processes")
    for mapping in ("dyn_multi", "dyn_redis"):
        cmd = [sys.executable, __file__, "memory-child", mapping, str(items)]
        out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        peak = max([out["coordinator_mb"], *out["workers_mb"]])
        workers = ", ".join(f"{w:.0f}" for w in out["workers_mb"])
        server = f", redis-server {out['redis_server_mb']:.0f} MB" if out["redis_server_mb"] else ""
        print(
            f"  {mapping:<10} {out['items']} items in {out['runtime_s']:.1f} s; peak RSS: coordinator "
            f"{out['coordinator_mb']:.0f} MB, workers [{workers}] MB{server}"
        )
        print(f"  target: every peak < 300 MB -> {verdict(peak < 300 and out['items'] == items)}")


# -- backlog: a slow PE, then SIGINT ----------------------------------------------------

SLOW_S = 0.2


class Slow(ConsumerPE):
    def _process(self, data):
        time.sleep(SLOW_S)


def backlog_child(items: int) -> None:
    graph = WorkflowGraph()
    src, slow = pipeline.Source(), Slow()
    graph.connect(src, "output", slow, "input")
    try:
        result = run(graph, {src: items}, "dyn_multi", 4)
    except RunAborted as exc:
        result = exc.result
    print(json.dumps({"peak_queued": result.metrics.peak_queued, "done": result.metrics.items["Slow"]}))


def backlog(items: int = 1000, signal_at: float = 4.0) -> None:
    pool = 3  # 4 processes: the producer and 3 pool workers
    bound = 1.0 * pool / SLOW_S  # max_backlog_s x instances / service time
    print(f"backlog: producer -> {SLOW_S} s/item PE, {items} items, dyn_multi, 4 processes, SIGINT at {signal_at} s")
    cmd = [sys.executable, __file__, "backlog-child", str(items)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(signal_at)
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate()
    stop_s = time.perf_counter() - t0
    out = json.loads(out.splitlines()[-1])
    print(f"  peak_queued {out['peak_queued']} (bound: {bound:.0f} tasks of {SLOW_S} s for {pool} workers, + the")
    print(f"  {DELIVERY_WINDOW} one-task deliveries a producer may have on their way); {out['done']} items done;")
    print(f"  stopped {stop_s:.2f} s after SIGINT")
    ok = out["peak_queued"] <= bound + DELIVERY_WINDOW and stop_s < 3
    print(f"  target: peak_queued within the bound, stop < 3 s -> {verdict(ok)}")


# -- overlap: static stages ---------------------------------------------------------------


def timed(graph, inputs, mapping: str, processes: int) -> float:
    t0 = time.perf_counter()
    run(graph, inputs, mapping, processes)
    return time.perf_counter() - t0


def overlap(items: int = 300, processes: int = 16) -> None:
    print(f"overlap: {items} items x 20 ms per stage, {processes} processes")
    for stages in (2, 3):
        graph, inputs, _ = pipeline.build(items=items, stages=stages, latency=0.02)
        dyn = timed(graph, inputs, "dyn_multi", processes)
        multi = timed(graph, inputs, "multi", processes)
        print(f"  {stages} stages: multi {multi:.2f} s, dyn_multi {dyn:.2f} s, ratio {multi / dyn:.2f}")
        print(f"  target: multi <= 1.1 x dyn_multi -> {verdict(multi <= 1.1 * dyn)}")


# -- latency-bound: scheduling efficiency against a Pool ------------------------------------

_STAGES: list = []  # the stage PEs a Pool worker runs (set before the Pool forks)


def _pool_item(i: int):
    item = (pipeline.item_key(0, i), i)  # what pipeline.Source writes on call i
    for stage in _STAGES:
        item = stage._process(item)
    return item


def _run_pool(stages: list, items: int, processes: int, chunksize: int) -> float:
    _STAGES[:] = stages
    t0 = time.perf_counter()
    with mp.get_context("fork").Pool(processes) as pool:
        for _ in pool.imap(_pool_item, range(items), chunksize=chunksize):
            pass
    return time.perf_counter() - t0


def latency(items: int = 300, processes: int = 16) -> None:
    graph, inputs, extra = pipeline.build(items=items, stages=2, latency=0.02, latency_dist="beta")
    work_s = extra["work_s"]
    stages = [graph.get(pe) for pe in graph.topological_order()[1:]]
    pool_s = _run_pool(stages, items, processes, 1)
    dyn_s = timed(graph, inputs, "dyn_multi", processes)
    eff_pool, eff_dyn = work_s / (processes * pool_s), work_s / (processes * dyn_s)
    print(f"latency: 2 stages, Beta(2,5) sleeps of mean 20 ms, {items} items, {processes} processes")
    print(f"  injected {work_s:.2f} s; Pool.imap(chunksize=1) {pool_s:.2f} s (efficiency {eff_pool:.3f}),")
    print(f"  dyn_multi {dyn_s:.2f} s (efficiency {eff_dyn:.3f})")
    print(f"  target: dyn_multi efficiency >= 0.93 -> {verdict(eff_dyn >= 0.93)}")


def stateful(items: int = 400, processes: int = 12) -> None:
    sys.path.insert(0, str(HERE))
    import hybrid

    graph, source = hybrid.build(0.02)
    stateless = [graph.get(pe) for pe in graph.topological_order()[1:-2]]  # Slow, Cheap x3
    expected = run(graph, {source: items}, "simple").outputs
    _STAGES[:] = stateless
    t0 = time.perf_counter()
    counts: dict = {}
    with mp.get_context("fork").Pool(processes) as pool:
        for key, _ in pool.imap(_hybrid_item, range(1, items + 1), chunksize=1):
            counts[key] = counts.get(key, 0) + 1
    pool_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = run(graph, {source: items}, "hybrid_multi", processes)
    hyb_s = time.perf_counter() - t0
    assert result.outputs == expected, "hybrid_multi differs from simple"
    print(f"stateful: experiments/bench/hybrid.py's graph, {items} items, {processes} processes")
    print(f"  Pool.imap(chunksize=1) {pool_s:.2f} s, hybrid_multi {hyb_s:.2f} s, ratio {hyb_s / pool_s:.2f}")
    print(f"  target: hybrid_multi <= 1.15 x Pool -> {verdict(hyb_s <= 1.15 * pool_s)}")


def _hybrid_item(n: int):
    item = (n % 10, n)
    for stage in _STAGES:
        item = stage._process(item)
    return item


# -- tiny tasks ----------------------------------------------------------------------------


def _noop(item):
    key, value = item
    return (key, value + 1)


def _pool_seconds(processes: int, feed) -> float:
    """The runtime of Pool.imap(chunksize=100) chained over 3 no-op stages."""
    t0 = time.perf_counter()
    with mp.get_context("fork").Pool(processes) as pool:
        for _ in pool.imap(_noop, pool.imap(_noop, pool.imap(_noop, feed, 100), 100), 100):
            pass
    return time.perf_counter() - t0


def tiny(items: int = 20_000, processes: int = 8) -> None:
    """Two references: the Pool fed bare tuples, and the Pool fed the very items the
    pipeline's Source makes (a stable hash of each: serial work hpcflow's producer does
    and a bare feed does not). The second is the same work; both are printed."""
    graph, inputs, _ = pipeline.build(items=items, stages=3)
    bare = 3 * items / _pool_seconds(processes, ((i % pipeline.KEYS, i) for i in range(items)))
    source = pipeline.Source(items=items)
    same = 3 * items / _pool_seconds(processes, (source.item() for _ in range(items)))
    dyn_rate = 3 * items / timed(graph, inputs, "dyn_multi", processes)
    print(f"tiny: no-op 3 stages, {items} items, {processes} processes (stage tasks per second)")
    print(f"  Pool.imap(chunksize=100) chained, bare feed {bare:,.0f}/s (dyn_multi at {dyn_rate / bare:.2f}x)")
    print(f"  Pool.imap(chunksize=100) chained, the Source's items {same:,.0f}/s (dyn_multi at {dyn_rate / same:.2f}x)")
    print(f"  dyn_multi {dyn_rate:,.0f}/s")
    print(f"  target: dyn_multi >= 0.6 x Pool (bare feed) -> {verdict(dyn_rate >= 0.6 * bare)}")


CHECKS = {
    "memory": memory,
    "backlog": backlog,
    "overlap": overlap,
    "latency": latency,
    "stateful": stateful,
    "tiny": tiny,
}


def main() -> None:
    args = sys.argv[1:] or ["all"]
    if args[0] == "memory-child":
        memory_child(args[1], int(args[2]))
        return
    if args[0] == "backlog-child":
        backlog_child(int(args[1]))
        return
    if args[0] in ("-h", "--help") or any(a not in (*CHECKS, "all") for a in args):
        print(__doc__)
        sys.exit(0 if args[0] in ("-h", "--help") else 2)
    for name in CHECKS if args == ["all"] else args:
        CHECKS[name]()
        sys.stdout.flush()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
