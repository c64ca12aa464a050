"""The `mpi` mapping under what a batch job does to it, with real launchers: mpiexec,
the re-launch through mpiexec, and the local SLURM's `srun --mpi=pmi2` and sbatch.

A signal (to rank 0, to the launcher, to every task, to the re-launching parent, even
SIGKILL to that parent) drains the run: exit 128 + signal, metrics written, and every
item the source fed reaches the Total (exact). A killed rank ends the job, under srun
with one hpcflow line naming the rank and its PE instance. No rank outlives the test."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from hpcflow.mpirun import find_mpiexec
from tests.conftest import ROOT, python_without_mpiexec, require
from tests.test_mpi_launch import STATEFUL, outputs, simple_outputs
from tests.test_slurm_integration import FINISHED, job_field, slurm_running, submitted, wait_for_state

pytestmark = [pytest.mark.timeout(240), pytest.mark.usefixtures("no_leftover_processes")]

LONG = ["-p", "items=100000", "-p", "latency=0.002", "-p", "stateful=true", "-p", "stages=2"]  # 6 ranks
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
    """The rank processes of the run, by the rank variable their launcher set, by rank."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if str(run_dir) in (p.info["cmdline"] or []) and ({"PMI_RANK", "SLURM_STEP_ID"} & set(p.environ())):
                found.append(p)
        except psutil.Error:
            continue
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


def assert_drained(run_dir: Path, stderr: str, sig: signal.Signals) -> None:
    """The run stopped on `sig` with everything fed drained through to the Total."""
    assert stderr.count(f"stopped by {sig.name}") == 1, stderr
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


def test_a_second_signal_stops_every_rank_at_once(tmp_path, mpiexec):
    run_dir = tmp_path / "run"
    proc, ranks = launch([mpiexec, "-n", str(RANKS), *hpcflow(run_dir, *LONG)], run_dir)
    ranks[1].send_signal(signal.SIGINT)
    deadline = time.monotonic() + 60  # rank 0 logs the drain once it knows of it
    while "SIGINT: the sources stop" not in (run_dir / "run.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    ranks[1].send_signal(signal.SIGINT)
    err = finish(proc, ranks)
    assert proc.returncode == 130, err
    assert err.count("stopped by SIGINT: stopped at once on a second signal") == 1, err
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == INTERRUPTED


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
    assert err.count("stopped by SIGTERM") == 1  # rank 0 still has the parent's stderr
    assert "stopped by SIGTERM" in (run_dir / "run.log").read_text()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    rows = [json.loads(line) for line in (run_dir / "outputs.jsonl").read_text().splitlines()]
    assert metrics["status"] == INTERRUPTED and rows[0]["data"]["total"] == metrics["items"]["Source"]


def test_a_killed_rank_under_mpiexec_ends_the_job(tmp_path, mpiexec):
    """hydra ends every rank at once when one dies (before rank 0 could write)."""
    run_dir = tmp_path / "run"
    proc, ranks = launch([mpiexec, "-n", str(RANKS), *hpcflow(run_dir, *LONG)], run_dir)
    ranks[2].kill()
    finish(proc, ranks)
    assert proc.returncode != 0


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
    ranks[rank].kill()
    err = finish(proc, ranks)
    assert proc.returncode != 0
    lines = [line for line in err.splitlines() if line.startswith("hpcflow: error:")]
    assert len(lines) == 1 and f"rank {rank} (PE {pe}) died" in lines[0], err
    if rank == 0:  # nobody is left to write the results
        assert not (run_dir / "metrics.json").exists()
    else:
        assert json.loads((run_dir / "metrics.json").read_text())["status"] == "failed"


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
