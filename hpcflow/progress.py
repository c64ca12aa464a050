"""Progress and status of a run: one module that reads what the coordinator already
records (items done per PE, tasks queued per PE, active workers, skipped items, the
auto-scaler's target) and shows it three ways: a live display on stderr, RUN_DIR/status.json
(kept current, written atomically, read by `hpcflow status`), and the per-PE figures
the HTML report draws.

The coordinator calls `on_sample(coordinator, now)` from its sampling loop (every 0.1 s,
the timeline's interval); it does nothing unless a `Monitor` is being `watching()`. The
engines without a coordinator (simple, mpi) get the start and the end from the CLI.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from .durable import replace_file, write_error
from .inputs import feed_length

STATUS_FILE = "status.json"
WRITE_EVERY_S = 1.0  # status.json: current enough for `status --watch`, light on a shared file system
PLAIN_EVERY_S = 5.0  # a progress line in a batch job's output file: readable, not a flood
TTY_EVERY_S = 0.5  # the live display's refresh on a terminal
RATE_WINDOW_S = 5.0  # rates are over the last few seconds, so they follow a run that speeds up
FINAL_STATES = ("ok", "failed", "interrupted", "stalled")


@dataclass
class PEProgress:
    name: str
    done: int = 0
    queued: int = 0
    rate: float = 0.0  # items a second over the last RATE_WINDOW_S
    total: int | None = None  # a root's input size, when known


@dataclass
class Snapshot:
    """What status.json holds: the state of a run at one moment."""

    state: str  # running | stopping | ok | failed | interrupted | stalled
    workflow: str = ""
    mapping: str = ""
    processes: int = 0
    elapsed_s: float = 0.0
    workers_active: int = 0
    workers: int = 0
    target: int | None = None  # the auto-scaler's target (pool workers), on the *_auto_* mappings
    pool_active: int | None = None  # the active pool workers the target counts, on the *_auto_* mappings
    skipped: int = 0  # items skipped under on_error=skip
    last_error: str | None = None
    pes: list[PEProgress] = field(default_factory=list)
    elastic: dict | None = None  # the run's own worker jobs under --elastic (batch/elastic.py)
    pinned_pids: dict[str, int] = field(default_factory=dict)  # "PE[instance]" -> process id, while running
    checkpoint: dict | None = None  # the newest checkpoint: generation, attempt
    worker_hosts: dict[str, int] = field(default_factory=dict)  # host -> live workers there
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)
    updated_at: float = field(default_factory=time.time)

    @property
    def eta_s(self) -> float | None:
        """Seconds until the roots have taken all their inputs at their current rate, or
        until the queued work drains, whichever is later (None: no input size known)."""
        roots = [p for p in self.pes if p.total is not None]
        if not roots or any(p.rate <= 0 and p.done < p.total for p in roots):
            return None
        feeding = max(((p.total - p.done) / p.rate for p in roots if p.done < p.total), default=0.0)
        draining = max((p.queued / p.rate for p in self.pes if p.queued and p.rate > 0), default=0.0)
        return round(max(feeding, draining), 1)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "eta_s": self.eta_s}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Snapshot:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        known["pes"] = [PEProgress(**p) for p in d.get("pes", [])]
        return cls(**known)


def write_status(run_dir: Path, snapshot: Snapshot) -> None:
    """Replace status.json in one step: a reader never sees half a file."""
    replace_file(Path(run_dir) / STATUS_FILE, json.dumps(snapshot.to_dict(), indent=1) + "\n")


def read_status(run_dir: Path) -> Snapshot | None:
    try:
        return Snapshot.from_dict(json.loads((Path(run_dir) / STATUS_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def describe(s: Snapshot, width: int = 100) -> list[str]:
    """The lines `hpcflow status` prints and a batch job's output file gets."""
    head = f"{s.state} {s.workflow} on {s.mapping}: {s.elapsed_s:.1f} s, {workers_text(s)}{errors_text(s)}"
    eta = s.eta_s
    if eta is not None and s.state == "running":
        head += f", ETA {eta:.0f} s"
    lines = [head]
    for p in s.pes:
        done = f"{p.done}/{p.total}" if p.total is not None else str(p.done)
        lines.append(f"  {p.name:<20} {done:>12} done {p.queued:>8} queued {p.rate:>10.1f}/s")
    if s.elastic:
        e = s.elastic
        lines.append(
            f"  worker jobs ({e.get('scheduler', '?')}): {e.get('jobs_submitted', 0)} submitted, "
            f"{e.get('pending', 0)} pending, {e.get('running', 0)} running, {e.get('jobs_cancelled', 0)} cancelled, "
            f"{e.get('jobs_failed', 0)} failed"
        )
    if len(s.worker_hosts) > 1:
        lines.append("  workers by host: " + ", ".join(f"{host} {n}" for host, n in s.worker_hosts.items()))
    if s.checkpoint:
        c = s.checkpoint
        lines.append(f"  checkpoint {c.get('generation')} (attempt {c.get('attempt')}): hpcflow resume goes on from it")
    if s.last_error:  # an interruption's text is how it stopped (a checkpoint, how to go on), not an error
        lines.append(f"  {'' if s.state == 'interrupted' else 'last error: '}{s.last_error}"[:width])
    return lines


def errors_text(s: Snapshot) -> str:
    """`, 3 skipped`, `, no errors`, or nothing for a failed run (its error is said apart)."""
    if s.skipped:
        return f", {s.skipped} skipped"
    return "" if s.state in ("failed", "stalled") else ", no errors"


def workers_text(s: Snapshot) -> str:
    """`workers 3/4 active`; on an auto-scaled run the pool, which the target counts, apart
    from the pinned instances (roots, stateful instances), which it does not."""
    text = f"workers {s.workers_active}/{s.workers} active"
    if s.target is not None and s.pool_active is not None:
        text += (
            f" ({s.pool_active} in the pool, auto-scaler target {s.target}; {s.workers_active - s.pool_active} pinned)"
        )
    elif s.target is not None:
        text += f" (auto-scaler target {s.target})"
    return text


# -- what the coordinator records ------------------------------------------------------
def from_coordinator(coord: Any, now: float) -> Snapshot:
    """A snapshot of a running coordinator (engines/coordinator.py) from its own records."""
    items, queued = coord.stats.items, coord.broker.queued_by_pe
    totals = {root: feed_length(feed.items) for root, feed in coord.feeds.items()}
    errors = coord.stats.errors
    workers = [w for w in coord.workers.values() if w.alive]
    scaler = getattr(coord, "scaler", None)
    return Snapshot(
        state="stopping" if coord.signalled is not None else "running",
        workflow=coord.options.workflow or "custom",
        mapping=coord.job.mapping.name,
        processes=coord.plan.processes,
        elapsed_s=round(now - coord.t0, 3),
        workers_active=sum(1 for w in workers if w.active_since is not None),
        workers=len(workers),
        target=scaler.history[-1][1] if scaler is not None and scaler.history else None,
        pool_active=(sum(1 for w in workers if w.pool and w.active_since is not None) if scaler is not None else None),
        skipped=len(errors),
        last_error=error_text(errors[-1]) if errors else None,
        pes=[PEProgress(pe, items.get(pe, 0), queued.get(pe, 0), 0.0, totals.get(pe)) for pe in coord.plan.order],
        elastic=coord.elastic.latest if getattr(coord, "elastic", None) is not None else None,
        pinned_pids={
            f"{w.hosts[0][0]}[{w.hosts[0][1]}]": pid
            for w in workers
            if not w.pool and (pid := coord.broker.pid(w.id)) is not None
        },
        checkpoint=coord.checkpointer.latest() if getattr(coord, "checkpointer", None) is not None else None,
        worker_hosts=dict(sorted(Counter(w.host for w in workers).items())),
    )


def error_text(error: dict[str, Any]) -> str:
    where = error.get("pe", "?") if error.get("instance") is None else f"{error.get('pe')}[{error['instance']}]"
    return f"PE {where} failed on item {error.get('item')}: {error.get('error')}"


# -- the monitor the coordinator's hook feeds --------------------------------------------
class Monitor:
    """Keeps status.json current and the display moving; collects the per-PE service
    times the report shows (the coordinator's running mean of the durations workers report)."""

    def __init__(self, run_dir: Path | None, display: Display | None = None) -> None:
        self.run_dir = run_dir
        self.display = display
        self.history: list[tuple[float, dict[str, int]]] = []
        self.service: dict[str, list[float]] = {}  # pe -> sampled mean task durations
        self.busy_s: dict[str, float] = {}  # pe -> items done x their mean duration
        self.last: Snapshot | None = None
        self._written = float("-inf")
        self._told_signal = False
        self._told_write = False  # a status.json write failed and was said

    def sample(self, coord: Any, now: float) -> None:
        snap = from_coordinator(coord, now)
        self._rates(snap, now)
        before = {p.name: p.done for p in self.last.pes} if self.last else {}
        for pe in snap.pes:
            mean = coord.service_times.get(pe.name)
            if mean is not None and pe.done > before.get(pe.name, 0):
                self.service.setdefault(pe.name, []).append(mean)
                self.busy_s[pe.name] = self.busy_s.get(pe.name, 0.0) + (pe.done - before.get(pe.name, 0)) * mean
        self.last = snap
        if coord.signalled is not None and not self._told_signal:
            self._told_signal = True
            name = signal.Signals(coord.signalled).name
            if getattr(coord, "checkpointer", None) is not None:
                doing = (
                    "writing a checkpoint (each instance ends its current batch), then the run stops; "
                    "Ctrl-C again stops at once without it (a resume then goes on from the checkpoint before)"
                )
            else:
                doing = "sources stopped, in-flight work draining, then metrics are written"
                doing += "; press Ctrl-C again to abort at once"
            say(f"hpcflow: {name}: {doing}")
        self.update(snap, now)

    def _rates(self, snap: Snapshot, now: float) -> None:
        self.history.append((now, {p.name: p.done for p in snap.pes}))
        while len(self.history) > 2 and now - self.history[1][0] >= RATE_WINDOW_S:
            self.history.pop(0)
        t0, old = self.history[0]
        if now > t0:
            for p in snap.pes:
                p.rate = round((p.done - old.get(p.name, 0)) / (now - t0), 3)

    def update(self, snap: Snapshot, now: float, force: bool = False) -> None:
        if self.run_dir is not None and (force or now - self._written >= WRITE_EVERY_S):
            self._written = now
            try:
                write_status(self.run_dir, snap)
            except OSError as exc:  # a full disk must not stop the run (its end must write it): say it once
                if not self._told_write:
                    say(f"hpcflow: warning: {write_error(self.run_dir / STATUS_FILE, exc)}")
                self._told_write = True
        if self.display is not None:
            self.display.show(snap, now, force)

    def finish(self, snap: Snapshot) -> None:
        """The last status: the run's end state and error; the display is closed. A
        failure to write it is raised (OSError): the run's end depends on it."""
        if self.last is not None:  # keep the per-PE picture of the last sample
            snap.pes = snap.pes or self.last.pes
            snap.workers = snap.workers or self.last.workers
        try:
            if self.run_dir is not None:
                write_status(self.run_dir, snap)
        finally:
            if self.display is not None:
                self.display.show(snap, time.perf_counter(), True)
                self.display.close()

    def pe_figures(self, items: dict[str, int], process_time_s: float) -> dict[str, dict[str, float]]:
        """Per PE: mean and 95th percentile of the sampled mean task duration, and the
        share of the run's process time spent in it (items x mean duration)."""
        out = {}
        for pe in items:
            samples = sorted(self.service.get(pe, []))
            if not samples:
                continue
            p95 = samples[min(len(samples) - 1, int(0.95 * len(samples)))]
            busy = self.busy_s.get(pe, 0.0)
            out[pe] = {
                "service_mean_s": round(sum(samples) / len(samples), 6),
                "service_p95_s": round(p95, 6),
                "busy_share": round(busy / process_time_s, 4) if process_time_s > 0 else 0.0,
            }
        return out


def say(text: str, stream: IO[str] | None = None) -> None:
    print(text, file=stream or sys.stderr, flush=True)


# -- the displays -------------------------------------------------------------------------
class Display:
    """Plain lines every PLAIN_EVERY_S: what a batch job's output file should hold."""

    every_s = PLAIN_EVERY_S

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self._shown = time.perf_counter()

    def show(self, snap: Snapshot, now: float, force: bool = False) -> None:
        if now - self._shown < self.every_s:
            return
        self._shown = now
        lines = describe(snap)
        say("hpcflow: " + "\n".join(lines), self.stream)

    def close(self) -> None:
        pass


class TerminalDisplay(Display):
    """tqdm bars on a terminal: one per PE (a root's with its input size, so tqdm gives
    the ETA), and a line of workers and errors."""

    every_s = TTY_EVERY_S

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__(stream)
        self.bars: dict[str, Any] = {}
        self.head: Any = None
        self.last: Snapshot | None = None

    def show(self, snap: Snapshot, now: float, force: bool = False) -> None:
        from tqdm import tqdm

        self.last = snap
        if now - self._shown < self.every_s and not force:
            return
        self._shown = now
        if self.head is None:
            self.head = tqdm(total=None, bar_format="{desc}", file=self.stream, position=0, leave=False)
        width = max((len(p.name) for p in snap.pes), default=10)
        for p in snap.pes:  # the PEs are known from the first sample of the coordinator on
            if p.name not in self.bars:
                self.bars[p.name] = tqdm(
                    total=p.total,
                    desc=f"{p.name:<{width}}",
                    unit="it",
                    file=self.stream,
                    position=len(self.bars) + 1,
                    leave=False,
                )
        head = f"{snap.state}: {workers_text(snap)}{errors_text(snap)}"
        self.head.set_description_str(head, refresh=False)
        self.head.refresh()
        for p in snap.pes:
            bar = self.bars.get(p.name)
            if bar is not None:
                bar.update(p.done - bar.n)
                bar.set_postfix_str(f"{p.queued} queued", refresh=True)

    def close(self) -> None:
        """Clear the bars (tqdm redraws nested bars badly when they stay) and leave the
        final figures as plain lines."""
        for bar in [*reversed(self.bars.values()), self.head]:
            if bar is not None:
                bar.close()
        if self.last is not None:
            say("hpcflow: " + "\n".join(describe(self.last)), self.stream)


def make_display(quiet: bool, stream: IO[str] | None = None) -> Display | None:
    """None under --quiet; tqdm bars on a terminal, plain lines elsewhere."""
    if quiet:
        return None
    stream = stream or sys.stderr
    return TerminalDisplay(stream) if stream.isatty() else Display(stream)


# -- the coordinator's hook -----------------------------------------------------------------
_current: Monitor | None = None


@contextmanager
def watching(monitor: Monitor | None) -> Iterator[Monitor | None]:
    """Feed `monitor` from the coordinator of the run started inside this block."""
    global _current
    before, _current = _current, monitor
    try:
        yield monitor
    finally:
        _current = before


def on_sample(coord: Any, now: float) -> None:
    """Called by the coordinator at each timeline sample."""
    if _current is not None:
        _current.sample(coord, now)
