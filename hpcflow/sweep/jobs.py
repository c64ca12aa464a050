"""`hpcflow sweep --submit`: one batch job a cell, gathered from the run directories.

A cell's job runs the same `hpcflow run` command line as a cell run here, in the cell's
run directory (`job.sh` or `job.pbs`, `job.out`, and `job_id`, which a resumed sweep
reads to wait for a job it submitted before instead of submitting it again). A job is
over when the scheduler no longer lists it; its run directory then has metrics.json, or
job.out says why not.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from ..batch.jobspec import JobSpec
from ..batch.schedulers import Scheduler
from ..batch.submit import requested, submit_job
from ..config import BatchConfig
from ..rundir import safe_name
from .cellrun import ERROR_PREFIX, error_line, hpcflow_path

QUEUE_TIMEOUT_S = 60
JOB_ID_FILE = "job_id"
NOT_LISTED = "no longer listed (over)"
UNKNOWN = "unknown (the scheduler did not answer)"  # a sweep asks again at its next poll

Runner = Callable[..., subprocess.CompletedProcess]


def cell_job(name: str, command: list[str], run_dir: Path, cpus: int, batch: BatchConfig) -> JobSpec:
    """The job of one cell. `env PYTHONPATH=...` makes the job import the hpcflow that
    submitted it; `exec env` still leaves hpcflow the process the scheduler signals."""
    return JobSpec(
        name=f"hpcflow-sweep-{safe_name(name)}",
        workdir=Path.cwd().absolute(),
        run_dir=run_dir.absolute(),
        run_command=("env", f"PYTHONPATH={hpcflow_path()}", *command),
        cpus=cpus,
        **requested(batch),
    )


def submit_cell(job: JobSpec, scheduler: Scheduler) -> str:
    """Submit a cell's job; its id is also written to the run directory, for resuming."""
    job_id = submit_job(job, scheduler)
    record_job(job.run_dir, scheduler.name, job_id)
    return job_id


def record_job(run_dir: Path, scheduler: str, job_id: str) -> None:
    """Write the job's id into its run directory: a resumed sweep and `hpcflow status` read it."""
    (run_dir / JOB_ID_FILE).write_text(f"{scheduler} {job_id}\n")


def submitted_job(run_dir: Path) -> tuple[str, str] | None:
    """(scheduler name, job id) of a job submitted for this run directory earlier."""
    try:
        scheduler, job_id = (run_dir / JOB_ID_FILE).read_text().split()
    except (OSError, ValueError):
        return None
    return scheduler, job_id


FINISHED_PBS = ("F", "C")  # PBS Pro's finished (with job history), Torque's completed


def job_listed(scheduler: str, job_id: str, run: Runner = subprocess.run) -> bool:
    """Whether the scheduler still lists the job as pending or running."""
    return job_state(scheduler, job_id, run) != NOT_LISTED


def job_state(scheduler: str, job_id: str, run: Runner = subprocess.run) -> str:
    """The scheduler's state of the job (squeue's PENDING, RUNNING..., qstat's Q, R...),
    NOT_LISTED once it is over, UNKNOWN when the scheduler cannot be asked now. A finished
    job drops out of `squeue`; `qstat` fails on it, or shows it F (PBS Pro with job history) or C (Torque, and
    Slurm's Torque wrapper, for a few minutes after the end)."""
    command = ["squeue", "-h", "-o", "%T", "-j", job_id] if scheduler == "slurm" else ["qstat", job_id]
    try:
        done = run(command, capture_output=True, text=True, timeout=QUEUE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return UNKNOWN
    if done.returncode != 0:
        return NOT_LISTED
    if scheduler == "slurm":
        return done.stdout.strip() or NOT_LISTED
    rows = [line.split() for line in done.stdout.splitlines() if line.strip().startswith(job_id.split(".")[0])]
    states = [row[4] for row in rows if len(row) >= 5 and row[4] not in FINISHED_PBS]
    return states[0] if states else NOT_LISTED


def job_error(run_dir: Path) -> str | None:
    """Why a finished job left no metrics (or failed): its `hpcflow: error:` line."""
    try:
        text = (run_dir / "job.out").read_text(errors="replace")
    except OSError:  # a job whose output went elsewhere (Slurm's Torque wrapper ignores -o)
        return None if (run_dir / "metrics.json").is_file() else "the job ended without metrics.json or job.out"
    if ERROR_PREFIX not in text and (run_dir / "metrics.json").is_file():
        return None
    return error_line(text) or "the job ended without metrics.json (job.out is empty)"
