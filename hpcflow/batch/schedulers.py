"""The batch schedulers hpcflow submits to: which template, which command, which job id.

Like a Parsl provider: submit, and for the worker jobs of an elastic run (which the
run itself gives back) the state of its jobs, in one call for all of them, and cancel.
A job that `submit` started for a whole run is the scheduler's: its run directory says
how it went.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..autoscale.elastic import GONE, PENDING, RUNNING
from ..errors import UsageError
from .jobspec import JobSpec
from .templates import PBS_SCRIPT, SLURM_SCRIPT, render_pbs, render_slurm

SUBMIT_TIMEOUT_S = 120  # sbatch retries an unreachable controller for about a minute
QUERY_TIMEOUT_S = 60

SLURM_STATES = {"PENDING": PENDING, "CONFIGURING": PENDING, "REQUEUED": PENDING, "RESIZING": PENDING}
SLURM_STATES["RUNNING"] = RUNNING  # any other (COMPLETING, FAILED, CANCELLED, ...): gone
PBS_STATES = {"Q": PENDING, "H": PENDING, "W": PENDING, "T": PENDING, "S": PENDING, "R": RUNNING}


@dataclass(frozen=True)
class Scheduler:
    name: str
    command: str  # the submission command, found on PATH
    options: tuple[str, ...]  # given before the script
    script_name: str  # the job script's name in the run directory
    render: Callable[[JobSpec], str]
    query: tuple[str, ...]  # lists every job: its id first, its state in column `state_column`
    state_column: int
    states: dict[str, str]  # the scheduler's state -> PENDING or RUNNING; any other: GONE
    cancel_command: str

    def submit(self, script: Path, workdir: Path) -> str:
        """Submit `script` from `workdir`; the job id, or a UsageError with the scheduler's reason."""
        try:
            done = subprocess.run(
                [self.command, *self.options, str(script)],
                cwd=workdir,
                capture_output=True,
                text=True,
                timeout=SUBMIT_TIMEOUT_S,
            )
        except FileNotFoundError:
            raise UsageError(f"{self.command} not found: is {self.name} installed here?") from None
        except subprocess.TimeoutExpired:
            raise UsageError(f"{self.command} did not answer in {SUBMIT_TIMEOUT_S} s") from None
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            reason = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
            raise UsageError(f"{self.command} rejected the job: {reason}")
        # sbatch --parsable prints `id[;cluster]`; qsub prints `id.server`, the id PBS uses.
        return lines[-1].split(";")[0].strip()

    def job_states(self, job_ids: list[str]) -> dict[str, str]:
        """PENDING, RUNNING or GONE for each of `job_ids`, from one listing of the queue
        (not one call per job: the controller is shared by every user of the cluster)."""
        if not job_ids:
            return {}
        done = _run([*self.query])
        if done.returncode != 0:
            raise OSError(f"{self.query[0]} failed: {(done.stderr.strip().splitlines() or ['no reason'])[-1]}")
        listed = {}
        for line in done.stdout.splitlines():
            cols = line.split()
            if len(cols) > self.state_column:
                listed[cols[0]] = self.states.get(cols[self.state_column], GONE)
        return {i: listed.get(i, listed.get(i.split(".")[0], GONE)) for i in job_ids}

    def cancel(self, job_ids: list[str]) -> None:
        """Cancel `job_ids` (one call); a job that has ended meanwhile is no error."""
        if job_ids:
            _run([self.cancel_command, *job_ids])


def _run(command: list[str]) -> subprocess.CompletedProcess:
    """A query or cancel command; one that is missing or does not answer is an OSError."""
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=QUERY_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise OSError(f"{command[0]} did not answer in {QUERY_TIMEOUT_S} s") from None


SCHEDULERS = {
    "slurm": Scheduler(
        "slurm",
        "sbatch",
        ("--parsable",),
        SLURM_SCRIPT,
        render_slurm,
        ("squeue", "-h", "-o", "%i %T"),
        1,
        SLURM_STATES,
        "scancel",
    ),
    "pbs": Scheduler("pbs", "qsub", (), PBS_SCRIPT, render_pbs, ("qstat",), 4, PBS_STATES, "qdel"),
}


def find_scheduler(name: str | None = None, which: Callable[[str], str | None] = shutil.which) -> Scheduler:
    """`name`, else the first scheduler whose submission command is on PATH."""
    if name is not None:
        if name not in SCHEDULERS:
            raise UsageError(f"unknown scheduler {name!r}; choose one of: {', '.join(SCHEDULERS)}")
        return SCHEDULERS[name]
    for scheduler in SCHEDULERS.values():
        if which(scheduler.command):
            return scheduler
    commands = " or ".join(s.command for s in SCHEDULERS.values())
    raise UsageError(f"no batch scheduler found ({commands} on PATH); name one with --scheduler slurm|pbs")
