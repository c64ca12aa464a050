"""What the scheduler says of one submitted job, for `hpcflow status`: its state, and why
it waits or how it ended, in words a user can act on.

SLURM: `squeue` while the job is listed (state and reason), then `sacct` (state, exit
code, reason: needs accounting, as the local SLURM has), then `scontrol show job` (for a
few minutes after the end, MinJobAge). PBS: `qstat`'s state (sweep/jobs.py).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

QUERY_TIMEOUT_S = 30
NOT_LISTED = "no longer listed"  # the scheduler has forgotten the job (it is over)
UNKNOWN = "unknown (the scheduler did not answer)"
WAITING = ("PENDING", "CONFIGURING", "REQUEUED", "SUSPENDED", "RESIZING", "Q", "H", "W", "T", "S")
ACTIVE = ("RUNNING", "COMPLETING", "R", "E")
NEVER = "it will never start: scancel it and submit again with a smaller request"

# squeue's reasons for a pending job, in words (the common ones; others are shown as SLURM says them)
REASONS = {
    "Priority": "other jobs come first (priority)",
    "Resources": "waiting for CPUs or nodes to become free",
    "None": "just submitted: the scheduler has not looked at it yet",
    "Dependency": "waiting for the job it depends on to end (under --until-done, the attempt before)",
    "DependencyNeverSatisfied": "the job it depends on failed: it will never start; scancel it",
    "BeginTime": "its start time has not come yet",
    "JobHeldUser": "held by its user: `scontrol release JOBID` lets it start",
    "JobHeldAdmin": "held by an administrator",
    "PartitionConfig": f"it asks for more than its partition has (CPUs a node, nodes, memory): {NEVER}",
    "PartitionTimeLimit": f"its walltime is longer than the partition's MaxTime: {NEVER}",
    "PartitionNodeLimit": f"it asks for more nodes than the partition allows: {NEVER}",
    "PartitionDown": "its partition is down: it waits until it is up",
    "PartitionInactive": "its partition is inactive: it waits until it is up",
    "ReqNodeNotAvail": "a node it needs is down, drained or reserved",
    "NodeDown": "a node it needs is down",
    "Reservation": "waiting for its reservation to start",
    "BadConstraints": f"its constraints cannot be met by any node: {NEVER}",
    "InvalidAccount": "its account is not valid here: scancel it and submit with --account",
    "InvalidQOS": "its QOS is not valid here",
    "launch failed requeued held": "its start failed; SLURM requeued and held it",
    "job requeued in held state": "requeued and held: `scontrol release JOBID` lets it start again",
}
LIMITS = ("QOSMax", "QOSGrp", "AssocMax", "AssocGrp", "MaxCpuPerAccount", "MaxJobsPerUser")

Runner = Callable[..., subprocess.CompletedProcess]


@dataclass(frozen=True)
class JobInfo:
    scheduler: str
    job_id: str
    state: str  # the scheduler's word (PENDING, RUNNING, COMPLETED, FAILED, ...), NOT_LISTED or UNKNOWN
    reason: str | None = None
    exit_code: str | None = None  # SLURM's `code:signal`

    @property
    def over(self) -> bool:
        """The job has ended (or is no longer known, which is the same)."""
        return self.state not in WAITING + ACTIVE + (UNKNOWN,)

    @property
    def waiting(self) -> bool:
        return self.state in WAITING

    def describe(self) -> str:
        text = f"{self.scheduler} job {self.job_id}: {self.state}"
        if self.exit_code and self.over:
            text += f", exit code {self.exit_code}"
        shown = self.reason and (self.waiting or self.over and self.reason != "None")  # (not a running job's)
        if shown:
            words = explain(self.reason)
            text += f" ({self.reason}: {words})" if words else f" ({self.reason})"
        return text


def explain(reason: str) -> str | None:
    if reason in REASONS:
        return REASONS[reason]
    if reason.startswith(LIMITS):
        return "a limit of your account or QOS is reached (CPUs, jobs, time): it waits for your other jobs"
    return None


def ask(command: list[str], run: Runner) -> str | None:
    """A query's output; None when it failed or did not answer (limits.py asks so too)."""
    try:
        done = run(command, capture_output=True, text=True, timeout=QUERY_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def slurm_job(job_id: str, run: Runner = subprocess.run) -> JobInfo:
    listed = ask(["squeue", "-h", "-j", job_id, "-o", "%T|%r"], run)
    if listed is not None and listed.strip():
        state, _, reason = listed.strip().splitlines()[0].partition("|")
        return JobInfo("slurm", job_id, state, reason or None)
    accounted = ask(["sacct", "-n", "-X", "-P", "-j", job_id, "--format=State,ExitCode,Reason"], run)
    if accounted and accounted.strip():
        state, code, reason = (accounted.strip().splitlines()[0].split("|") + ["", ""])[:3]
        return JobInfo("slurm", job_id, state.split()[0], reason or None, code or None)
    shown = ask(["scontrol", "show", "job", "-o", job_id], run)
    if shown:
        fields = dict(re.findall(r"\b(JobState|Reason|ExitCode)=(\S+)", shown))
        if "JobState" in fields:
            return JobInfo("slurm", job_id, fields["JobState"], fields.get("Reason"), fields.get("ExitCode"))
    if listed is None and accounted is None and shown is None:
        return JobInfo("slurm", job_id, UNKNOWN)
    return JobInfo("slurm", job_id, NOT_LISTED)
