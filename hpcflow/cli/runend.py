"""The two ends of `hpcflow run` that the user reads: the start line (where each setting
came from) and, however the run ends, metrics.json with its status and error text, the
last status.json, report.html, and the last lines on stderr (skipped items included)."""

from __future__ import annotations

import logging
from pathlib import Path

from ..attempts import SERIES, attempt_log, end_attempt, whole_timeline
from ..batch.allocation import detect_allocation
from ..durable import write_error
from ..errors import PEError, RunAborted
from ..exits import SKIPPED_EXIT, end_state
from ..job import Job
from ..metrics import Metrics
from ..progress import Monitor, Snapshot, error_text
from ..result import RunResult
from ..rundir import write_result
from ..settings import BUILT_IN, Settings

SHOWN_SOURCES = ("workflow", "mapping", "cpus")


def origins(settings: Settings) -> str:
    """`workflow from config configs/default.yaml, mapping from command line, cpus from the allocation`."""
    parts = []
    for key in SHOWN_SOURCES:
        source = settings.sources.get(key)
        if key == "cpus" and (source is None or getattr(settings, key) is None):
            alloc = detect_allocation()
            source = f"the allocation ({alloc.scheduler}, {alloc.source})"
        parts.append(f"{key} from {'the built-in default' if source == BUILT_IN else source}")
    return ", ".join(parts)


def start_snapshot(job: Job) -> Snapshot:
    return Snapshot(
        state="running",
        workflow=job.options.workflow or "custom",
        mapping=job.mapping.name,
        processes=job.plan.processes,
    )


def bare_metrics(job: Job, runtime_s: float) -> Metrics:
    """The metrics of a run that stopped before its engine could give any (Ctrl-C in simple)."""
    opts = job.options
    return Metrics(
        workflow=opts.workflow or "custom",
        params=dict(opts.params),
        mapping=job.mapping.name,
        processes=job.plan.processes,
        runtime_s=runtime_s,
        process_time_s=runtime_s,
        cpu_time_s=0.0,
        items={},
        allocation=detect_allocation().to_dict(),
        extra=dict(opts.extra_metrics),
    )


def finish_run(
    path: Path | None,
    job: Job,
    result: RunResult | None,
    failure: BaseException | None,
    monitor: Monitor,
    log: logging.Logger,
) -> tuple[int, BaseException | None]:
    """Write what the run leaves however it ended: outputs.jsonl (and errors.jsonl),
    report.html, status.json, then metrics.json, whose status is the commit point: `ok`
    is written only once everything before it is on disk. A write that fails makes the
    run failed, said in one line, and leaves the last metrics.json (a resume goes on).
    Returns the exit code (exits.py) and the failure, which a failed write may set."""
    status, code = end_state(failure)
    elapsed = monitor.last.elapsed_s if monitor.last is not None else 0.0
    if result is None:
        result = RunResult(outputs={}, metrics=bare_metrics(job, elapsed))
    m = result.metrics
    skipped = len(result.errors)
    m.extra.update(status=status, errors=skipped, skipped=skipped, on_error=job.options.on_error or "fail")
    if failure is not None:
        m.extra["error"] = str(failure) or type(failure).__name__
    if isinstance(failure, PEError):  # the item the run failed on: the report counts it as its PE's error
        m.extra["failed_item"] = {"pe": failure.pe, "instance": failure.instance, "item": failure.item}
    elif skipped:
        m.extra["error"] = f"{skipped} item(s) skipped (on_error skip); first: {error_text(result.errors[0])}"
        code = SKIPPED_EXIT
    m.extra["pe_stats"] = monitor.pe_figures(m.items, m.process_time_s)

    def cannot_write(exc: OSError) -> None:
        nonlocal failure, status, code
        if status == "failed" and failure is not None and "cannot write" in str(failure):
            return  # the first failed write is the one said
        then = (
            f"the run's checkpoints are kept: free space, then `hpcflow resume {path}`"
            if job.options.checkpoint_dir
            else "free space and run it again"
        )
        failure = RunAborted(f"{write_error(exc.filename or path, exc)}; {then}")
        status, code = "failed", 1
        m.extra.update(status=status, error=str(failure))

    if path is not None:
        try:
            record_attempt(path, m, code)
            write_result(path, result)
            from ..htmlreport import write_run_report  # (its modules, the sweep's among them, only now)

            write_run_report(path, m.to_dict())
        except OSError as exc:
            cannot_write(exc)
    final = Snapshot(
        state=status,
        workflow=m.workflow,
        mapping=m.mapping,
        processes=m.processes,
        elapsed_s=round(m.runtime_s, 3),
        skipped=skipped,
        last_error=m.extra.get("error"),
        elastic=m.extra.get("elastic"),  # the jobs as the run left them (all cancelled or ended)
        checkpoint=(
            {"generation": m.extra["checkpoint_generation"], "attempt": m.extra.get("attempts")}
            if m.extra.get("checkpoint_generation") and status != "ok"
            else None
        ),
    )
    final.pes = [p for p in (monitor.last.pes if monitor.last else [])]
    for p in final.pes:  # the end: every count final, the rate the mean over the run
        p.done, p.queued = m.items.get(p.name, p.done), 0
        p.rate = round(p.done / m.runtime_s, 3) if m.runtime_s > 0 else 0.0
    try:
        monitor.finish(final)
    except OSError as exc:
        cannot_write(exc)
    if path is not None:
        try:
            m.write(path / "metrics.json")
        except OSError as exc:
            cannot_write(exc)
            final.state, final.last_error = status, m.extra["error"]
            try:  # status.json may already say ok: say failed there, if it can be written
                monitor.finish(final)
            except OSError:
                pass
        if failure is not None:
            log.error("%s: %s\n%s", status, failure, getattr(failure, "tb", ""))
        log.info("%s", done_line(result, status))
    return code, failure


def record_attempt(path: Path, m: Metrics, code: int) -> None:
    """This attempt's end in RUN_DIR/attempts.json; in the metrics, every attempt of the run
    (`attempts`, `attempt_log`) and, after more than one, the timelines over all of them."""
    entries = end_attempt(path, {**m.extra, "timeline": m.timeline}, code)
    log = attempt_log(entries)
    m.extra.update(attempts=max(1, len(log)), attempt_log=log)
    if len(log) > 1:
        m.timeline = whole_timeline(entries)
        for key in SERIES[1:]:  # the auto-scaler's target and the pool, on the same axis
            if m.extra.get(key):
                m.extra[key] = whole_timeline(entries, key)


def done_line(result: RunResult, status: str) -> str:
    m = result.metrics
    verb = "done in" if status == "ok" else f"{status} after"
    items = sum(n or 0 for n in m.items.values())  # None: unknown (mpi, a dead rank)
    return f"{verb} {duration(m.runtime_s)} (process time {duration(m.process_time_s)}, {items} items)"


def duration(seconds: float) -> str:
    """`12.345 s`, or in milliseconds under 0.1 s, so that a short run does not read `0.000 s`."""
    return f"{seconds:.3f} s" if seconds >= 0.1 else f"{seconds * 1e3:.3g} ms"


def last_lines(result: RunResult | None, failure: BaseException | None, path: Path) -> list[str]:
    """What stderr says at the end: how it went, what was skipped, where it all is (the
    error itself is the CLI's last line)."""
    status, code = end_state(failure)
    lines = [done_line(result, status)] if result is not None else []
    if result is not None and result.errors:
        first = error_text(result.errors[0])
        lines.append(
            f"{len(result.errors)} item(s) skipped (on_error skip), all in {path / 'errors.jsonl'}; first: {first}"
        )
        if failure is None:
            lines.append(f"exit code {SKIPPED_EXIT}: the run finished with skipped items")
    lines.append(f"run directory {path}")
    return lines
