"""`hpcflow status RUN_DIR`: how a run is going (or how it ended), from the status.json
its coordinator keeps current, and for a submitted job the scheduler's word on it."""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import click
import psutil

from ..attempts import attempt_log, describe_attempts, read_attempts
from ..batch.jobinfo import NOT_LISTED, JobInfo, slurm_job
from ..errors import UsageError
from ..progress import FINAL_STATES, STATUS_FILE, Snapshot, describe, read_status
from ..sweep.jobs import NOT_LISTED as OVER
from ..sweep.jobs import job_state, submitted_job

WATCH_S = 2.0  # between refreshes of --watch: status.json changes about once a second
TAIL_LINES = 12  # of job.out, for a job that ended without its run's end


@click.command("status", short_help="How a run goes or went: state, per-PE counts, workers, last error.")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("-w", "--watch", is_flag=True, help="Refresh until the run ends.")
@click.option(
    "--interval", type=click.FloatRange(min=0.2), default=WATCH_S, show_default=True, help="--watch: seconds."
)
def status_cmd(run_dir: str, watch: bool, interval: float) -> None:
    """The state of the run in RUN_DIR (running, ok, failed, interrupted, stalled), per PE
    the items done and queued and the rate, the workers, the attempts, and the last error.
    For a job from `hpcflow submit` it also asks the scheduler for the job's state and
    why it waits; a job that ended before its run started is reported as failed, with
    the end of its job.out (exit 1)."""
    path = Path(run_dir)
    if not path.is_dir() or (read_status(path) is None and submitted_job(path) is None):
        raise UsageError(f"{run_dir} is no run directory (it has no {STATUS_FILE}); give one that `hpcflow run` made")
    tty = watch and click.get_text_stream("stdout").isatty()
    shown = 0  # lines of the block on the terminal, which the next one replaces
    info: JobInfo | None = None
    while True:
        (snap, alive), job = read_settled(path), submitted_job(path)
        if job is not None and (info is None or info.job_id != job[1] or _no_run_now(snap)):
            info = job_info(*job)  # once, and again while the run waits for its (next) job: not every refresh
        lines = status_lines(path, snap, info, alive)
        if tty:  # redraw in place, as `watch` and a live display do; the terminal's earlier lines stay
            width = shutil.get_terminal_size().columns
            lines = [line[: width - 1] for line in lines]  # one row each, so the count is right
            click.echo((f"\x1b[{shown}F" if shown else "") + "\x1b[J", nl=False)
            shown = len(lines)
        click.echo("\n".join(lines))
        if snap is None and info is not None and info.over:  # the job ended, its run never started
            raise click.exceptions.Exit(1)
        over = snap is not None and (snap.state in FINAL_STATES or not alive)
        next_attempt = snap is not None and snap.state == "interrupted" and info is not None and not info.over
        if not watch or (over and not next_attempt):  # (an --until-done run's next job is watched on)
            return
        time.sleep(interval)  # a display's refresh rate, not a wait for an event
        if not tty:  # a log or a pipe: one block after another
            click.echo("")


def _no_run_now(snap: Snapshot | None) -> bool:
    """No process runs the workflow now: its job (or the next attempt's) may be waiting,
    or the job is ending."""
    return snap is None or snap.state in FINAL_STATES


def job_info(scheduler: str, job_id: str) -> JobInfo:
    if scheduler == "slurm":
        return slurm_job(job_id)
    state = job_state(scheduler, job_id)
    return JobInfo(scheduler, job_id, NOT_LISTED if state == OVER else state)


def read_settled(path: Path) -> tuple[Snapshot | None, bool]:
    """status.json, and whether the process that writes it still runs. One found gone may
    have written its end just before it exited: status.json is then read once more."""
    snap = read_status(path)
    if snap is None or snap.state in FINAL_STATES:
        return snap, False
    if _alive(snap):
        return snap, True
    return read_status(path), False


def status_lines(path: Path, snap: Snapshot | None, info: JobInfo | None, alive: bool) -> list[str]:
    lines = [info.describe()] if info is not None else []
    if snap is None:
        if info is not None and info.over:
            lines.append(f"failed: the job ended before its run wrote {STATUS_FILE}")
            lines += job_out_tail(path)
        elif info is not None and info.waiting:
            lines.append("waiting in the queue: the run has not started")
        else:
            lines.append(f"not started: no {STATUS_FILE} yet in {path}")
        return lines
    lines += describe(snap)
    lines += describe_attempts(attempt_log(read_attempts(path), now=time.time()))
    age = time.time() - snap.updated_at
    if snap.state not in FINAL_STATES:
        if not alive:
            lines.append(
                f"  but its process {snap.pid} on {snap.host} is gone (last word {age:.0f} s ago): "
                "the run was killed before it could write its end"
            )
            lines += job_out_tail(path) if info is not None else []
        else:
            lines.append(f"  (status.json written {age:.1f} s ago by process {snap.pid} on {snap.host})")
    return lines


def job_out_tail(path: Path, count: int = TAIL_LINES) -> list[str]:
    """The last lines of the job's output, where a job that failed says why."""
    try:
        text = (path / "job.out").read_text(errors="replace")
    except OSError:
        return [f"  (no job.out in {path}: the scheduler wrote the job's output elsewhere)"]
    tail = [line for line in text.splitlines() if line.strip()][-count:]
    return ["  job.out ends with:", *(f"  | {line}" for line in tail)] if tail else ["  (job.out is empty)"]


def _alive(snap: Snapshot) -> bool:
    """Whether the run's process still runs (on another host: assume so, we cannot see it)."""
    if snap.host != socket.gethostname():
        return True
    return psutil.pid_exists(snap.pid)
