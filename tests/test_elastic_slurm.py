"""`hpcflow run --elastic` on the real local SLURM (scripts/local-slurm.sh): the run
submits worker jobs while its backlog outgrows its workers, they join, and every job is
gone from the queue when the run ends, started or not."""

import json
import os
import shutil
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from hpcflow.api import run as run_workflow
from hpcflow.progress import read_status
from hpcflow.workflows import load_workflow
from tests.conftest import ROOT, require
from tests.test_slurm_integration import slurm_running

ITEMS, LATENCY = 100, 0.2  # 3 stages: a minute of latency-bound work for one worker
RUN_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def slurm():
    require(slurm_running(), "a running SLURM (start one with scripts/local-slurm.sh)")


def our_jobs(name: str, command: tuple[str, ...] = ("squeue", "-h", "-o", "%i %j %T")) -> dict[str, str]:
    """Job id -> state of the queued or running jobs named `name`."""
    done = subprocess.run(list(command), capture_output=True, text=True, timeout=60)
    return {i: state for i, job, state in (line.split() for line in done.stdout.splitlines()) if job == name}


def launch(tmp_path: Path, run_name: str, items: int, elastic: dict, env: dict | None = None) -> subprocess.Popen:
    (tmp_path / "elastic.yaml").write_text(json.dumps({"elastic": elastic}))
    args = ["run", "pipeline", "--mapping", "dyn_redis", "--cpus", "3", "--oversubscribe", "-q"]
    args += ["-p", f"items={items}", "-p", f"latency={LATENCY}", "--run-dir", f"runs/{run_name}"]
    args += ["--elastic", "--config", "elastic.yaml"]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "hpcflow", *args], cwd=tmp_path, env=full_env, stdout=subprocess.PIPE, text=True
    )


def watch(proc: subprocess.Popen, name: str, statuses: list | None = None) -> dict[str, set[str]]:
    """Every state each of our jobs was seen in while the run went on (squeue once a second);
    with `statuses`, the `elastic` part of the run's status.json at each look is added to it."""
    seen: dict[str, set[str]] = {}
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the elastic run did not end in {RUN_TIMEOUT_S} s")
        for job_id, state in our_jobs(name).items():
            seen.setdefault(job_id, set()).add(state)
        if statuses is not None:
            snap = read_status(statuses[0])
            if snap is not None and snap.elastic:
                statuses.append(snap.elastic)
        try:
            proc.wait(1)
        except subprocess.TimeoutExpired:
            pass
    return seen


def assert_queue_empties(name: str) -> None:
    """Cancelled jobs leave the queue once SLURM has killed their processes (COMPLETING)."""
    deadline = time.monotonic() + 60
    while (left := our_jobs(name)) and time.monotonic() < deadline:
        time.sleep(1)
    if left:
        subprocess.run(["scancel", *left], timeout=60)
    assert not left, f"jobs left in the queue after the run: {left}"


def stage_outputs(run_dir: Path) -> list:
    rows = [json.loads(line) for line in (run_dir / "outputs.jsonl").read_text().splitlines()]
    return sorted(row["data"] for row in rows)


@pytest.mark.parametrize("scheduler", ["slurm", "pbs"])
def test_a_backlog_submits_worker_jobs_that_join_and_the_queue_is_empty_after(slurm, tmp_path, scheduler):
    """With pbs: qsub/qstat/qdel of Debian's slurm-wlm-torque, in front of the same SLURM."""
    if scheduler == "pbs":
        require(shutil.which("qsub") is not None, "qsub (apt-get install slurm-wlm-torque)")
    run_name = f"elastic-{uuid.uuid4().hex[:8]}"
    elastic = {"max_jobs": 3, "cpus_per_job": 4, "min_backlog_s": 2, "idle_s": 10, "walltime": "00:10:00"}
    proc = launch(tmp_path, run_name, ITEMS, elastic, {"HPCFLOW_SCHEDULER": scheduler})
    seen = watch(proc, f"hpcflow-worker-{run_name}")
    assert proc.returncode == 0
    assert seen, "no worker job was seen in squeue during the run"
    assert len(seen) <= 3
    assert any("RUNNING" in states for states in seen.values())
    assert_queue_empties(f"hpcflow-worker-{run_name}")

    run_dir = tmp_path / "runs" / run_name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(seen) <= set(metrics["elastic"]["job_ids"])  # a job may come and go between two looks
    assert metrics["elastic"]["scheduler"] == scheduler
    assert metrics["elastic"]["jobs_started"] >= 1 and metrics["elastic"]["jobs_failed"] == 0
    assert metrics["elastic"]["job_process_s"] > 0
    assert metrics["workers_joined"] >= 4  # one job's cpus_per_job workers at least
    wf = load_workflow("pipeline", {"items": ITEMS})
    expected = sorted(list(row) for row in run_workflow(wf.graph, wf.inputs, "simple").outputs["Stage2"]["output"])
    assert stage_outputs(run_dir) == expected
    assert set(metrics["items"].values()) == {ITEMS}


def held_sbatch(tmp_path: Path) -> dict:
    """PATH with an `sbatch` that submits held jobs (they stay PENDING), in front of the real one."""
    shim = tmp_path / "bin"
    shim.mkdir()
    real = subprocess.run(["which", "sbatch"], capture_output=True, text=True).stdout.strip()
    (shim / "sbatch").write_text(f'#!/bin/sh\nexec {real} --hold "$@"\n')
    (shim / "sbatch").chmod(stat.S_IRWXU)
    return {"PATH": f"{shim}{os.pathsep}{os.environ['PATH']}"}


def test_work_that_ends_before_the_jobs_start_cancels_them_pending(slurm, tmp_path):
    run_name = f"elastic-held-{uuid.uuid4().hex[:8]}"
    elastic = {"max_jobs": 2, "cpus_per_job": 2, "min_backlog_s": 1, "idle_s": 60}
    proc = launch(tmp_path, run_name, 30, elastic, held_sbatch(tmp_path))
    run_dir = tmp_path / "runs" / run_name
    statuses: list = [run_dir]
    seen = watch(proc, f"hpcflow-worker-{run_name}", statuses)
    assert proc.returncode == 0
    assert seen and all(states == {"PENDING"} for states in seen.values()), seen
    assert_queue_empties(f"hpcflow-worker-{run_name}")
    # while the run went on, status.json showed the jobs pending; the end shows them cancelled
    assert any(s["pending"] >= 1 and s["running"] == 0 for s in statuses[1:]), statuses[1:]
    shown = subprocess.run(
        [sys.executable, "-m", "hpcflow", "status", str(run_dir)], capture_output=True, text=True, timeout=60
    )
    assert "worker jobs (slurm):" in shown.stdout and " cancelled" in shown.stdout, shown.stdout
    assert "Worker jobs (--elastic, slurm)" in (run_dir / "report.html").read_text()
    metrics = json.loads((run_dir / "metrics.json").read_text())["elastic"]
    assert metrics["jobs_submitted"] == len(metrics["job_ids"]) >= 1
    assert metrics["jobs_cancelled"] == metrics["jobs_submitted"]
    assert metrics["jobs_started"] == 0 and metrics["jobs_failed"] == 0 and metrics["job_process_s"] == 0
