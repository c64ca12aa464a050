"""Elastic allocations: `hpcflow run --elastic` against the same run without it.

The load is the built-in `pipeline` workflow, latency-bound (each of 3 stages sleeps
`--latency` per item), on `dyn_redis` with 2 pool workers (`--cpus 3`: the source and
two workers): `--items` x 3 x `--latency` seconds of work, a minute by default. With
`--elastic`, the run submits worker jobs of `--cpus-per-job` workers to the local
batch scheduler (SLURM, or PBS through a wrapper with `--scheduler pbs`) once the
backlog has outgrown its workers for `--min-backlog` seconds, up to `--max-jobs`.

Runs alternate (plain, elastic, plain, elastic, ...) so drift on a shared node spreads
evenly; the table shows each run's runtime and, per repeat, elastic / plain. Runtimes on
a shared 2-core machine are noisy: read the ratios, not the seconds.

    python experiments/bench/elastic.py [--items 100] [--latency 0.2] [--repeats 1]
        [--max-jobs 3] [--cpus-per-job 4] [--min-backlog 2] [--scheduler slurm|pbs]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def one_run(workdir: Path, args: argparse.Namespace, elastic: bool, n: int) -> dict:
    """One `hpcflow run` in a fresh process: its metrics."""
    run_dir = workdir / "runs" / f"{'elastic' if elastic else 'plain'}-{n}"
    cmd = [sys.executable, "-m", "hpcflow", "run", "pipeline", "--mapping", "dyn_redis", "--cpus", "3"]
    cmd += ["--oversubscribe", "-q", "-p", f"items={args.items}", "-p", f"latency={args.latency}"]
    cmd += ["--run-dir", str(run_dir)]
    if elastic:
        config = workdir / "elastic.yaml"
        settings = {"max_jobs": args.max_jobs, "cpus_per_job": args.cpus_per_job, "min_backlog_s": args.min_backlog}
        config.write_text(json.dumps({"elastic": settings, "batch": {"scheduler": args.scheduler}}))
        cmd += ["--elastic", "--config", str(config)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(cmd, cwd=workdir, env=env, check=True, stdout=subprocess.DEVNULL)
    return json.loads((run_dir / "metrics.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--max-jobs", type=int, default=3)
    parser.add_argument("--cpus-per-job", type=int, default=4)
    parser.add_argument("--min-backlog", type=float, default=2.0)
    parser.add_argument("--scheduler", default="slurm", choices=["slurm", "pbs"])
    args = parser.parse_args()
    work_s = args.items * 3 * args.latency
    print(f"pipeline items={args.items} latency={args.latency}: {work_s:.0f} s of latency-bound work, 2 workers")
    print(f"{'repeat':>6} {'plain s':>8} {'elastic s':>9} {'ratio':>6} {'jobs':>5} {'joined':>6} {'job CPU-s':>9}")
    with tempfile.TemporaryDirectory(prefix="hpcflow-bench-elastic-") as tmp:
        for n in range(args.repeats):
            plain = one_run(Path(tmp), args, False, n)
            grown = one_run(Path(tmp), args, True, n)
            e = grown["elastic"]
            ratio = grown["runtime_s"] / plain["runtime_s"]
            print(
                f"{n:>6} {plain['runtime_s']:>8.1f} {grown['runtime_s']:>9.1f} {ratio:>6.0%} "
                f"{e['jobs_started']:>5} {grown['workers_joined']:>6} {e['job_process_s']:>9.1f}"
            )


if __name__ == "__main__":
    main()
