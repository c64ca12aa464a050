"""Overhead of the `mpi` mapping against `simple`: a no-op 3-stage pipeline.

With no work in the PEs, the rate of task executions (items processed, summed over
PEs, per second of runtime) measures what a mapping costs per item: routing, batching,
pickling and messages for `mpi`; nothing but the calls for `simple`.

    python experiments/bench/mpi_overhead.py [--items 20000] [--ranks 8] [--repeats 3]
    python experiments/bench/mpi_overhead.py --latency-bound [--ranks 16] [--mappings mpi,multi,hybrid_multi] [--peer]

--latency-bound runs the other case, where the mapping's cost hardly counts and where its
work goes does: 2 stages sleeping Beta(2,5) draws of mean 20 ms, 300 items, and prints
each mapping's efficiency, the pipeline's exact sleep total over (processes - 1, the
source's) x runtime: 1.0 would be every stage process sleeping all the time. It shows
how evenly the round robin spreads the first items (compare checkouts with PYTHONPATH,
running from outside any checkout: `python -m hpcflow` imports the working directory's).
With --peer it also runs dispel4py 1.2.1's own `mpi` mapping on the same graph and sleeps
(peer_dispel4py_mpi.py, under the same mpiexec, its runtime measured the same way, in
the job), the runs of every system interleaved, so that one command prints both.

`simple` runs in this process; `mpi` runs as `hpcflow run pipeline --mapping mpi
--cpus RANKS`, which re-launches itself through mpiexec, and is read back from its
metrics.json. Each row is the median of the repeats, also printed as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from hpcflow import run
from hpcflow.workflows import pipeline


def task_rate(metrics: dict) -> float:
    return sum(metrics["items"].values()) / metrics["runtime_s"]


def simple_metrics(items: int, stages: int) -> dict:
    graph, inputs, _ = pipeline.build(items=items, stages=stages)
    return run(graph, inputs, mapping="simple").metrics.to_dict()


def mpi_metrics(items: int, stages: int, ranks: int, run_dir: Path) -> dict:
    cmd = [sys.executable, "-m", "hpcflow", "run", "pipeline", "-p", f"items={items}", "-p", f"stages={stages}"]
    cmd += ["--mapping", "mpi", "--cpus", str(ranks), "--oversubscribe", "--run-dir", str(run_dir), "-q"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads((run_dir / "metrics.json").read_text())


LATENCY_BOUND = {"items": 300, "stages": 2, "latency": 0.02, "latency_dist": "beta"}


def hpcflow_latency_run(mapping: str, processes: int, run_dir: Path) -> dict:
    params = [arg for key, value in LATENCY_BOUND.items() for arg in ("-p", f"{key}={value}")]
    cmd = [sys.executable, "-m", "hpcflow", "run", "pipeline", *params, "--mapping", mapping]
    cmd += ["--cpus", str(processes), "--oversubscribe", "--run-dir", str(run_dir), "-q"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads((run_dir / "metrics.json").read_text())


def dispel4py_latency_run(processes: int, out: Path) -> dict:
    """dispel4py 1.2.1's own `mpi` mapping on the same graph (peer_dispel4py_mpi.py)."""
    mpiexec = Path(sys.executable).with_name("mpiexec")
    child = Path(__file__).with_name("peer_dispel4py_mpi.py")
    cmd = [str(mpiexec if mpiexec.exists() else "mpiexec"), "-n", str(processes), sys.executable, str(child), str(out)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    result = json.loads(out.read_text())
    if not result["correct"]:
        raise SystemExit("dispel4py's mpi run gave wrong outputs")
    return result


def latency_bound(mappings: list[str], processes: int, repeats: int, peer: bool) -> None:
    """Efficiency of each mapping (and, with `peer`, of dispel4py's `mpi`) on the
    latency-bound pipeline: the runs interleaved, the median of the repeats."""
    work_s = pipeline.build(**LATENCY_BOUND)[2]["work_s"]
    systems = mappings + (["dispel4py-mpi"] if peer else [])
    runs: dict[str, list[dict]] = {name: [] for name in systems}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            for name in systems:
                out = Path(tmp) / f"{name}-{i}"
                if name == "dispel4py-mpi":
                    runs[name].append(dispel4py_latency_run(processes, out))
                else:
                    runs[name].append(hpcflow_latency_run(name, processes, out))
    print(f"{'mapping':<14} {'procs':>5} {'runtime s':>10} {'efficiency':>10}")
    for name in systems:
        effs = sorted(work_s / ((m["processes"] - 1) * m["runtime_s"]) for m in runs[name])
        runtime = statistics.median(m["runtime_s"] for m in runs[name])
        print(f"{name:<14} {runs[name][0]['processes']:>5} {runtime:>10.3f} {effs[len(effs) // 2]:>10.3f}")
    for name in systems:
        effs = sorted(work_s / ((m["processes"] - 1) * m["runtime_s"]) for m in runs[name])
        print(json.dumps({"mapping": name, "processes": runs[name][0]["processes"], "efficiency_all": effs}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--stages", type=int, default=3)
    parser.add_argument("--ranks", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--latency-bound", action="store_true", help="the latency-bound case (16 ranks by default)")
    parser.add_argument("--mappings", default="mpi", help="mappings of the latency-bound case, comma-separated")
    parser.add_argument(
        "--peer", action="store_true", help="latency-bound: also run dispel4py's own mpi mapping (needs dispel4py)"
    )
    args = parser.parse_args()
    if args.latency_bound:
        ranks = args.ranks if "--ranks" in sys.argv else 16
        latency_bound(args.mappings.split(","), ranks, args.repeats, args.peer)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mapping in ("simple", "mpi"):
            runs = []
            for i in range(args.repeats):
                if mapping == "simple":
                    runs.append(simple_metrics(args.items, args.stages))
                else:
                    runs.append(mpi_metrics(args.items, args.stages, args.ranks, Path(tmp) / f"mpi-{i}"))
            rates = [task_rate(m) for m in runs]
            median = sorted(runs, key=task_rate)[len(runs) // 2]
            rows.append(
                {
                    "mapping": mapping,
                    "processes": median["processes"],
                    "items": args.items,
                    "stages": args.stages,
                    "task_executions": sum(median["items"].values()),
                    "runtime_s": round(median["runtime_s"], 4),
                    "process_time_s": round(median["process_time_s"], 4),
                    "cpu_time_s": round(median["cpu_time_s"], 4),
                    "tasks_per_s": round(statistics.median(rates)),
                    "tasks_per_s_all": [round(r) for r in rates],
                }
            )
    print(f"{'mapping':<8} {'procs':>5} {'runtime s':>10} {'tasks/s':>10}")
    for row in rows:
        print(f"{row['mapping']:<8} {row['processes']:>5} {row['runtime_s']:>10.3f} {row['tasks_per_s']:>10}")
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
