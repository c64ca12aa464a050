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
from ..errors import UsageError
from ..progress import FINAL_STATES, STATUS_FILE, Snapshot, describe, read_status
from ..sweep.jobs import job_state, submitted_job

WATCH_S = 2.0  # between refreshes of --watch: status.json changes about once a second


@click.command("status", short_help="How a run goes or went: state, per-PE counts, workers, last error.")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("-w", "--watch", is_flag=True, help="Refresh until the run ends.")
@click.option(
    "--interval", type=click.FloatRange(min=0.2), default=WATCH_S, show_default=True, help="--watch: seconds."
)
def status_cmd(run_dir: str, watch: bool, interval: float) -> None:
    """The state of the run in RUN_DIR (running, ok, failed, interrupted, stalled), per PE
    the items done and queued and the rate, the workers, and the last error. For a job
    from `hpcflow submit` it also asks the scheduler once for the job's state."""
    path = Path(run_dir)
    job = submitted_job(path)
    if not path.is_dir() or (read_status(path) is None and job is None):
        raise UsageError(f"{run_dir} is no run directory (it has no {STATUS_FILE}); give one that `hpcflow run` made")
    queue = f"{job[0]} job {job[1]}: {job_state(*job)}" if job is not None else None  # asked once, not every refresh
    tty = watch and click.get_text_stream("stdout").isatty()
    shown = 0  # lines of the block on the terminal, which the next one replaces
    while True:
        lines = status_lines(path, queue)
        if tty:  # redraw in place, as `watch` and a live display do; the terminal's earlier lines stay
            width = shutil.get_terminal_size().columns
            lines = [line[: width - 1] for line in lines]  # one row each, so the count is right
            click.echo((f"\x1b[{shown}F" if shown else "") + "\x1b[J", nl=False)
            shown = len(lines)
        click.echo("\n".join(lines))
        snap = read_status(path)
        if not watch or (snap is not None and (snap.state in FINAL_STATES or not _alive(snap))):
            return
        time.sleep(interval)  # a display's refresh rate, not a wait for an event
        if not tty:  # a log or a pipe: one block after another
            click.echo("")


def status_lines(path: Path, queue: str | None) -> list[str]:
    snap = read_status(path)
    lines = [queue] if queue else []
    if snap is None:
        lines.append(f"not started: no status.json yet in {path}")
        return lines
    lines += describe(snap)
    lines += describe_attempts(attempt_log(read_attempts(path), now=time.time()))
    age = time.time() - snap.updated_at
    if snap.state not in FINAL_STATES:
        if not _alive(snap):
            lines.append(
                f"  but its process {snap.pid} on {snap.host} is gone (last word {age:.0f} s ago): "
                "the run was killed before it could write its end"
            )
        else:
            lines.append(f"  (status.json written {age:.1f} s ago by process {snap.pid} on {snap.host})")
    return lines


def _alive(snap: Snapshot) -> bool:
    """Whether the run's process still runs (on another host: assume so, we cannot see it)."""
    if snap.host != socket.gethostname():
        return True
    return psutil.pid_exists(snap.pid)
