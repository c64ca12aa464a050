"""What a batch job does to the `mpi` mapping, launcher by launcher: one row per fault
with the seconds from the fault to the launcher's exit, its exit code, what the run
directory holds and how many ranks outlived the launcher.

    python experiments/bench/mpi_faults.py [--ranks 6] [--launchers mpiexec,relaunch,srun,sbatch]
        [--faults none,term_rank0,term_launcher,kill_rank,kill_parent] [--code DIR]

Launchers: `mpiexec -n N hpcflow run ...`; `hpcflow run ... --cpus N`, which re-launches
itself through mpiexec ("the launcher" is then that first process); `srun --mpi=pmi2
--kill-on-bad-exit=1 -n N hpcflow run ...` (a step of its own allocation); `sbatch` of a
script that `exec`s the re-launching line (as `hpcflow submit --mapping mpi` writes) or,
`sbatch_srun`, the srun line (the launcher is the batch shell, signalled with `scancel
--batch`). Faults: none (a short run that completes), SIGTERM to rank 0, SIGTERM to the
launcher, `scancel --signal=TERM` (every task of the job's steps; srun launchers only),
SIGKILL to rank 2, SIGKILL to the launcher (relaunch only: the parent dies, the ranks
must not stay). "ranks left" counts ranks alive when the launcher exited, and when they
were gone. --code runs another checkout (a copy of main
for the "before" column). Needs mpiexec, and a running SLURM for srun and sbatch.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil

LONG = ["-p", "items=100000", "-p", "latency=0.01", "-p", "stateful=true", "-p", "stages=2"]
SHORT = ["-p", "items=300", "-p", "stateful=true", "-p", "stages=2"]
WAIT_S = 60  # longer than this after the fault counts as a hang (then everything is killed)


def hpcflow_args(params: list[str], ranks: int, run_dir: Path, launcher: str) -> list[str]:
    args = [sys.executable, "-m", "hpcflow", "run", "pipeline", *params, "--mapping", "mpi", "--run-dir", str(run_dir)]
    return [*args, "--cpus", str(ranks)] if launcher == "relaunch" else args


def ranks_of(run_dir: Path) -> list[psutil.Process]:
    """The rank processes of the run (python processes with its run directory and a rank variable)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if str(run_dir) not in cmd or "hpcflow" not in cmd:
            continue
        try:
            env = p.environ()
        except psutil.Error:
            continue
        if (
            "PMI_RANK" in env
            or "SLURM_PROCID" in env
            and "SLURM_STEP_ID" in env
            and env.get("SLURM_STEP_ID") != "batch"
        ):
            found.append(p)
    return found


def rank_number(p: psutil.Process) -> int:
    env = p.environ()
    return int(env.get("PMI_RANK", env.get("SLURM_PROCID", "-1")))


class Launch:
    """One run under one launcher: start, find its ranks, signal, wait."""

    def __init__(self, launcher: str, ranks: int, run_dir: Path, params: list[str], env: dict):
        self.launcher, self.run_dir, self.ranks = launcher, run_dir, ranks
        args = hpcflow_args(params, ranks, run_dir, launcher)
        self.job_id = None
        if launcher == "mpiexec":
            cmd = [shutil.which("mpiexec") or "mpiexec", "-n", str(ranks), *args]
        elif launcher == "srun":
            cmd = ["srun", "--mpi=pmi2", "--kill-on-bad-exit=1", "-n", str(ranks), *args]
        elif launcher.startswith("sbatch"):
            script = run_dir.parent / f"{run_dir.name}.sh"
            if launcher == "sbatch_srun":
                line = ["srun", "--mpi=pmi2", "--kill-on-bad-exit=1", *args]
            else:  # what `hpcflow submit --mapping mpi` writes: the re-launch through mpiexec
                line = hpcflow_args(LONG if params is LONG else params, ranks, run_dir, "relaunch")
            script.write_text(
                f"#!/bin/bash\n#SBATCH -n {ranks}\n#SBATCH --output={run_dir}.out\nexec {' '.join(line)}\n"
            )
            cmd = ["sbatch", "--parsable", str(script)]
        else:
            cmd = args
        self.t_start = time.monotonic()
        if launcher.startswith("sbatch"):
            done = subprocess.run(cmd, env=env, cwd=run_dir.parent, capture_output=True, text=True, check=True)
            self.job_id = done.stdout.strip()
            self.proc = None
            self.stderr_path = Path(f"{run_dir}.out")
        else:
            self.stderr_path = run_dir.parent / f"{run_dir.name}.err"
            self._err = self.stderr_path.open("w")
            # not in a checkout: `python -m` would import the hpcflow of the working directory
            self.proc = subprocess.Popen(cmd, env=env, cwd=run_dir.parent, stdout=subprocess.DEVNULL, stderr=self._err)

    def started(self, timeout: float = 60) -> list[psutil.Process]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = ranks_of(self.run_dir)
            if len(found) >= self.ranks and (self.run_dir / "run.log").exists():
                return sorted(found, key=rank_number)
            if self.finished():
                break
            time.sleep(0.1)
        return ranks_of(self.run_dir)

    def launcher_pid(self) -> int | None:
        if self.proc is not None:
            return self.proc.pid
        return None

    def signal_launcher(self, sig: int) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, sig)
        else:
            name = signal.Signals(sig).name.removeprefix("SIG")
            subprocess.run(["scancel", "--batch", f"--signal={name}", self.job_id], check=True)

    def signal_step(self, sig: int, ranks: list[psutil.Process]) -> None:
        """`scancel --signal`: the signal to every task of the job's steps (not the batch shell)."""
        job = self.job_id or ranks[0].environ().get("SLURM_JOB_ID")
        name = signal.Signals(sig).name.removeprefix("SIG")
        subprocess.run(["scancel", f"--signal={name}", job], check=True)

    def finished(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is not None
        out = subprocess.run(["squeue", "-h", "-j", self.job_id], capture_output=True, text=True).stdout
        return not out.strip()

    def wait(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.finished():
                return self.exit_code()
            time.sleep(0.02)
        return None

    def exit_code(self) -> int | None:
        if self.proc is not None:
            return self.proc.returncode
        out = subprocess.run(["scontrol", "show", "job", "-o", self.job_id], capture_output=True, text=True).stdout
        for field in out.split():
            if field.startswith("ExitCode="):
                code, sig = field.removeprefix("ExitCode=").split(":")
                return int(code) if code != "0" or sig == "0" else 128 + int(sig)
        return None

    def kill_everything(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.job_id:
            subprocess.run(["scancel", self.job_id])
        for p in ranks_of(self.run_dir):
            try:
                p.kill()
            except psutil.Error:
                pass


def written(run_dir: Path) -> str:
    parts = []
    metrics = run_dir / "metrics.json"
    if metrics.exists():
        m = json.loads(metrics.read_text())
        parts.append(f"metrics {m.get('status')}")
        parts[-1] += f" (Source {m['items'].get('Source')})"
    outputs = run_dir / "outputs.jsonl"
    if outputs.exists():
        rows = [json.loads(line) for line in outputs.read_text().splitlines()]
        totals = [r["data"]["total"] for r in rows if r["pe"] == "Total"]
        parts.append(f"outputs (Total {totals[0]})" if totals else f"outputs ({len(rows)} rows)")
    return ", ".join(parts) or "run.log only" if (run_dir / "run.log").exists() else ", ".join(parts) or "nothing"


def hpcflow_lines(path: Path) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    lines = [ln for ln in text.splitlines() if ln.startswith("hpcflow: ") and "running pipeline" not in ln]
    lines = [ln for ln in lines if "re-launching" not in ln and "run directory" not in ln]
    return " / ".join(ln[:110] for ln in lines[:2]) or "-"


FAULTS: dict[str, Callable[[Launch, list[psutil.Process]], None]] = {
    "none": lambda launch, ranks: None,
    "term_rank0": lambda launch, ranks: ranks[0].send_signal(signal.SIGTERM),
    "term_launcher": lambda launch, ranks: launch.signal_launcher(signal.SIGTERM),
    "kill_rank": lambda launch, ranks: ranks[2].kill(),
    "kill_parent": lambda launch, ranks: launch.signal_launcher(signal.SIGKILL),
    "term_step": lambda launch, ranks: launch.signal_step(signal.SIGTERM, ranks),
}


def one(launcher: str, fault: str, ranks: int, tmp: Path, env: dict) -> dict:
    run_dir = tmp / f"{launcher}-{fault}"
    launch = Launch(launcher, ranks, run_dir, SHORT if fault == "none" else LONG, env)
    row = {"launcher": launcher, "fault": fault}
    try:
        procs = launch.started()
        if len(procs) < ranks:
            row.update(seconds=None, exit=launch.exit_code(), written=f"started {len(procs)} ranks", line="-")
            return row
        if fault != "none":
            time.sleep(1.0)  # items flow
        t0 = time.monotonic()
        FAULTS[fault](launch, procs)
        code = launch.wait(WAIT_S if fault != "none" else 300)
        took = time.monotonic() - t0
        left = [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        row.update(seconds=round(took, 2) if code is not None else f">{WAIT_S}", exit=code, left=len(left))
        if left:  # how long the ranks go on after the launcher
            alive = psutil.wait_procs(left, timeout=30)[1]
            row["left_after_30s"] = len(alive)
            row["ranks_gone_s"] = round(time.monotonic() - t0, 2) if not alive else None
        row.update(written=written(run_dir), line=hpcflow_lines(launch.stderr_path))
    finally:
        launch.kill_everything()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=6)
    parser.add_argument("--launchers", default="mpiexec,relaunch,srun,sbatch,sbatch_srun")
    parser.add_argument("--faults", default="none,term_rank0,term_launcher,term_step,kill_rank,kill_parent")
    parser.add_argument("--code", default=str(Path(__file__).resolve().parents[2]), help="checkout to run")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "PMIX_", "OMPI_", "SLURM_"))}
    env.update(PYTHONPATH=args.code, HPCFLOW_OVERSUBSCRIBE="1")
    rows = []
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        for launcher in args.launchers.split(","):
            for fault in args.faults.split(","):
                if fault == "kill_parent" and launcher != "relaunch" or fault == "term_step" and "srun" not in launcher:
                    continue
                row = one(launcher, fault, args.ranks, Path(tmp), env)
                rows.append(row)
                print(json.dumps(row), flush=True)
    print()
    print("| fault | launcher | s to exit | exit | ranks left | written | hpcflow line |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        left = r.get("left", "-")
        if r.get("left_after_30s"):
            left = f"{left} ({r['left_after_30s']} after 30 s)"
        elif r.get("ranks_gone_s"):
            left = f"{left} (gone at {r['ranks_gone_s']} s)"
        row = (r["fault"], r["launcher"], r["seconds"], r["exit"], left, r["written"], r["line"])
        print("| " + " | ".join(str(x) for x in row) + " |")


if __name__ == "__main__":
    main()
