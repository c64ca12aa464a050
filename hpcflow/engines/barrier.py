"""Taking a checkpoint while the run goes on: the barrier through the pinned instances.

A round starts every `checkpoint_interval` seconds and on a stop signal. The coordinator
sends SNAPSHOT to every pinned process (on Redis, where the workers move tasks between
streams themselves, to every worker). Each finishes the batch it is running, reports
it, sends its state (STATE) and takes no more work until RESUME. Messages of one worker
arrive in order, so when its STATE arrives everything it did is counted, and nothing it
holds can change. Meanwhile pool workers of the shared-memory transport go on: the
coordinator sees their every delivery and lease, so a chunk one of them runs is kept
with how many of its writes were delivered, as a dead worker's would be. When the last
STATE arrives the coordinator writes what it holds at that moment (checkpoint.py) and
sends RESUME. While a round is open no credit is held back, so that an instance waiting
for one mid-batch reaches its end (a backlogged PE downstream may be paused).

A worker that dies or joins during a round ends the round without a checkpoint (the
paused ones are resumed); the next round is tried at once if it was for a signal. A
round never completes once the run has failed (its workers are then killed, and a cut
without their states would be wrong), and a checkpoint that cannot be written fails
the run, naming the file; the one before stays the newest.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..durable import write_error
from ..errors import RunAborted
from ..fingerprint import fingerprint
from .checkpoint import CheckpointStore, Cut
from .protocol import RESUME, SNAPSHOT

if TYPE_CHECKING:
    from .coordinator import Coordinator

# A round starts no sooner than SPACING times the last one's duration after it ended, so
# checkpoints take at most 1/(1 + SPACING) of a run's time whatever the interval asked
# (an interval of 1e-4 s would otherwise leave the run little else to do).
SPACING = 9.0


class Round:
    def __init__(self, waiting: set[int], final: bool):
        self.waiting = waiting  # workers whose STATE has not come
        self.paused: set[int] = set()
        self.states: dict[tuple[str, int], bytes] = {}
        self.final = final  # a stop signal's: the run ends once it is written
        self.started = time.perf_counter()


class Checkpointer:
    def __init__(self, coord: Coordinator, store: CheckpointStore, interval: float, previous: Cut | None):
        self.coord = coord
        self.store = store
        self.interval = interval or 0.0
        self.round: Round | None = None
        self.next_at = float("inf")
        self.want_final = False  # a stop signal came: the next round is the last
        self.written = 0  # generations written in this attempt
        self.generation = previous.generation if previous else 0
        self.pause_s = 0.0  # time rounds kept instances paused
        self.last_written_s: float | None = None  # the last round's duration, signal to written
        self.sinks_saved = 0  # outputs (of coord.stats.sinks) already in sinks.log
        self.sinks_bytes = previous.sinks_bytes if previous else 0
        self.attempt = previous.attempt + 1 if previous else 1
        self.before = previous.totals if previous else {}  # the attempts before this one
        self.fingerprint = fingerprint(coord.job)  # what a resume must match (fingerprint.py)

    def start_clock(self, now: float) -> None:
        if self.interval > 0:
            self.next_at = now + max(self.interval, SPACING * (self.last_written_s or 0.0))

    @property
    def open(self) -> bool:
        return self.round is not None

    def due(self, now: float) -> bool:
        return self.round is None and now >= self.next_at

    def begin(self, final: bool = False) -> None:
        """Ask every process that holds state (every one, where the transport needs it) to pause."""
        c = self.coord
        targets = {w.id for w in c.pausable(c.broker.pauses_pool)}
        self.round = Round(targets, final or self.want_final)
        for wid in targets:
            c.broker.send(wid, (SNAPSHOT,))
        c.release_all_credits()
        self._maybe_complete()

    def on_state(self, wid: int, blob: bytes | None) -> None:
        r = self.round
        if r is None or wid not in r.waiting:
            return
        r.waiting.discard(wid)
        r.paused.add(wid)
        w = self.coord.workers[wid]
        if blob is not None and not w.pool:
            r.states[w.hosts[0]] = blob
        self._maybe_complete()

    def stop(self) -> None:
        """A stop signal: the open round, or a new one, is the run's last."""
        self.want_final = True
        if self.round is not None:
            self.round.final = True
        else:
            self.next_at = float("-inf")  # at once

    def on_exit(self, wid: int, stopped: bool) -> None:
        """A worker is gone. One that stopped as asked and owes no state (a finalized
        instance, a pool worker) is not waited for; any other exit (a death, a kill after
        the run failed) ends the round without a checkpoint: a checkpoint without that
        instance's state would resume it empty."""
        r = self.round
        if r is None or wid not in r.waiting:
            return
        c = self.coord
        if c.failure is not None:  # the run ends and its workers are stopped: the round just ends
            self.round = None
            return
        w = c.workers[wid]
        owes_state = not w.pool and not c.term.was_finalized(*w.hosts[0])
        if stopped and not owes_state:
            r.waiting.discard(wid)
            self._maybe_complete()
        else:
            self.abort()

    def abort(self) -> None:
        """A worker died or joined mid-round, or the run failed: no checkpoint this time
        (after a failure nothing is resumed: every worker is being stopped, and the
        transport may be gone)."""
        r = self.round
        if r is None:
            return
        self.round = None
        if self.coord.failure is None:
            self._resume(r)
        if r.final:  # again at once, in the coordinator's next turn (after any replacement starts)
            self.next_at = float("-inf")
        else:
            self.start_clock(time.perf_counter())

    def _maybe_complete(self) -> None:
        r = self.round
        if r is None or r.waiting:
            return
        c = self.coord
        if c.failure is not None:  # the run is ending without it: no cut is taken now
            self.round = None
            return
        now = time.perf_counter()
        cut = c.capture(now)
        cut.attempt = self.attempt
        cut.fingerprint = self.fingerprint
        cut.sinks_bytes = self.sinks_bytes
        sinks = c.stats.sinks[self.sinks_saved :]
        self.round = None
        try:
            self.store.write(cut, r.states, sinks)
        except OSError as exc:
            c.failure = RunAborted(
                f"{write_error(exc.filename or self.store.root, exc)} (checkpoint {self.generation + 1}); "
                f"the run stops; {self.resume_from()}"
            )
            return
        self.sinks_saved += len(sinks)
        self.sinks_bytes = cut.sinks_bytes
        self.generation = cut.generation
        self.written += 1
        done = time.perf_counter()
        self.pause_s += done - r.started
        self.last_written_s = done - r.started
        if r.final:
            c.stopped_with_checkpoint(cut.generation)
        else:
            self._resume(r)
            self.start_clock(done)

    def resume_from(self) -> str:
        """What `hpcflow resume` will continue from, as the end of a message."""
        where = f"checkpoint {self.generation}" if self.generation else "the start (no checkpoint was written)"
        return f"`hpcflow resume {self.store.root.parent}` continues from {where}"

    def _resume(self, r: Round) -> None:
        for wid in r.paused:
            w = self.coord.workers.get(wid)
            if w is not None and w.alive:
                self.coord.broker.send(wid, (RESUME,))

    def latest(self) -> dict | None:
        """The newest checkpoint, for status.json."""
        if not self.generation:
            return None
        return {"generation": self.generation, "attempt": self.attempt}

    def metrics(self) -> dict:
        return {
            "checkpoints_written": self.written,
            "checkpoint_generation": self.generation,
            "checkpoint_pause_s": round(self.pause_s, 4),
            "attempts": self.attempt,
        }
