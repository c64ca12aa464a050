"""Auto-scaling: dyn_auto_multi against dyn_multi on a bursty and a steady load.

Both loads are the built-in `pipeline` workflow, latency-bound (the stages sleep), so
8-32 processes scale on a small machine. Sizes grow with the process count, so that a
burst keeps the pool busy as long, and the steady load lasts as long, at any count:

- bursty: `--bursts` bursts of `--burst` items per process, each after a `--pause`,
  through `--stages` stages of a fixed `--burst-latency` per item: the whole pool is
  needed for about half a second, then nothing for one and a half. Auto-scaling should
  give the idle workers back and lose no runtime.
- steady: `--items` items per process through `--stages` stages whose per-item
  latencies are Beta(2,5) draws of mean `--latency`, seeded per item; the source keeps
  the queue full, so the whole pool is needed until the tail. Auto-scaling must not
  cost runtime.

In each repeat dyn_multi runs first, then every policy on the same graph and inputs
(in a rotating order, so drift on a shared node spreads evenly), each run in a fresh
process. The table shows, per policy, the medians over repeats of the ratios
dyn_auto_multi / dyn_multi within a repeat, of runtime and of process time (the wall
time worker processes were active). A run still going at `--cap` times its repeat's
dyn_multi runtime (plus a second to start) is stopped and counts as slower than that
(`>200%`), so that the paper's `naive` rule, which can end up on one worker, does not
take the benchmark's whole time budget; its process
time is unknown, so the process-time median is over the other repeats, or `-` when
half or more were stopped.

    python experiments/bench/autoscale.py [--processes 8,16,32] [--repeats 3]
        [--policy backlog --policy backlog:drain=0.5,k=3 ...] [--loads bursty,steady]
        [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import statistics
import time

from hpcflow import run
from hpcflow.workflows.pipeline import build

BASELINE = "dyn_multi"
START_MARGIN_S = 1.0  # a capped run also gets this long to start its processes


def load_params(load: str, processes: int, args: argparse.Namespace) -> dict:
    """The `pipeline` parameters of a load at a process count."""
    if load == "bursty":
        burst = args.burst * processes
        return {
            "items": args.bursts * burst,
            "burst": burst,
            "pause": args.pause,
            "stages": args.stages,
            "latency": args.burst_latency,
        }
    return {"items": args.items * processes, "stages": args.stages, "latency": args.latency, "latency_dist": "beta"}


def one_run(params: dict, processes: int, policy: str | None) -> dict:
    graph, inputs, _ = build(**params)
    options = {"autoscale": policy} if policy else {}
    result = run(graph, inputs, "dyn_auto_multi" if policy else BASELINE, processes, collect=False, **options)
    m = result.metrics
    expected = sum(inputs.values()) + params["stages"] * params["items"]  # source calls + stage tasks
    if m.status != "ok" or sum(m.items.values()) != expected:
        raise RuntimeError(f"bad run: status {m.status}, items {m.items}, expected {expected} in all")
    return m.to_dict()


def _child(conn, params: dict, processes: int, policy: str | None) -> None:
    try:
        conn.send(one_run(params, processes, policy))
    except Exception as exc:  # reported by the parent, which stops the benchmark
        conn.send(exc)


def isolated_run(params: dict, processes: int, policy: str | None, limit_s: float | None) -> dict | None:
    """One run in a fresh process; None if it was still going after `limit_s`."""
    ctx = mp.get_context("fork")
    ours, theirs = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(theirs, params, processes, policy))
    proc.start()
    theirs.close()
    if not ours.poll(limit_s):
        proc.kill()  # its workers die with it (PR_SET_PDEATHSIG)
        proc.join()
        return None
    got = ours.recv()
    proc.join()
    if isinstance(got, Exception):
        raise got
    return got


def median_ratio(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--processes", default="8,16,32")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--policy", action="append", help="an autoscale option value, repeatable (default: backlog, naive, idle)"
    )
    ap.add_argument("--loads", default="bursty,steady")
    ap.add_argument("--stages", type=int, default=2)
    ap.add_argument("--bursts", type=int, default=3)
    ap.add_argument("--burst", type=int, default=12, help="items a burst, per process")
    ap.add_argument("--pause", type=float, default=2.0, help="seconds before each burst")
    ap.add_argument("--burst-latency", type=float, default=0.02, help="seconds a bursty item sleeps a stage")
    ap.add_argument("--items", type=int, default=60, help="items of the steady load, per process")
    ap.add_argument("--latency", type=float, default=0.03, help="mean seconds a steady item sleeps a stage")
    ap.add_argument("--cap", type=float, default=2.0, help="stop a run at this many times the dyn_multi runtime")
    ap.add_argument("--json", help="write every run's metrics here (one object a line)")
    args = ap.parse_args()
    policies = args.policy or ["backlog", "naive", "idle"]
    out = open(args.json, "w") if args.json else None  # noqa: SIM115
    started = time.perf_counter()
    rows = []
    for load in args.loads.split(","):
        for processes in map(int, args.processes.split(",")):
            params = load_params(load, processes, args)
            ratios: dict[str, list[tuple[float, float]]] = {p: [] for p in policies}
            bases = []
            for rep in range(args.repeats):
                base = isolated_run(params, processes, None, None)
                bases.append(base)
                k = rep % len(policies)
                for policy in policies[k:] + policies[:k]:
                    m = isolated_run(params, processes, policy, args.cap * base["runtime_s"] + START_MARGIN_S)
                    if m is None:
                        ratios[policy].append((math.inf, math.nan))
                    else:
                        rt, pt = m["runtime_s"] / base["runtime_s"], m["process_time_s"] / base["process_time_s"]
                        ratios[policy].append((rt, pt))
                    if out:
                        record = m or {"mapping": "dyn_auto_multi", "autoscale": policy, "capped": True}
                        out.write(json.dumps({"load": load, "repeat": rep, "spec": policy, **record}) + "\n")
                if out:
                    out.write(json.dumps({"load": load, "repeat": rep, **base}) + "\n")
            base_rt = statistics.median(b["runtime_s"] for b in bases)
            base_pt = statistics.median(b["process_time_s"] for b in bases)
            for p in policies:
                rt = median_ratio([r for r, _ in ratios[p]])
                known = [q for _, q in ratios[p] if not math.isnan(q)]
                pt = median_ratio(known) if 2 * len(known) > len(ratios[p]) else math.nan
                rows.append((load, processes, p, base_rt, base_pt, rt, pt))
                print(f"  {load} {processes} {p}: runtime {_pct(rt, args.cap)} process time {_pct(pt, args.cap)}")
    if out:
        out.close()
    print()
    print(
        f"dyn_auto_multi / {BASELINE}: medians of {args.repeats} paired repeats, "
        f"{time.perf_counter() - started:.0f} s in all"
    )
    header = ("load", "procs", "policy", "dyn runtime s", "dyn process s", "runtime", "process")
    print("{:7} {:>5} {:24} {:>13} {:>13} {:>8} {:>8}".format(*header))
    for load, processes, p, base_rt, base_pt, rt, pt in rows:
        rt_s, pt_s = _pct(rt, args.cap), _pct(pt, args.cap)
        print(f"{load:7} {processes:5} {p:24} {base_rt:13.2f} {base_pt:13.1f} {rt_s:>8} {pt_s:>8}")


def _pct(ratio: float, cap: float) -> str:
    if math.isinf(ratio):
        return f">{cap:.0%}"
    if math.isnan(ratio):
        return "-"
    return f"{ratio:.1%}"


if __name__ == "__main__":
    main()
