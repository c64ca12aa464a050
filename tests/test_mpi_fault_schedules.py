"""Seeded fault schedules for the `mpi` mapping, under mpiexec and the local SLURM's srun.

Each schedule runs the stateful pipeline (a group-by count and a global total: its exact
answer is `simple`'s) as 6 real ranks and injects, at moments drawn from its seed: one
or several SIGTERM/SIGINT (to a rank, to mpiexec, or `scancel` under srun), SIGKILL of a
rank, and a drain deadline (--drain-timeout) from 0 to more than the drain needs. The
invariant, after each: a run ends `ok` (exit 0) only with outputs equal to `simple`'s; a
drained run's Total is every item its Source fed; a run cut short (deadline, second
signal) says so and has no total; a dead rank is named on one line and the run is
`failed`; metrics.json, status.json and the exit code agree; no rank is left. Where
mpiexec's hydra kills every rank itself (two SIGINTs close together), `hpcflow status`
says the run was killed and no Total claims to be one.

The seed is printed; `HPCFLOW_FAULT_SEED=S pytest tests/test_mpi_fault_schedules.py`
runs the one schedule S on each launcher again. `HPCFLOW_MPI_SCHEDULES=N` runs N per
launcher (default 4: a few minutes of CI)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from tests.test_mpi_faults import RANKS, env, gone, hpcflow, last_words, mpiexec, ranks_of, srun  # noqa: F401 (fixtures)
from tests.test_mpi_launch import simple_outputs

pytestmark = [pytest.mark.timeout(600), pytest.mark.usefixtures("no_leftover_processes")]

ITEMS = 3000
PARAMS = ["-p", f"items={ITEMS}", "-p", "latency=0.002", "-p", "stateful=true", "-p", "stages=2"]
FIXED = os.environ.get("HPCFLOW_FAULT_SEED")
BASE_SEED = int(FIXED) if FIXED else random.SystemRandom().randrange(10**9)
COUNT = 1 if FIXED else int(os.environ.get("HPCFLOW_MPI_SCHEDULES", "4"))


@dataclass
class Schedule:
    seed: int
    launcher: str
    drain_timeout: float
    faults: list[tuple[float, str, str]] = field(default_factory=list)  # (seconds after start, kind, target)

    @classmethod
    def draw(cls, seed: int, launcher: str) -> Schedule:
        rng = random.Random(seed)
        s = cls(seed, launcher, rng.choice([0.0, 0.5, 2.0, 30.0]))
        kind = rng.choice(["none", "signal", "signals", "kill", "signal+kill"])
        at = rng.uniform(0.5, 3.0)
        if kind in ("signal", "signals", "signal+kill"):
            targets = ["rank", "mpiexec"] if launcher == "mpiexec" else ["rank", "scancel", "scancel --signal=TERM"]
            target = rng.choice(targets)
            sig = rng.choice(["SIGTERM", "SIGINT"]) if target in ("rank", "mpiexec") else "SIGTERM"
            for _ in range(1 if kind != "signals" else rng.randint(2, 4)):
                s.faults.append((at, sig, f"{target}:{rng.randrange(RANKS)}"))
                at += rng.choice([0.0, 0.01, 0.3, 1.5])
        if kind in ("kill", "signal+kill"):
            s.faults.append((at + rng.uniform(0.0, 1.0), "SIGKILL", f"rank:{rng.randrange(RANKS)}"))
        return s


def rows_of(run_dir: Path) -> list[dict]:
    path = run_dir / "outputs.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def inject(kind: str, target: str, proc: subprocess.Popen, ranks: list[psutil.Process]) -> None:
    where, _, index = target.partition(":")
    sig = signal.Signals[kind]
    try:
        if where == "rank":
            ranks[int(index)].send_signal(sig)
        elif where == "mpiexec":
            psutil.Process(proc.pid).send_signal(sig)
        else:  # scancel, plain or with --signal=TERM, of the srun's job
            job = ranks[0].environ()["SLURM_JOB_ID"]
            subprocess.run([*where.split(), job], check=True, timeout=60)
    except psutil.NoSuchProcess:
        pass  # the run ended before this fault: the run must then be exact


def play(schedule: Schedule, run_dir: Path, launcher: str) -> tuple[int, str]:
    prefix = (
        [launcher, "-n", str(RANKS)] if schedule.launcher == "mpiexec" else [launcher, "--mpi=pmi2", "-n", str(RANKS)]
    )
    cmd = [*prefix, *hpcflow(run_dir, *PARAMS), "--drain-timeout", str(schedule.drain_timeout)]
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ranks: list[psutil.Process] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        ranks = ranks_of(run_dir)
        if len(ranks) == RANKS and (run_dir / "run.log").exists():
            break
        time.sleep(0.05)
    start = time.monotonic()
    for at, kind, target in schedule.faults:
        time.sleep(max(0.0, start + at - time.monotonic()))
        if proc.poll() is None:
            inject(kind, target, proc, ranks)
    try:
        _, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
        gone(ranks)
    return proc.returncode, err


def check(schedule: Schedule, run_dir: Path, code: int, err: str, exact: list[str]) -> str:
    """The invariant; the outcome's name."""
    errors = last_words(err)
    if not (run_dir / "metrics.json").exists():
        return killed_by_its_launcher(schedule, run_dir, err)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    state = json.loads((run_dir / "status.json").read_text())["state"]
    assert state == metrics["status"], (state, metrics["status"])
    rows = rows_of(run_dir)
    if metrics["status"] == "ok":
        assert code == 0 and not errors, err
        assert sorted(json.dumps(r, sort_keys=True) for r in rows) == exact  # ok means exactly simple's
        return "exact"
    assert code != 0 and len(errors) == 1, err
    if metrics["status"] == "failed":
        assert "died" in errors[0] and any(kind == "SIGKILL" for _, kind, _ in schedule.faults), err
        return "dead rank, failed"
    killed = any(kind == "SIGKILL" for _, kind, _ in schedule.faults)  # a rank killed after rank 0 wrote: srun's 137
    assert metrics["status"] == "interrupted" and (code in (130, 143) or killed), (metrics["status"], code)
    if "in-flight work drained" in errors[0]:  # every item fed went through: the total is exact
        assert [(r["pe"], r["data"]["total"]) for r in rows] == [("Total", metrics["items"]["Source"])]
        return "drained"
    assert "drain did not end" in errors[0] or "second signal" in errors[0], err
    assert "second signal" not in errors[0] or len([f for f in schedule.faults if f[1] != "SIGKILL"]) > 1, err
    assert not any(r["pe"] == "Total" for r in rows)  # cut short: no total claims to be one
    return "cut short, said why"


def killed_by_its_launcher(schedule: Schedule, run_dir: Path, err: str) -> str:
    """No metrics.json: every rank was killed before rank 0 could write the run's end. MPICH's
    hydra does this on two SIGINTs to mpiexec close together (its proxy fails on `assert
    (!closed)`, SIGKILLs every rank and mpiexec may still exit 0): no rank can answer that.
    The run must not look finished, `hpcflow status` must say it was killed, and no Total may
    claim to be one."""
    assert any(target.startswith("mpiexec") for _, _, target in schedule.faults), err
    assert "HYD" in err, err  # hydra's own lines say what ended it
    assert json.loads((run_dir / "status.json").read_text())["state"] == "running"
    status = subprocess.run(
        [sys.executable, "-m", "hpcflow", "status", str(run_dir)], env=env(), capture_output=True, text=True, timeout=60
    )
    assert "the run was killed before it could write its end" in status.stdout, status.stdout + status.stderr
    assert not any(r["pe"] == "Total" for r in rows_of(run_dir))
    return "killed by its launcher, said by status"


@pytest.fixture(scope="module")
def exact() -> list[str]:
    return simple_outputs(ITEMS)


def schedules(launcher: str) -> list[Schedule]:
    return [Schedule.draw(BASE_SEED + i, launcher) for i in range(COUNT)]


@pytest.mark.parametrize("schedule", schedules("mpiexec"), ids=lambda s: f"seed{s.seed}")
def test_mpiexec_fault_schedule(tmp_path, mpiexec, exact, schedule):  # noqa: F811
    print(f"HPCFLOW_FAULT_SEED={schedule.seed}: {schedule}")
    code, err = play(schedule, tmp_path / "run", mpiexec)
    outcome = check(schedule, tmp_path / "run", code, err, exact)
    print(f"HPCFLOW_FAULT_SEED={schedule.seed}: {outcome}")


@pytest.mark.parametrize("schedule", schedules("srun"), ids=lambda s: f"seed{s.seed}")
def test_srun_fault_schedule(tmp_path, srun, exact, schedule):  # noqa: F811
    print(f"HPCFLOW_FAULT_SEED={schedule.seed}: {schedule}")
    code, err = play(schedule, tmp_path / "run", srun)
    outcome = check(schedule, tmp_path / "run", code, err, exact)
    print(f"HPCFLOW_FAULT_SEED={schedule.seed}: {outcome}")
