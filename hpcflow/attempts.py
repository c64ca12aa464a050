"""The attempts of one run: every `hpcflow run` or `hpcflow resume` that worked in a run
directory, so that a run of several attempts (Ctrl-C and resume, `submit --until-done`)
is shown whole: when each attempt started, how long it ran, how it ended, its batch job,
the checkpoint it resumed from, and one timeline over all of them on one time axis.

RUN_DIR/attempts.json holds the list. An attempt is added when it starts (so one that is
killed without a word, as by SIGKILL or a lost node, still shows) and completed when it
ends, with its own timeline. A new run in the directory starts the list again.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from .durable import replace_file

ATTEMPTS_FILE = "attempts.json"
JOB_ID_VARIABLES = ("SLURM_JOB_ID", "PBS_JOBID")  # the batch job an attempt runs in
UNFINISHED = "ended without a word (killed: SIGKILL, the walltime, a lost node)"
SERIES = ("timeline", "autoscale_timeline", "pool_timeline")  # per-attempt series, [t, ...] from its start


def read_attempts(run_dir: Path) -> list[dict[str, Any]]:
    try:
        entries = json.loads((Path(run_dir) / ATTEMPTS_FILE).read_text())
    except (OSError, ValueError):
        return []
    return entries if isinstance(entries, list) else []


def _write(run_dir: Path, entries: list[dict[str, Any]]) -> None:
    replace_file(Path(run_dir) / ATTEMPTS_FILE, json.dumps(entries, indent=1) + "\n")


def batch_job_id() -> str | None:
    """The scheduler's id of the job this process runs in (None outside a batch job)."""
    return next((os.environ[v] for v in JOB_ID_VARIABLES if os.environ.get(v)), None)


def begin_attempt(run_dir: Path, resumed: bool, resumed_from: int | None = None) -> None:
    """Record that an attempt starts now; a run that is not resumed starts the list anew."""
    entries = read_attempts(run_dir) if resumed else []
    entries.append(
        {
            "attempt": len(entries) + 1,
            "started_at": round(time.time(), 3),
            "job_id": batch_job_id(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "resumed_from": resumed_from if resumed else None,
            "status": "running",
        }
    )
    _write(run_dir, entries)


def end_attempt(run_dir: Path, metrics: dict[str, Any], code: int) -> list[dict[str, Any]]:
    """Complete the running attempt from its metrics (status, error, checkpoints, its own
    timeline) and exit code; every attempt so far, this one last."""
    entries = read_attempts(run_dir)
    if not entries or entries[-1].get("status") != "running":
        return entries
    last = entries[-1]
    ended = time.time()
    last.update(
        ended_at=round(ended, 3),
        duration_s=round(ended - last["started_at"], 3),
        status=metrics.get("status"),
        exit_code=code,
        ended=how_it_ended(metrics),
        checkpoint=metrics.get("checkpoint_generation") if metrics.get("checkpoints_written") else None,
    )
    for key in SERIES:
        if metrics.get(key):
            last[key] = metrics[key]
    _write(run_dir, entries)
    return entries


def how_it_ended(metrics: dict[str, Any]) -> str:
    status = metrics.get("status")
    if status == "ok":
        return "finished"
    return str(metrics.get("error") or status)


def attempt_log(entries: list[dict[str, Any]], now: float | None = None) -> list[dict[str, Any]]:
    """The attempts as metrics.json's `attempt_log`: each one's start and end in seconds
    since the first attempt started (the whole-run timeline's axis), without its samples.
    An earlier attempt that never ended is marked as killed; the last one, when it has
    not ended, runs (up to `now`)."""
    if not entries:
        return []
    t0 = entries[0]["started_at"]
    log = []
    for i, e in enumerate(entries):
        row = {k: v for k, v in e.items() if k not in SERIES and k != "pid"}
        row["start_s"] = round(e["started_at"] - t0, 3)
        end = e.get("ended_at")
        if e.get("status") == "running" and i < len(entries) - 1:
            row.update(status="lost", ended=UNFINISHED)  # when it ended is not known
        elif e.get("status") == "running":
            end = now
        row["end_s"] = round(end - t0, 3) if end is not None else None
        log.append(row)
    return log


def whole_timeline(entries: list[dict[str, Any]], key: str = "timeline") -> list[list[float]]:
    """The attempts' samples of `key` on one axis, seconds since the first attempt started;
    the attempts lie apart by the time between them (no sample there: nothing ran)."""
    if not entries:
        return []
    t0 = entries[0]["started_at"]
    whole = []
    for e in entries:
        shift = e["started_at"] - t0
        whole += [[round(t + shift, 4), *rest] for t, *rest in e.get(key) or []]
    return whole


def summary(log: list[dict[str, Any]]) -> dict[str, float]:
    """Span of the whole run (first start to last end) and the time between attempts."""
    ends = [a["end_s"] for a in log if a.get("end_s") is not None]
    span = max(ends, default=0.0)
    running = sum(a["end_s"] - a["start_s"] for a in log if a.get("end_s") is not None)
    return {"span_s": round(span, 3), "between_s": round(max(0.0, span - running), 3)}


def ended_text(attempt: dict[str, Any], last: bool) -> str:
    """How an attempt ended, in words; an earlier one's "continue with" is cut (it was)."""
    if attempt.get("status") == "running":
        return "running"
    ended = str(attempt.get("ended") or attempt.get("status"))
    return ended if last else ended.split("; continue with")[0]


def gaps(log: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(end of one attempt, start of the next) on the whole-run axis, where both are known."""
    return [
        (a["end_s"], b["start_s"])
        for a, b in zip(log, log[1:], strict=False)
        if a.get("end_s") is not None and b["start_s"] > a["end_s"]
    ]


def describe_attempts(log: list[dict[str, Any]]) -> list[str]:
    """`hpcflow status`'s lines on a run of more than one attempt."""
    if len(log) < 2:
        return []
    s = summary(log)
    lines = [f"  {len(log)} attempts over {s['span_s']:.0f} s ({s['between_s']:.0f} s between them):"]
    for a in log:
        start = time.strftime("%H:%M:%S", time.localtime(a["started_at"]))
        length = f"{a['end_s'] - a['start_s']:.1f} s" if a.get("end_s") is not None else "?"
        job = f" job {a['job_id']}" if a.get("job_id") else ""
        origin = f", from checkpoint {a['resumed_from']}" if a.get("resumed_from") else ""
        lines.append(f"    {a['attempt']}. {start} {length:>9}{job}{origin}: {ended_text(a, a is log[-1])}")
    return lines
