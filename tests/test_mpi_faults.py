"""The `mpi` mapping under what a batch job does to it, with real launchers: mpiexec,
the re-launch through mpiexec, and the local SLURM's `srun --mpi=pmi2` and sbatch.

A signal (to rank 0, to the launcher, to every task, to the re-launching parent, even
SIGKILL to that parent) drains the run: exit 128 + signal, metrics written, and every
item the source fed reaches the Total (exact). A killed rank ends the job with one
hpcflow line naming the rank and its PE instance, under mpiexec (whose hydra would end
every rank at once: each rank has a guard parent) and under srun. No rank outlives the test."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import psutil
import pytest

from hpcflow.batch.submit import make_job
from hpcflow.config import BatchConfig
from hpcflow.engines.mpi_channel import PROGRESS_S, SAME_SIGNAL_S
from hpcflow.mpirun import find_mpiexec
from tests.conftest import ROOT, python_without_mpiexec, require
from tests.test_mpi_launch import STATEFUL, outputs, simple_outputs
from tests.test_slurm_integration import FINISHED, job_field, slurm_running, submitted, wait_for_state

pytestmark = [pytest.mark.timeout(240), pytest.mark.usefixtures("no_leftover_processes")]

LONG = ["-p", "items=100000", "-p", "latency=0.002", "-p", "stateful=true", "-p", "stages=2"]  # 6 ranks
SLOW = [*LONG, "-p", "latency=0.02"]  # a drain of several seconds
RANKS = 6
INTERRUPTED = "interrupted"  # metrics.json's status for a drained run


@pytest.fixture
def mpiexec() -> str:
    path = find_mpiexec()
    require(path is not None, "mpiexec")
    return path


@pytest.fixture
def srun() -> str:
    require(slurm_running() and shutil.which("srun") is not None, "a running SLURM with srun")
    return "srun"


def env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "PMIX_", "OMPI_", "SLURM_"))}
    clean["PYTHONPATH"] = str(ROOT) + os.pathsep + clean.get("PYTHONPATH", "")
    clean["HPCFLOW_OVERSUBSCRIBE"] = "1"  # 6 ranks on a machine that may have 2 CPUs
    return clean


def hpcflow(run_dir: Path, *params: str) -> list[str]:
    return [sys.executable, "-m", "hpcflow", "run", "pipeline", *params, "--mapping", "mpi", "--run-dir", str(run_dir)]


def ranks_of(run_dir: Path) -> list[psutil.Process]:
    """The rank processes of the run, by the rank variable their launcher set, by rank
    (under mpiexec, the children of the guards hydra started: rankguard.py)."""
    found = []
    for p in psutil.process_iter(["cmdline", "ppid"]):
        try:
            if str(run_dir) in (p.info["cmdline"] or []) and ({"PMI_RANK", "SLURM_STEP_ID"} & set(p.environ())):
                found.append(p)
        except psutil.Error:
            continue
    guards = {p.info["ppid"] for p in found}
    found = [p for p in found if p.pid not in guards]
    return sorted(found, key=lambda p: int(p.environ().get("PMI_RANK", p.environ().get("SLURM_PROCID", "0"))))


def started(run_dir: Path, proc: subprocess.Popen | None = None) -> list[psutil.Process]:
    """The ranks, once all run and rank 0 has announced the run; then items flow a while."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        ranks = ranks_of(run_dir)
        if len(ranks) == RANKS and (run_dir / "run.log").exists():
            time.sleep(1.0)  # let items flow
            return ranks
        assert proc is None or proc.poll() is None, "the run ended before it started"
        time.sleep(0.1)
    pytest.fail(f"{RANKS} ranks of {run_dir} did not start")


def gone(ranks: list[psutil.Process]) -> None:
    """Every rank ends (within a bound, or the test fails and kills them)."""
    alive = psutil.wait_procs(ranks, timeout=60)[1]
    for p in alive:
        p.kill()
    assert not alive, f"ranks left running: {alive}"


def last_words(stderr: str) -> list[str]:
    """hpcflow's lines on how a run ended badly: an error, or a stop by a signal (said as
    what happened, not as an error). A progress line may quote them too, indented: not these."""
    return [line for line in stderr.splitlines() if line.startswith(("hpcflow: error:", "hpcflow: stopped by "))]


def assert_drained(run_dir: Path, stderr: str, sig: signal.Signals) -> None:
    """The run stopped on `sig` with everything fed drained through to the Total."""
    errors = last_words(stderr)
    assert len(errors) == 1 and f"stopped by {sig.name}" in errors[0], stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == INTERRUPTED
    fed = metrics["items"]["Source"]
    assert 0 < fed < 100_000
    rows = [json.loads(line) for line in (run_dir / "outputs.jsonl").read_text().splitlines()]
    assert [(r["pe"], r["data"]["total"]) for r in rows] == [("Total", fed)]  # postprocess() ran on all fed


def launch(cmd: list[str], run_dir: Path) -> tuple[subprocess.Popen, list[psutil.Process]]:
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return proc, started(run_dir, proc)


def finish(proc: subprocess.Popen, ranks: list[psutil.Process]) -> str:
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        gone(ranks)
    return err


@pytest.mark.parametrize(
    "target,sig",
    [("rank 0", signal.SIGTERM), ("mpiexec", signal.SIGTERM), ("mpiexec", signal.SIGINT), ("rank 3", signal.SIGTERM)],
)
def test_a_signal_under_mpiexec_drains_the_run(tmp_path, mpiexec, target, sig):
    run_dir = tmp_path / "run"
    proc, ranks = launch([mpiexec, "-n", str(RANKS), *hpcflow(run_dir, *LONG)], run_dir)
    (psutil.Process(proc.pid) if target == "mpiexec" else ranks[int(target[-1])]).send_signal(sig)
    err = finish(proc, ranks)
    assert proc.returncode == 128 + sig, err
    assert_drained(run_dir, err, sig)


def wait_for_drain(run_dir: Path, sig: signal.Signals) -> None:
    deadline = time.monotonic() + 60  # rank 0 logs the drain once it knows of it
    while f"{sig.name}: the sources stop" not in (run_dir / "run.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_second_signal_stops_every_rank_at_once(tmp_path, mpiexec):
    run_dir = tmp_path / "run"
    proc, ranks = launch([mpiexec, "-n", str(RANKS), *hpcflow(run_dir, *SLOW)], run_dir)
    ranks[1].send_signal(signal.SIGINT)
    wait_for_drain(run_dir, signal.SIGINT)
    time.sleep(SAME_SIGNAL_S)  # a signal closer to the first is the first by another path
    ranks[1].send_signal(signal.SIGINT)
    err = finish(proc, ranks)
    assert proc.returncode == 130, err
    assert err.count("stopped by SIGINT: stopped at once on a second signal") == 1, err
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == INTERRUPTED


@pytest.mark.parametrize("target", ["rank 1", "mpiexec"])
def test_the_same_signal_by_several_paths_is_one_signal(tmp_path, mpiexec, target):
    """What one plain `scancel` does: SIGTERM from slurmstepd, from mpiexec and from the
    re-launching hpcflow, within milliseconds. The run drains, and says so."""
    run_dir = tmp_path / "run"
    proc, ranks = launch([mpiexec, "-n", str(RANKS), *hpcflow(run_dir, *LONG)], run_dir)
    who = psutil.Process(proc.pid) if target == "mpiexec" else ranks[1]
    for _ in range(3):
        who.send_signal(signal.SIGTERM)
    err = finish(proc, ranks)
    assert proc.returncode == 143, err
    assert_drained(run_dir, err, signal.SIGTERM)


def test_a_drain_longer_than_drain_timeout_stops_with_the_counts_so_far(tmp_path, mpiexec):
    """50 ms items queue up for minutes of drain: after --drain-timeout every rank stops
    after its item, and metrics.json says interrupted with what each PE ran."""
    run_dir = tmp_path / "run"
    cmd = [mpiexec, "-n", str(RANKS), *hpcflow(run_dir, *SLOW, "-p", "latency=0.05"), "--drain-timeout", "2"]
    proc, ranks = launch(cmd, run_dir)
    proc.send_signal(signal.SIGTERM)
    err = finish(proc, ranks)
    assert proc.returncode == 143, err
    [line] = last_words(err)
    assert "stopped by SIGTERM: the drain did not end within 2 s (drain_timeout)" in line, err
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == INTERRUPTED and "drain_timeout" in metrics["error"]
    assert metrics["items"]["Source"] > metrics["items"]["Stage"] > 0  # the real partial counts
    assert (run_dir / "outputs.jsonl").read_text() == ""  # Total's postprocess() did not run: no total


def test_sigterm_to_the_relaunching_process_reaches_the_ranks(tmp_path, mpiexec):
    run_dir = tmp_path / "run"
    proc, ranks = launch([*hpcflow(run_dir, *LONG), "--cpus", str(RANKS)], run_dir)
    proc.send_signal(signal.SIGTERM)
    err = finish(proc, ranks)
    assert proc.returncode == 143, err
    assert_drained(run_dir, err, signal.SIGTERM)


def test_the_ranks_drain_and_end_when_the_relaunching_process_is_killed(tmp_path, mpiexec):
    """SIGKILL cannot be forwarded: mpiexec gets SIGTERM from the kernel as its parent dies."""
    run_dir = tmp_path / "run"
    proc, ranks = launch([*hpcflow(run_dir, *LONG), "--cpus", str(RANKS)], run_dir)
    proc.kill()
    err = finish(proc, ranks)  # waits for the ranks too
    assert proc.returncode == -signal.SIGKILL
    assert sum(line.startswith("hpcflow: stopped by SIGTERM") for line in last_words(err)) == 1, err
    assert "stopped by SIGTERM" in (run_dir / "run.log").read_text()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    rows = [json.loads(line) for line in (run_dir / "outputs.jsonl").read_text().splitlines()]
    assert metrics["status"] == INTERRUPTED and rows[0]["data"]["total"] == metrics["items"]["Source"]


@pytest.mark.parametrize(
    "how,rank,pe",
    [("mpiexec", 2, "Stage1 instance 0"), ("mpiexec", 0, "Source instance 0"), ("relaunch", 2, "Stage1 instance 0")],
)
def test_a_killed_rank_under_mpiexec_ends_the_job_with_one_line(tmp_path, mpiexec, how, rank, pe):
    """hydra would end every rank within milliseconds; the rank's guard keeps it from
    noticing, so the other ranks find the death, and the exit of the one that reports it
    ends the job. mpiexec's own exit code is hydra's (9: it killed the rest); the
    re-launching hpcflow's is the run's (1)."""
    run_dir = tmp_path / "run"
    cmd = [mpiexec, "-n", str(RANKS), *hpcflow(run_dir, *LONG)]
    proc, ranks = launch(cmd if how == "mpiexec" else [*hpcflow(run_dir, *LONG), "--cpus", str(RANKS)], run_dir)
    time.sleep(PROGRESS_S)  # every rank has sent its counts once
    ranks[rank].kill()
    err = finish(proc, ranks)
    assert proc.returncode == 1 if how == "relaunch" else proc.returncode != 0
    assert_one_line_names(err, rank, pe)
    assert_dead_run_written(run_dir, rank)


def test_srun_pmi2_runs_the_stateful_pipeline_like_simple(tmp_path, srun):
    run_dir = tmp_path / "run"
    cmd = [srun, "--mpi=pmi2", "--kill-on-bad-exit=1", "-n", str(RANKS), *hpcflow(run_dir, *STATEFUL)]
    done = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert outputs(run_dir) == simple_outputs()
    assert json.loads((run_dir / "metrics.json").read_text())["processes"] == RANKS


@pytest.mark.parametrize("target", ["rank 0", "every task"])
def test_a_signal_under_srun_drains_the_run(tmp_path, srun, target):
    run_dir = tmp_path / "run"
    cmd = [srun, "--mpi=pmi2", "--kill-on-bad-exit=1", "-n", str(RANKS), *hpcflow(run_dir, *LONG)]
    proc, ranks = launch(cmd, run_dir)
    if target == "rank 0":
        ranks[0].send_signal(signal.SIGTERM)
    else:  # what `#SBATCH --signal=TERM@60` (no B:) sends before the walltime
        subprocess.run(["scancel", "--signal=TERM", ranks[0].environ()["SLURM_JOB_ID"]], check=True, timeout=60)
    err = finish(proc, ranks)
    assert proc.returncode == 143, err
    assert_drained(run_dir, err, signal.SIGTERM)


@pytest.mark.parametrize(
    "rank,kill_on_bad_exit,pe",
    [(2, True, "Stage1 instance 0"), (2, False, "Stage1 instance 0"), (0, False, "Source instance 0")],
)
def test_a_killed_rank_under_srun_ends_the_job_with_one_line(tmp_path, srun, rank, kill_on_bad_exit, pe):
    run_dir = tmp_path / "run"
    flags = ["--kill-on-bad-exit=1"] if kill_on_bad_exit else []
    proc, ranks = launch([srun, "--mpi=pmi2", *flags, "-n", str(RANKS), *hpcflow(run_dir, *LONG)], run_dir)
    time.sleep(PROGRESS_S)  # every rank has sent its counts once
    ranks[rank].kill()
    err = finish(proc, ranks)
    assert proc.returncode != 0
    assert_one_line_names(err, rank, pe)
    assert_dead_run_written(run_dir, rank)


def assert_one_line_names(stderr: str, rank: int, pe: str) -> None:
    lines = last_words(stderr)
    assert len(lines) == 1 and f"rank {rank} (PE {pe}) died" in lines[0], stderr


def assert_dead_run_written(run_dir: Path, rank: int) -> None:
    """metrics.json and status.json say failed; no PE that processed items shows a false 0:
    the count of a rank that had not reported is its last progress, a lower bound, or None
    (rank 0 dead: a rank on its node writes in its place, knowing only its own count)."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "failed"
    assert json.loads((run_dir / "status.json").read_text())["state"] == "failed"
    if rank == 0:
        assert metrics["items"]["Source"] is None and "are unknown" in metrics["error"]
        # known: at most the writing rank's own count (none from an idle rank; 0 if no item had reached it)
        assert sum(n is not None for n in metrics["items"].values()) <= 1, metrics
        return
    assert metrics["items"]["Source"] > 0
    lower = set(metrics.get("items_lower_bound") or ())
    assert "Stage1" in lower  # the dead rank never reported
    for pe in ("Stage", "Stage1", "CountByKey"):  # each ran items for a second before the kill
        assert metrics["items"][pe] is None or metrics["items"][pe] > 0, metrics["items"]


def test_the_walltime_signal_drains_a_submitted_mpi_job(tmp_path, cli, srun):
    """`hpcflow submit --mapping mpi`: the batch shell is the re-launching hpcflow, which
    passes the scheduler's SIGTERM (`--signal=B:TERM@60`) to mpiexec and the ranks."""
    job_id, run_dir = submitted(cli("submit", "pipeline", *LONG, "--mapping", "mpi", "--cpus", str(RANKS)))
    run = tmp_path / run_dir
    try:
        assert wait_for_state(job_id, {"RUNNING"}) == "RUNNING"
        ranks = started(run)
        subprocess.run(["scancel", "--batch", "--signal=TERM", job_id], check=True, timeout=60)
        assert wait_for_state(job_id, FINISHED) == "FAILED"
        gone(ranks)
    finally:
        subprocess.run(["scancel", job_id], timeout=60)
    assert job_field(job_id, "ExitCode") == "143:0"
    assert_drained(run, (run / "job.out").read_text(), signal.SIGTERM)


def test_one_plain_scancel_of_a_submitted_mpi_job_is_one_signal(tmp_path, cli, srun):
    """A plain `scancel` sends SIGTERM to every process of the job: the batch shell (which
    passes it to mpiexec), mpiexec (which passes it to the ranks) and the ranks: several
    SIGTERMs reach each rank within milliseconds. That is one signal: the run drains (within
    SLURM's KillWait) and says so, not "stopped at once on a second signal"."""
    job_id, run_dir = submitted(cli("submit", "pipeline", *LONG, "--mapping", "mpi", "--cpus", str(RANKS)))
    run = tmp_path / run_dir
    try:
        assert wait_for_state(job_id, {"RUNNING"}) == "RUNNING"
        ranks = started(run)
        subprocess.run(["scancel", job_id], check=True, timeout=60)
        wait_for_state(job_id, FINISHED)
        gone(ranks)
    finally:
        subprocess.run(["scancel", job_id], timeout=60)
    deadline = time.monotonic() + 60  # the job's end is recorded before its output is complete
    while not (run / "metrics.json").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert_drained(run, (run / "job.out").read_text(), signal.SIGTERM)


def test_submit_mpi_without_a_launcher_is_refused_before_the_queue(tmp_path, srun):
    """A Python with no mpiexec beside it and none on PATH: exit 2, one line, no job."""
    python = python_without_mpiexec(tmp_path)  # a virtualenv's Python with no mpiexec beside it
    bin_dir = python.parent
    sbatch = str(Path(shutil.which("sbatch")).parent)
    require(shutil.which("mpiexec", path=sbatch) is None, "a PATH with sbatch and no mpiexec")
    no_mpiexec = dict(env(), PATH=f"{bin_dir}{os.pathsep}{sbatch}")
    cmd = [str(bin_dir / "python"), "-m", "hpcflow", "submit", "pipeline", "--mapping", "mpi", "--cpus", "4"]
    done = subprocess.run(cmd, env=no_mpiexec, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert "needs an MPI launcher" in line and str(bin_dir / "python") in line
    assert not (tmp_path / "runs").exists()


def test_mpiexec_beside_the_python_comes_before_path(tmp_path, monkeypatch):
    beside = tmp_path / "venv" / "bin"
    beside.mkdir(parents=True)
    (beside / "mpiexec").write_text("#!/bin/sh\n")
    (beside / "mpiexec").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert find_mpiexec(str(beside / "python")) == str(beside / "mpiexec")
    assert find_mpiexec(str(tmp_path / "python")) is None


def test_submit_fits_the_drain_timeout_to_the_walltime_warning(tmp_path, mpiexec):
    """The drain must end before the SIGKILL: half the warning SLURM is asked for (60 s,
    or a quarter of a short walltime), half PBS's kill_delay (10 s), unless
    --drain-timeout says otherwise."""
    job = partial(make_job, workflow="pipeline", mapping="mpi", cpus=4, run_dir=tmp_path)
    assert job().run_command[-2:] == ("--drain-timeout", "30.0")
    assert job(batch=BatchConfig(walltime="00:01:00")).run_command[-2:] == ("--drain-timeout", "7.5")
    assert job(drain_timeout=5.0).run_command[-2:] == ("--drain-timeout", "5.0")
    assert job(scheduler="pbs").run_command[-2:] == ("--drain-timeout", "5.0")
    assert "--drain-timeout" not in make_job(workflow="pipeline", mapping="multi", cpus=4, run_dir=tmp_path).run_command


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "soon"])
def test_a_bad_drain_timeout_is_one_line_and_exit_2(tmp_path, value):
    cmd = [*hpcflow(tmp_path / "run", "-p", "items=10"), "--drain-timeout", value]
    done = subprocess.run(cmd, env=env(), cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("hpcflow: error:")]  # after the re-launch's
    assert "drain" in line.lower() and "Traceback" not in done.stderr
