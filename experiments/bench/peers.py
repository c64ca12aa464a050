"""hpcflow beside the systems a user would pick instead, on the same four workloads.

    python experiments/bench/peers.py [--quick] [--repeats 3] [--workloads tiny,latency,bursty,stateful]
        [--systems pool-c1,dask,hpcflow,...] [--items N] [--output results/peers]

Workloads (`peer_workloads.py`): tiny no-op tasks (3 stages, 20 000 items, 8
processes; 2 000 with --quick); latency-bound (2 stages, 300 items, Beta(2,5) sleeps of
mean 20 ms, the same draws everywhere, 16 processes); bursty (3 bursts of 96 items,
each after a 2 s pause, 2 stages of 20 ms, 8 processes); stateful (hybrid.py's graph:
a 20 ms stage, 3 cheap ones, a group-by count and a global total, 400 items, 8
processes).

Systems, each in its idiomatic form with the workload's process count
(`peer_systems.py`): hpcflow (dyn_multi, or dyn_auto_multi on the bursty load and
hybrid_multi on the stateful one, and its static `multi` as a baseline),
`multiprocessing.Pool` (chained `imap`, chunksize 1 and 100), Dask distributed (futures
on a `LocalCluster` of processes; `adapt()` on the bursty load), Ray (remote functions
chained through object references), Parsl (python apps, HighThroughputExecutor, local
provider) and dispel4py's `multi` mapping on the same graph. A peer that is not
installed (`pip install -e '.[bench]'`) is a row saying so.

hpcflow is byte-compiled first, as `pip install` does: from an editable install with
PYTHONDONTWRITEBYTECODE=1 every fresh process would compile the engine's modules inside
hpcflow's timed start (about 35 ms on 2 cores), which no peer pays.

Every run is a fresh Python process, in the order A B C A B C (rotated each repeat), so
drift on a shared machine spreads over all systems. Each run's output is checked
against the workload's expected result (computed from its definition), and a run that
fails or gives a wrong answer is shown as such, never timed. The tables give medians
over the repeats, tasks per second (stage executions), the efficiency where stages sleep
(the injected sleep / (processes x runtime)), and for each workload hpcflow's
speed against the best peer (that peer's runtime / hpcflow's: above 1, hpcflow is
faster). Written to OUTPUT/peers.md, peers.csv and peers.json (peers-quick.* with
--quick). See peer_systems.py for how runtime and process time are defined for each
system.
"""

from __future__ import annotations

import argparse
import compileall
import csv
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, replace
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path

from peer_systems import RUNNERS, run_hpcflow
from peer_workloads import Workload, result_of, workloads

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MARK = "PEERS-RESULT "
HPCFLOW_MAPPINGS = {  # the mapping a user would pick for the workload, then the static baseline
    "tiny": ["dyn_multi", "multi"],
    "latency": ["dyn_multi", "multi"],
    "bursty": ["dyn_auto_multi", "dyn_multi", "multi"],
    "stateful": ["hybrid_multi", "multi"],
}
PEERS = {
    "tiny": ["pool-c1", "pool-c100", "dask", "ray", "parsl", "dispel4py-multi"],
    "latency": ["pool-c1", "pool-c100", "dask", "ray", "parsl", "dispel4py-multi"],
    "bursty": ["pool-c1", "pool-c100", "dask-adaptive", "ray", "parsl", "dispel4py-multi"],
    "stateful": ["pool-c1", "pool-c100", "dask", "ray", "parsl", "dispel4py-multi"],
}
VERSIONS = ["hpcflow", "dask", "distributed", "ray", "parsl", "dispel4py"]


def systems_for(workload: str) -> list[str]:
    return [f"hpcflow {m}" for m in HPCFLOW_MAPPINGS[workload]] + PEERS[workload]


def installed(system: str) -> bool:
    if system.startswith("hpcflow"):
        return True
    return find_spec(RUNNERS[system][0]) is not None


def child(system: str, workload: Workload) -> dict:
    """One run in this (fresh) process: the measurement and whether the output is right."""
    if system.startswith("hpcflow "):
        measured = run_hpcflow(workload, system.split()[1])
    else:
        measured = RUNNERS[system][1](workload)
    got, expected = result_of(workload, measured.outputs), workload.expected()
    record = asdict(measured)
    del record["outputs"]
    record["ok"] = got == expected
    if not record["ok"]:
        record["error"] = f"wrong output: {len(measured.outputs)} items, expected {len(expected)}"
    return record


def isolated(system: str, workload: Workload, timeout: float) -> dict:
    """Run `child()` in a fresh interpreter; its last marked stdout line is the record."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(HERE), os.environ.get("PYTHONPATH", "")]))
    spec = json.dumps({"system": system, "workload": asdict(workload)})
    # a session of its own, so that a run stopped at the timeout takes its cluster with it
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", spec],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(ROOT),
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"ok": False, "error": f"still running after {timeout:.0f} s"}
    lines = [line for line in stdout.splitlines() if line.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        tail = (stderr.strip().splitlines() or ["no output"])[-1]
        return {"ok": False, "error": f"exit {proc.returncode}: {tail[:200]}"}
    return json.loads(lines[-1][len(MARK) :])


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in VERSIONS:
        try:
            found[name] = version("hpcflow-stream" if name == "hpcflow" else name)  # hpcflow's distribution name
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def summarise(w: Workload, system: str, runs: list[dict]) -> dict:
    """Medians over the runs that gave the right output; a failed run is named in the
    status (a system that fails now and then is not as good as its medians say)."""
    row = {"workload": w.name, "system": system, "processes": w.processes, "runs": len(runs)}
    if not installed(system):
        return {**row, "status": "not installed"}
    good = [r for r in runs if r.get("ok")]
    errors = sorted({r.get("error", "?") for r in runs if not r.get("ok")})
    if not good:
        return {**row, "status": "failed: " + "; ".join(errors)}
    runtime = statistics.median(r["runtime_s"] for r in good)
    failed = len(runs) - len(good)
    return {
        **row,
        "status": f"{failed} of {len(runs)} failed: " + "; ".join(errors) if failed else "ok",
        "runtime_s": runtime,
        "tasks_per_s": w.tasks / runtime,
        "process_time_s": statistics.median(r["process_time_s"] for r in good),
        "startup_s": statistics.median(r["startup_s"] for r in good),
        # injected sleep / (processes x runtime): 1.0 is every process asleep in a task all the time
        # (not for bursts, whose pauses idle every system by design)
        "efficiency": w.work_s / (w.processes * runtime) if w.work_s and not w.bursts else None,
    }


def speedups(w: Workload, rows: list[dict]) -> dict:
    """hpcflow's own pick against the fastest peer that ran: that peer's runtime / hpcflow's."""
    ours = next((r for r in rows if r["system"] == f"hpcflow {HPCFLOW_MAPPINGS[w.name][0]}"), None)
    peers = [r for r in rows if not r["system"].startswith("hpcflow") and "runtime_s" in r]
    if ours is None or "runtime_s" not in ours or not peers:
        return {"workload": w.name, "best_peer": None}
    best = min(peers, key=lambda r: r["runtime_s"])
    out = {
        "workload": w.name,
        "hpcflow": ours["system"],
        "best_peer": best["system"],
        "speed_ratio": best["runtime_s"] / ours["runtime_s"],
        "process_time_ratio": ours["process_time_s"] / best["process_time_s"],
    }
    d4p = next((r for r in peers if r["system"] == "dispel4py-multi"), None)
    static = next((r for r in rows if r["system"] == "hpcflow multi" and "runtime_s" in r), None)
    if d4p:
        out["vs_dispel4py_multi"] = d4p["runtime_s"] / ours["runtime_s"]
    if d4p and static:
        out["static_vs_dispel4py_multi"] = d4p["runtime_s"] / static["runtime_s"]
    return out


def table(w: Workload, rows: list[dict], repeats: int) -> list[str]:
    lines = [
        f"### {w.title}",
        "",
        f"{w.items} items, {w.tasks} stage tasks, {w.processes} processes, median of {repeats}.",
        "",
        "| system | runtime s | tasks/s | process time s | warm-up s (outside runtime) | efficiency | status |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if "runtime_s" in r:
            eff = "–" if r.get("efficiency") is None else f"{r['efficiency']:.2f}"
            lines.append(
                f"| {r['system']} | {r['runtime_s']:.2f} | {r['tasks_per_s']:.0f} | {r['process_time_s']:.1f} "
                f"| {r['startup_s']:.1f} | {eff} | {r['status']} |"
            )
        else:
            lines.append(f"| {r['system']} | | | | | | {r['status']} |")
    return [*lines, ""]


def ratio_table(ratios: list[dict]) -> list[str]:
    lines = [
        "| workload | hpcflow | best peer | speed: peer runtime / hpcflow's | process time: hpcflow / peer "
        "| speed vs dispel4py multi | hpcflow multi vs dispel4py multi |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in ratios:
        if r["best_peer"] is None:
            lines.append(f"| {r['workload']} | | no peer ran | | | | |")
            continue
        d4p = [f"{r[k]:.2f}" if k in r else "–" for k in ("vs_dispel4py_multi", "static_vs_dispel4py_multi")]
        lines.append(
            f"| {r['workload']} | {r['hpcflow']} | {r['best_peer']} | {r['speed_ratio']:.2f} "
            f"| {r['process_time_ratio']:.2f} | {d4p[0]} | {d4p[1]} |"
        )
    return [*lines, ""]


def write(out_dir: Path, stem: str, header: list[str], body: list[str], record: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.md").write_text("\n".join(header + body) + "\n")
    (out_dir / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n")
    fields = ["workload", "system", "processes", "runs", "status", "runtime_s", "tasks_per_s"]
    fields += ["process_time_s", "startup_s", "efficiency"]
    with open(out_dir / f"{stem}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(record["rows"])


def header(quick: bool, when: str, elapsed_s: float, found: dict, ratios: list[dict]) -> list[str]:
    return [
        f"# hpcflow and its peers{' (--quick)' if quick else ''}",
        "",
        f"`python experiments/bench/peers.py{' --quick' if quick else ''}`, {when}, "
        f"{os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f} at the end), {elapsed_s:.0f} s in all.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in found.items()) + ".",
        "",
        "hpcflow against the fastest peer that ran (above 1: hpcflow is faster; the last column "
        "compares the two static mappings on the same graph):",
        "",
        *ratio_table(ratios),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one repeat, 2 000 tiny tasks: under 5 minutes")
    ap.add_argument("--repeats", type=int, help="runs per system and workload (3; 1 with --quick)")
    ap.add_argument("--workloads", default="tiny,latency,bursty,stateful")
    ap.add_argument("--systems", help="comma-separated subset (default: all of each workload's)")
    ap.add_argument("--items", type=int, help="every workload with this many items (a smoke run)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds one run may take")
    ap.add_argument("--output", default="results/peers")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        spec = json.loads(args.child)
        print(MARK + json.dumps(child(spec["system"], Workload(**spec["workload"]))), flush=True)
        return
    repeats = args.repeats or (1 if args.quick else 3)
    compileall.compile_dir(ROOT / "hpcflow", quiet=1)  # as installed: no run compiles it in its timed start
    chosen = {w.name: replace(w, items=args.items) if args.items else w for w in workloads(args.quick)}
    names = args.workloads.split(",")
    unknown = [n for n in names if n not in chosen]
    if unknown:
        sys.exit(f"peers.py: unknown workload {', '.join(unknown)} (workloads: {', '.join(chosen)})")
    only = set(args.systems.split(",")) if args.systems else None
    started = time.perf_counter()
    found = versions()
    stem = "peers-quick" if args.quick else "peers"
    body, all_rows, ratios, runs = [], [], [], []
    for w in (chosen[n] for n in names):
        systems = [s for s in systems_for(w.name) if only is None or s in only or s.split()[0] in only]
        present = [s for s in systems if installed(s)]
        by_system: dict[str, list[dict]] = {s: [] for s in systems}
        for rep in range(repeats):
            k = rep % max(1, len(present))
            for system in present[k:] + present[:k]:
                record = isolated(system, w, args.timeout)
                by_system[system].append(record)
                runs.append({"workload": w.name, "system": system, "repeat": rep, **record})
                shown = f"{record['runtime_s']:.2f} s" if record.get("ok") else record.get("error")
                print(f"  {w.name} r{rep} {system}: {shown}", flush=True)
        rows = [summarise(w, s, by_system[s]) for s in systems]
        all_rows += rows
        if any(r["system"].startswith("hpcflow") for r in rows):
            ratios.append(speedups(w, rows))
        body += table(w, rows, repeats)
        print("\n".join(table(w, rows, repeats)), flush=True)
        # written after every workload, so that a run stopped midway leaves what it measured
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        top = header(args.quick, when, time.perf_counter() - started, found, ratios)
        record = {"date": when, "versions": found, "repeats": repeats, "rows": all_rows, "ratios": ratios}
        write(Path(args.output), stem, top, body, {**record, "runs": runs})
    print("\n".join(top[4:]))
    print(f"written to {Path(args.output) / stem}.md, .csv, .json")


if __name__ == "__main__":
    main()
