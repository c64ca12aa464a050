"""The end of an `--until-done` job script: one attempt of a run longer than the walltime.

Every attempt works in the one run directory chosen at submission. The first runs the
workflow (`hpcflow run --run-dir D`); once `D/checkpoint/run.json` exists, an attempt
resumes it (`hpcflow resume D`). Stopped by the scheduler's SIGTERM, hpcflow writes a
checkpoint and exits 143; the job then submits its own script again, to start when this
job has ended (a dependency, so both schedulers do it the same way and no requeue delay
applies), until the run is finished or `max_attempts` jobs have run. An attempt that
stopped so and handed on to the next one ends with exit 0: it did what was planned, and
`sacct` shows it COMPLETED; a failure, a cancellation, the last attempt allowed, or a
next attempt that could not be submitted keeps hpcflow's exit code (FAILED). A counter file in D,
not the scheduler, counts the attempts: each one is a new job.

hpcflow runs in the background of the batch shell (shell.py), so the early signal, which
SLURM's `--signal=B:USR1@...` sends to the batch shell alone, is passed on as a SIGTERM
without delay (a TERM, PBS's or a user's, too). (The scripts of one node without
--until-done `exec` hpcflow instead.)
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from .jobspec import JobSpec
from .shell import launcher_lines

ATTEMPT_FILE = "job_attempt"  # in the run directory: the number of the attempt that runs or ran last
JOB_ID_FILE = "job_id"  # in the run directory, as `sweep.jobs.record_job` writes it: `hpcflow status` reads it
STOPPED = (143, 130)  # hpcflow's exit codes after SIGTERM / SIGINT: stopped with a checkpoint
FINISHED = (0, 3)  # done (3: with skipped items); any other code ends the chain


@dataclass(frozen=True)
class Resubmission:
    """How a scheduler's job submits its own script again, as shell text."""

    scheduler: str  # as `hpcflow status` reads it from D/job_id: slurm, pbs
    command: str  # submits the script to start after this job; prints the new job's id
    running: str | None  # a test that this job still runs (it was not cancelled); None: cannot tell
    requeued: str | None = None  # a test that the scheduler is requeuing this job (a node failed); None: cannot tell


def attempt_lines(job: JobSpec, again: Resubmission, ending: Sequence[str] = ()) -> list[str]:
    """The script's last lines, after `cd` and `module load`: one attempt, then what next,
    then `ending` (what ends the worker step of a job of several nodes)."""
    run_dir = shlex.quote(str(job.run_dir))
    stopped = " | ".join(map(str, STOPPED))
    resume = "continue with: hpcflow resume $run_dir"
    cancelled = []
    if again.running is not None:  # a user's scancel also sends SIGTERM: that one ends the chain
        cancelled = [
            f"    elif ! {again.running}; then",
            f'        say "the job was cancelled: no further attempt; {resume}"',
        ]
    # A node failure also stops this attempt (SIGTERM, then the job ends NODE_FAIL); the
    # scheduler then runs this same job again (--requeue): the next attempt, from the newest
    # checkpoint. Submitting one here as well would run two attempts in one run directory.
    requeued = ["requeued=false"]
    if again.requeued is not None:
        requeued.append(f"if {again.requeued}; then requeued=true; fi")
    next_by_requeue = 'say "a node failed: the scheduler requeued this job; it runs again as attempt $((attempt + 1))"'
    return [
        "# --until-done: the first attempt runs the workflow in the run directory below, later ones",
        "# resume it from its newest checkpoint; hpcflow runs in the background so that this shell",
        "# passes the SIGTERM on at once (bash runs a trap while it waits, not while a command runs).",
        f"run_dir={run_dir}",
        f"max_attempts={job.max_attempts}",
        'say() { echo "hpcflow until-done: attempt $attempt of $max_attempts: $*"; }',
        f'attempt=$(( $(cat "$run_dir/{ATTEMPT_FILE}" 2>/dev/null || echo 0) + 1 ))',
        f'echo "$attempt" >"$run_dir/{ATTEMPT_FILE}"',
        'if [ -f "$run_dir/checkpoint/run.json" ]; then',
        f"    set -- {shlex.join(job.resume_command)}",
        "else",
        f"    set -- {shlex.join(job.run_command)}",
        "fi",
        'say "$*"',
        "# SLURM's early warning is USR1 (templates.py)",
        *launcher_lines("TERM USR1"),
        *requeued,
        'case "$status" in',
        f'{" | ".join(map(str, FINISHED))}) say "the run is finished (exit $status)" ;;',
        f"{stopped})",
        "    if $requeued; then",
        f"        {next_by_requeue}",
        '    elif [ "$attempt" -ge "$max_attempts" ]; then',
        f'        say "stopped with a checkpoint; that was the last attempt allowed; {resume}"',
        *cancelled,
        f"    elif next=$({again.command}); then",
        f'        echo "{again.scheduler} ${{next%%;*}}" >"$run_dir/{JOB_ID_FILE}"',
        '        say "stopped with a checkpoint; attempt $((attempt + 1)) is job ${next%%;*}"',
        '        say "a planned stop: this job ends with exit 0 (hpcflow exited $status after the checkpoint)"',
        "        status=0",
        "    else",
        f'        say "stopped with a checkpoint, but the next attempt could not be submitted; {resume}"',
        "    fi",
        "    ;;",
        "*)",
        "    if $requeued; then",
        f"        {next_by_requeue}",
        "    else",
        '        say "the run ended with exit $status: no further attempt"',
        "    fi",
        "    ;;",
        "esac",
        *ending,
        'exit "$status"',
    ]
