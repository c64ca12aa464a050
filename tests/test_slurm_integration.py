"""End to end on a real SLURM: `scripts/local-slurm.sh` starts a single-node one (CI does,
in .ci/run). Each test needs it through `require`, so CI fails when it is missing.

Jobs are waited for by polling `scontrol show job` (no accounting database needed),
within a bound; a job still unfinished then is cancelled and the test fails."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from hpcflow.mappings import MAPPINGS
from hpcflow.workflows import BUILTINS
from tests.conftest import ROOT, require

JOB_TIMEOUT_S = 240
FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL"}


def slurm_running() -> bool:
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return False
    done = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=60)
    usable = ("idle", "mixed", "allocated", "completing")
    return done.returncode == 0 and any(state.startswith(usable) for state in done.stdout.split())


@pytest.fixture(scope="module")
def slurm():
    require(slurm_running(), "a running SLURM (start one with scripts/local-slurm.sh)")


def job_field(job_id: str, name: str) -> str | None:
    done = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=60)
    match = re.search(rf"\b{name}=(\S+)", done.stdout)
    return match[1] if match else None


def wait_for_state(job_id: str, states: set[str], timeout: float = JOB_TIMEOUT_S) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = job_field(job_id, "JobState")
        if state in states or state in FINISHED:
            return state
        time.sleep(1)
    subprocess.run(["scancel", job_id], timeout=60)
    pytest.fail(f"SLURM job {job_id} not in {sorted(states)} after {timeout} s: cancelled")


def submitted(done) -> tuple[str, str]:
    assert done.returncode == 0, done.stderr
    job_id, run_dir = done.stdout.strip().splitlines()[-2:]
    return job_id, run_dir


def test_submit_pipeline_on_simple_completes_with_metrics_and_outputs(slurm, cli, tmp_path):
    done = cli("submit", "pipeline", "--cpus", "2", "--mapping", "simple", "-p", "items=50", "--walltime", "00:05:00")
    job_id, run_dir = submitted(done)
    run = tmp_path / run_dir
    state = wait_for_state(job_id, FINISHED)
    assert state == "COMPLETED", (run / "job.out").read_text()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["allocation"]["scheduler"] == "slurm"
    assert metrics["allocation"]["job_id"] == job_id
    assert metrics["allocation"]["cpus"] == 2
    assert metrics["items"]["Source"] == 50
    assert len((run / "outputs.jsonl").read_text().splitlines()) == 50
    assert (run / "job.out").read_text().strip().splitlines()[-1] == str(run)
    status = cli("status", run_dir).stdout.splitlines()  # the scheduler asked once: the job is over
    assert status[0] == f"slurm job {job_id}: COMPLETED, exit code 0:0"  # (sacct, or scontrol for a while)
    assert status[1].startswith("ok pipeline on simple: ")


def test_status_of_a_running_job_shows_the_schedulers_state_and_the_runs(slurm, cli, tmp_path):
    args = ("-p", "items=400", "-p", "stages=1", "-p", "latency=0.1")
    job_id, run_dir = submitted(cli("submit", "pipeline", "--cpus", "1", "--mapping", "simple", *args))
    try:
        assert wait_for_state(job_id, {"RUNNING"}) == "RUNNING"
        deadline = time.monotonic() + 60
        while not (tmp_path / run_dir / "status.json").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        status = cli("status", run_dir)
        assert status.returncode == 0, status.stderr
        lines = status.stdout.splitlines()
        assert lines[0] == f"slurm job {job_id}: RUNNING"
        assert lines[1].startswith("running pipeline on simple: ")
    finally:
        subprocess.run(["scancel", job_id], timeout=60)


def batch_step_pids(job_id: str, at_least: int = 1) -> list[str]:
    """The processes of the job's batch step, once there are `at_least` of them."""
    deadline, pids = time.monotonic() + 60, []
    while len(pids) < at_least and time.monotonic() < deadline:
        listed = subprocess.run(["scontrol", "listpids", job_id], capture_output=True, text=True, timeout=60)
        pids = [  # a process SLURM has not resolved yet is listed as pid -1
            line.split()[0]
            for line in listed.stdout.splitlines()[1:]
            if " batch " in f" {line} " and line.split()[0].isdigit()
        ]
        time.sleep(0.5)
    return pids


def test_the_launcher_is_the_batch_shell_so_the_signal_reaches_it(slurm, cli, tmp_path):
    """The script execs hpcflow: the batch step's only process is `hpcflow run`."""
    args = ("-p", "items=400", "-p", "stages=1", "-p", "latency=0.1")
    job_id, _ = submitted(cli("submit", "pipeline", "--cpus", "1", "--mapping", "simple", *args))
    try:
        assert wait_for_state(job_id, {"RUNNING"}) == "RUNNING"
        commands = [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") for pid in batch_step_pids(job_id)]
        assert commands, "no process in the batch step"
        assert all(cmd[:4] == [sys.executable.encode(), b"-m", b"hpcflow", b"run"] for cmd in commands), commands
    finally:
        subprocess.run(["scancel", job_id], timeout=60)


def test_the_walltime_warning_signal_stops_the_run_with_a_checkpoint(slurm, cli, tmp_path):
    """`scancel --batch --signal=TERM` sends what `--signal=B:TERM@60` sends before the walltime:
    the exec'd launcher gets it, writes a checkpoint and stops, and `hpcflow resume` can go on."""
    needs_workflow_and_mapping("pipeline", "dyn_multi")
    args = ("-p", "items=100000", "-p", "latency=0.01")
    job_id, run_dir = submitted(cli("submit", "pipeline", "--cpus", "4", "--mapping", "dyn_multi", *args))
    run = tmp_path / run_dir
    try:
        assert wait_for_state(job_id, {"RUNNING"}) == "RUNNING"
        assert len(batch_step_pids(job_id, at_least=5)) >= 5, "the launcher and its 4 workers did not start"
        time.sleep(1)  # let items flow
        subprocess.run(["scancel", "--batch", "--signal=TERM", job_id], check=True, timeout=60)
        assert wait_for_state(job_id, FINISHED) == "FAILED"
    finally:
        subprocess.run(["scancel", job_id], timeout=60)
    log = (run / "job.out").read_text()
    assert "stopped by SIGTERM" in log, log
    assert job_field(job_id, "ExitCode") == f"{128 + 15}:0"
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 < metrics["items"]["Source"] < 100_000
    assert metrics["error"].startswith("stopped by SIGTERM: checkpoint ")
    assert (run / "checkpoint" / "run.json").is_file()


@pytest.mark.parametrize("script", ["galaxy_64.sh", "seismic_32.sh", "sentiment_16.sh", "sentiment_until_done.sh"])
def test_jobscripts_are_accepted_by_sbatch(slurm, script):
    done = subprocess.run(
        ["sbatch", "--test-only", str(ROOT / "jobscripts" / script)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def needs_workflow_and_mapping(workflow: str, mapping: str) -> None:
    """They come from other branches: skipped on a developer's machine without them."""
    require(workflow in BUILTINS, f"the {workflow} workflow")
    require(mapping in MAPPINGS, f"the {mapping} mapping")


def hpcflow_env(tmp_path: Path) -> dict[str, str]:
    """The environment sbatch passes on: this checkout importable and `hpcflow` on PATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if shutil.which("hpcflow") is None:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "hpcflow").write_text(f'#!/bin/sh\nexec {sys.executable} -m hpcflow "$@"\n')
        (bin_dir / "hpcflow").chmod(0o755)
        env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    return env


def test_sbatch_wait_galaxy_jobscript_leaves_metrics(slurm, tmp_path):
    needs_workflow_and_mapping("galaxy", "dyn_auto_multi")
    name = f"hpcflow-test-{uuid.uuid4().hex[:8]}"
    command = ["sbatch", "--wait", f"--job-name={name}", f"--chdir={tmp_path}", f"--output={tmp_path}/job.out"]
    try:
        done = subprocess.run(
            [*command, str(ROOT / "jobscripts" / "galaxy_64.sh")],
            env=hpcflow_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=JOB_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        subprocess.run(["scancel", f"--name={name}"], timeout=60)
        pytest.fail(f"sbatch --wait jobscripts/galaxy_64.sh did not finish in {JOB_TIMEOUT_S} s: cancelled")
    log = (tmp_path / "job.out").read_text() if (tmp_path / "job.out").exists() else ""
    assert done.returncode == 0, done.stderr + log
    run = Path(log.strip().splitlines()[-1])
    assert run.parent == tmp_path / "runs" and run.name.endswith("-galaxy-dyn_auto_multi")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["allocation"]["cpus"] == 64 and metrics["mapping"] == "dyn_auto_multi"


def test_submit_galaxy_on_dyn_auto_multi_completes(slurm, cli, tmp_path):
    needs_workflow_and_mapping("galaxy", "dyn_auto_multi")
    job_id, run_dir = submitted(cli("submit", "--cpus", "32", "--mapping", "dyn_auto_multi", "galaxy"))
    run = tmp_path / run_dir
    assert wait_for_state(job_id, FINISHED) == "COMPLETED", (run / "job.out").read_text()
    assert json.loads((run / "metrics.json").read_text())["processes"] <= 32
    assert (run / "outputs.jsonl").is_file()


def test_submit_from_the_repository_root_reads_the_default_config(slurm, cli, tmp_path):
    needs_workflow_and_mapping("galaxy", "dyn_auto_multi")
    done = cli("submit", "--cpus", "32", "--mapping", "dyn_auto_multi", "--dry-run", cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "hpcflow run galaxy --mapping dyn_auto_multi --cpus 32" in done.stdout


def slurm_accounting() -> bool:
    """slurmctld records jobs in slurmdbd, so sacct answers: scripts/local-slurm.sh sets it up
    (a slurmctld started before that has no accounting until it is restarted)."""
    if shutil.which("sacctmgr") is None:
        return False
    done = subprocess.run(
        ["sacctmgr", "-n", "-P", "show", "cluster", "format=controlhost"], capture_output=True, text=True, timeout=60
    )
    return done.returncode == 0 and done.stdout.strip() != ""


def attempts_of(run: Path, first: str, timeout: float) -> list[str]:
    """Wait for an --until-done chain of jobs to end: the ids of its attempts. Each attempt
    writes the next one's id to RUN_DIR/job_id before it ends."""
    deadline, job_ids = time.monotonic() + timeout, [first]
    while True:
        wait_for_state(job_ids[-1], FINISHED, timeout=max(1.0, deadline - time.monotonic()))
        latest = (run / "job_id").read_text().split()[1]
        if latest == job_ids[-1]:
            return job_ids
        job_ids.append(latest)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_until_done_job_outlives_its_walltime_through_further_attempts_with_the_exact_result(slurm, cli, tmp_path):
    """A one-minute walltime and about two minutes of sleep-bound work on hybrid_multi with a
    stateful count: SLURM's early SIGTERM stops each attempt with a checkpoint, the job
    submits itself again, and the last attempt finishes with what an uninterrupted run gives."""
    needs_workflow_and_mapping("pipeline", "hybrid_multi")
    params = ("-p", "items=2400", "-p", "stateful=true")
    reference = cli("run", "pipeline", "--mapping", "simple", *params, "-q", "--run-dir", "reference")
    assert reference.returncode == 0, reference.stderr
    work = ("--cpus", "6", *params, "-p", "latency=0.1", "--checkpoint-interval", "10")
    until_done = ("--walltime", "00:01:00", "--until-done", "--max-attempts", "20")
    first, run_dir = submitted(cli("submit", "pipeline", "--mapping", "hybrid_multi", *work, *until_done))
    run = tmp_path / run_dir
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    watch = [sys.executable, "-m", "hpcflow", "status", str(run), "--watch", "--interval", "1"]
    watcher = subprocess.Popen(watch, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        job_ids = attempts_of(run, first, timeout=900)
        watched, _ = watcher.communicate(timeout=120)  # `status --watch` follows every attempt to the end
    finally:
        subprocess.run(["scancel", (run / "job_id").read_text().split()[1]], timeout=60)
        watcher.kill()
    assert watcher.returncode == 0, watched
    blocks = watched.split("\n\n")
    assert f"slurm job {job_ids[1]}: " in watched and blocks[-1].splitlines()[1].startswith(
        "ok pipeline on hybrid_multi"
    )
    log = (run / "job.out").read_text()
    assert len(job_ids) > 1, log
    assert job_field(job_ids[-1], "JobState") == "COMPLETED", log
    assert f"attempt {len(job_ids)} of 20: the run is finished (exit 0)" in log
    stopped = [job_field(job_id, "ExitCode") for job_id in job_ids[:-1]]
    assert stopped == ["0:0"] * len(stopped), log  # each stopped by SIGTERM with a checkpoint, as planned
    assert [job_field(job_id, "JobState") for job_id in job_ids] == ["COMPLETED"] * len(job_ids), log
    assert log.count("stopped with a checkpoint; attempt ") == len(stopped)
    assert "CANCELLED" not in log  # slurmstepd writes that for a TERM; the early warning is USR1
    assert log.count("a planned stop: this job ends with exit 0 (hpcflow exited 143 after the checkpoint)") == len(
        stopped
    )
    expected = (tmp_path / "reference" / "outputs.jsonl").read_text().splitlines()
    assert sorted((run / "outputs.jsonl").read_text().splitlines()) == sorted(expected)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["attempts"] == len(job_ids)
    attempts = metrics["attempt_log"]  # each attempt with its job, the checkpoint it went on from, one timeline
    assert [a["job_id"] for a in attempts] == job_ids, attempts
    assert [a["status"] for a in attempts] == ["interrupted"] * len(stopped) + ["ok"], attempts
    assert all(b["resumed_from"] == a["checkpoint"] for a, b in zip(attempts, attempts[1:], strict=False)), attempts
    assert metrics["timeline"][-1][0] > attempts[-1]["start_s"] > attempts[0]["end_s"]
    shown = cli("status", str(run)).stdout
    assert f"  {len(job_ids)} attempts over " in shown and f" job {job_ids[0]}: stopped by SIGTERM" in shown, shown
    assert f"<h2>Attempts ({len(job_ids)})</h2>" in (run / "report.html").read_text()
    if slurm_accounting():  # else `scontrol show job` above is the scheduler's record of the attempts
        listed = subprocess.run(
            ["sacct", "-n", "-X", "-P", "--format=JobID,State", "-j", ",".join(job_ids)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        rows = [line.split("|") for line in listed.stdout.splitlines()]
        assert rows == [[job_id, "COMPLETED"] for job_id in job_ids], listed.stdout  # planned stops too
