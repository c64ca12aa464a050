"""The batch schedulers hpcflow submits to: which template, which command, which job id.

Like a Parsl provider, minus status and cancel: once submitted, the job is the
scheduler's, and its run directory says how it went.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from .jobspec import JobSpec
from .templates import render_pbs, render_slurm

SUBMIT_TIMEOUT_S = 120  # sbatch retries an unreachable controller for about a minute


@dataclass(frozen=True)
class Scheduler:
    name: str
    command: str  # the submission command, found on PATH
    options: tuple[str, ...]  # given before the script
    script_name: str  # the job script's name in the run directory
    render: Callable[[JobSpec], str]

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


SCHEDULERS = {
    "slurm": Scheduler("slurm", "sbatch", ("--parsable",), "job.sh", render_slurm),
    "pbs": Scheduler("pbs", "qsub", (), "job.pbs", render_pbs),
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
