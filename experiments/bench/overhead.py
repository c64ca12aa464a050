"""Scheduling overhead: a no-op 3-stage pipeline, task executions per second.

Prints, for each mapping, stage-task executions per second (3 x items; the source's calls
are not counted) beside a minimal reference loop on one plain multiprocessing.Queue (one
task per get) timed in the same run, then the time to start 64 workers and the
termination tail (last task report to end of run). Absolute numbers drift between runs
and machines; compare the ratios within one run. The Redis mappings share one private
redis-server started before them (as `redis_url="auto"` starts one per run), so their
rows measure the transport, not the server's start.

    python experiments/bench/overhead.py [--items 20000] [--processes 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time

from hpcflow import run
from hpcflow.transports.redis.server import PrivateServer
from hpcflow.workflows.pipeline import build

STAGES = 3


def _ref_worker(q, done, slot):
    n = 0
    while True:
        task = q.get()
        if task is None:
            return
        stage, i = task
        if stage + 1 < STAGES:
            q.put((stage + 1, i))
        else:
            n += 1
            done[slot] = n


def reference(items: int, processes: int) -> float:
    """Runtime of the plain-Queue loop: start workers, feed, wait for every last stage."""
    ctx = mp.get_context("fork")
    t0 = time.perf_counter()
    q = ctx.Queue()
    done = ctx.RawArray("l", processes)
    procs = [ctx.Process(target=_ref_worker, args=(q, done, k)) for k in range(processes)]
    for p in procs:
        p.start()
    for i in range(items):
        q.put((0, i))
    while sum(done) < items:
        time.sleep(0.0005)
    for _ in procs:
        q.put(None)
    for p in procs:
        p.join()
    return time.perf_counter() - t0


def hpcflow_run(mapping: str, items: int, processes: int, **options):
    graph, inputs, _ = build(items=items, stages=STAGES)
    result = run(graph, inputs, mapping=mapping, processes=processes, collect=False, **options)
    return result.metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=20000)
    ap.add_argument("--processes", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--mappings", default="simple,multi,dyn_multi,hybrid_multi,dyn_redis,hybrid_redis")
    args = ap.parse_args()
    tasks = args.items * STAGES
    mappings = args.mappings.split(",")
    server = PrivateServer() if any(m.endswith("_redis") for m in mappings) else None

    rows = []
    ref = statistics.median(reference(args.items, args.processes) for _ in range(args.repeats))
    rows.append(("plain mp.Queue (reference)", ref, None))
    for mapping in mappings:
        options = {"redis_url": server.url} if mapping.endswith("_redis") else {}
        runs = [hpcflow_run(mapping, args.items, args.processes, **options) for _ in range(args.repeats)]
        rt = statistics.median(m.runtime_s for m in runs)
        tail = statistics.median(getattr(m, "tail_s", 0.0) for m in runs)
        rows.append((mapping, rt, tail))

    print(f"no-op {STAGES}-stage pipeline, {args.items} items, {args.processes} processes, median of {args.repeats}")
    print(f"{'mapping':<28} {'runtime s':>10} {'tasks/s':>10} {'x ref':>7} {'tail s':>8}")
    for name, rt, tail in rows:
        rate = tasks / rt
        tail_s = "" if tail is None else f"{tail:.4f}"
        print(f"{name:<28} {rt:>10.3f} {rate:>10.0f} {ref / rt:>7.2f} {tail_s:>8}")

    if server is not None:
        server.stop()
    startups = [hpcflow_run("dyn_multi", 64, 64).startup_s for _ in range(args.repeats)]
    print(f"time to start 64 workers (dyn_multi): {statistics.median(startups):.3f} s")


if __name__ == "__main__":
    main()
