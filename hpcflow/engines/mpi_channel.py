"""The MPI message layer of the `mpi` mapping: batched data streams between ranks, and the
few control messages that start, stop and end a run.

Every message is a synchronous-mode send (`issend`): it completes only once the
receiver has matched it. That gives flow control (a rank has at most MAX_IN_FLIGHT
unmatched batches per destination, so a fast producer cannot fill a slow consumer's
memory) and a clean end (once every rank's sends are complete, every message has been
received, so nothing is left pending at MPI_Finalize or leaks into the next run).

A signal (SIGTERM before the walltime, Ctrl-C) may reach any rank, or every rank (hydra's
mpiexec forwards it to all; `scancel --signal` to some): the rank that takes it tells
rank 0 (INTERRUPT), and rank 0 tells every other rank once, so every rank learns of it
whichever rank was signalled, and the run drains: sources stop, the rest finishes. The
drain is bounded: `drain_timeout` seconds after rank 0 learnt of the signal it stops
every rank at once (STOP). A second signal on one rank stops every rank at once too, as
on the other mappings; but one plain `scancel` reaches a rank by several paths within
milliseconds (slurmstepd, mpiexec, the re-launching hpcflow), so a signal within
SAME_SIGNAL_S of a rank's first is that same one. Ranks send rank 0 their counts every
PROGRESS_S (PROGRESS), so a run that ends on a dead rank reports what each rank had done.

A rank that dies (SIGKILL, out of memory) sends nothing more, and MPI does not say so:
every rank checks now and then whether the other ranks on its node still live
(`Liveness`); rank 0 then ends the run at once, and a rank on another node tells it
(DEAD). So no rank waits more than LIVENESS_S (plus the item it is on) for a dead rank
on its node; a whole node lost is the launcher's to notice.

Nothing here blocks inside MPI. Waits poll (Iprobe, Test) and sleep with an
exponential backoff, as mpi4py.futures does, so that waiting ranks give their core to
working ones when ranks outnumber cores; a blocking MPI call spins at 100% CPU in most
MPI libraries.
"""

from __future__ import annotations

import logging
import signal
import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

from mpi4py import MPI

from .mpi_credit import CHEAP_S
from .mpi_liveness import Liveness

# Message tags. Messages between two ranks with the same tag arrive in the order sent,
# so an end-of-stream batch always follows the data batches before it.
DATA = 1  # (items, eos): a batch of (input port, item) for the receiving rank's PE
STOP = 2  # a PE failed somewhere: stop now
REPORT = 3  # a rank's Report, to rank 0
DONE = 4  # rank 0's summary of the run, to every other rank
INTERRUPT = 5  # signum: a rank was signalled; to rank 0, and from rank 0 to every other rank
DEAD = 6  # rank: found dead by a rank on its node, to rank 0
PROGRESS = 7  # (rank, items per PE): a rank's counts so far, to rank 0 every PROGRESS_S
ACK = 8  # (rank, items, seconds per item): items of the receiver done, to their sender (mpi_credit)

# STOP's payload: why every rank stops (a PE failure sends None).
SECOND_SIGNAL = "second signal"
DRAIN_DEADLINE = "drain deadline"
LEAVING = True  # rank 0 ends the run on a dead rank, then exits

# Signals on one rank closer than this to its first are one signal come by several paths;
# a later one is a second signal (stop at once). A person's second Ctrl-C comes later.
SAME_SIGNAL_S = 1.0

# How often a rank sends rank 0 its counts: how old a dead run's counts of a rank may be.
PROGRESS_S = 1.0

# Items per data message. A message costs a pickle, a match and a wake-up of the
# receiver (tens of microseconds), an item of a no-op PE a few microseconds: batching
# amortises the first over many of the second. Larger batches add latency and memory.
BATCH_ITEMS = 256

# Unmatched data messages per destination before a sender waits. More overlaps sending
# with the receiver's work; fewer bounds what a slow consumer holds (at most
# MAX_IN_FLIGHT * BATCH_ITEMS items per upstream rank).
MAX_IN_FLIGHT = 4

# How often a rank acknowledges items cheaper than CHEAP_S (mpi_credit): their senders
# only need to know that they are cheap.
CHEAP_ACK_S = 0.1

# The longest sleep of an idle rank: how late it may notice a message (mpi4py.futures'
# default). Shorter wastes CPU when ranks outnumber cores.
BACKOFF_MAX_S = 0.001


class Backoff:
    """Sleeps between polls: none at first, then doubling up to BACKOFF_MAX_S."""

    def __init__(self, longest: float = BACKOFF_MAX_S):
        self._longest = longest
        self._shortest = longest / 1024
        self._delay = 0.0

    def reset(self) -> None:
        self._delay = 0.0

    def sleep(self) -> None:
        time.sleep(self._delay)
        self._delay = min(self._longest, max(self._shortest, self._delay * 2))


def quiet_barrier(comm: MPI.Comm) -> None:
    """A barrier that sleeps instead of spinning while the other ranks arrive."""
    request = comm.Ibarrier()
    backoff = Backoff()
    while not request.Test():
        backoff.sleep()


class Channel:
    """One rank's end of the run's messages: buffers data per destination rank and sends
    it in batches, receives, and remembers a STOP and the control messages it got."""

    def __init__(self, comm: MPI.Comm, drain_timeout: float = 30.0):
        self.comm = comm
        self.drain_timeout = drain_timeout
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.stopped = False  # a STOP arrived (or this rank sent one): send no more data
        self.interrupted: int | None = None  # the signal the run drains on, once known here
        self.closing = False  # this rank has reported: a signal now changes nothing
        self.dead: set[int] = set()  # on rank 0: ranks found dead (the run ends at once)
        self.signalled: int | None = None  # set by the signal handler, acted on by the polls
        self.second_signal = False  # ... a signal SAME_SIGNAL_S or more after this rank's first
        self.stop_reason: str | None = None  # SECOND_SIGNAL, DRAIN_DEADLINE, or None (a PE failure)
        self.progress: dict[int, dict[str, int]] = {}  # on rank 0: each rank's last PROGRESS
        self._first_signal_at: float | None = None
        self._drain_deadline: float | None = None  # on rank 0, once interrupted
        self._progress_request: MPI.Request | None = None
        self.liveness = Liveness(comm)
        self.saw_dead: set[int] = set()  # on other ranks: the dead ranks they found
        self.rank0_leaving = False  # rank 0 said it ends the run on a dead rank (then exits)
        self.mail: dict[int, list[Any]] = defaultdict(list)  # REPORT and DONE payloads
        self._buffers: dict[int, list[tuple[str, Any]]] = {}
        self._in_flight: dict[int, deque[MPI.Request]] = defaultdict(deque)
        self._control: list[MPI.Request] = []
        self._status = MPI.Status()
        self.source = -1  # the sender of the message receive() returned last
        self.on_ack: Callable[[int, int, float], None] | None = None  # a sender's credits (mpi_credit)
        self._done: dict[int, list[float]] = {}  # sender -> [items done since the last ACK, their seconds]
        self._acked_at: dict[int, float] = {}  # sender -> when it was last sent an ACK

    # -- data ------------------------------------------------------------------
    def put(self, dest: int, port: str, item: Any) -> None:
        """Queue `item` for input `port` of rank `dest`; sends a full batch."""
        buffer = self._buffers.setdefault(dest, [])
        buffer.append((port, item))
        if len(buffer) >= BATCH_ITEMS:
            self._send_batch(dest, eos=False)

    def flush(self) -> None:
        """Send every partly filled batch (before this rank would wait, or now and then)."""
        for dest in list(self._buffers):
            self._send_batch(dest, eos=False)

    def end_streams(self, dests: list[int]) -> None:
        """Send what is buffered for each of `dests` with the end-of-stream mark."""
        for dest in dests:
            self._send_batch(dest, eos=True)

    def _send_batch(self, dest: int, eos: bool) -> None:
        items = self._buffers.pop(dest, [])
        queue = self._in_flight[dest]
        backoff = Backoff()
        while not self.stopped:
            while queue and queue[0].Test():
                queue.popleft()
            if len(queue) < MAX_IN_FLIGHT:
                queue.append(self.comm.issend((items, eos), dest=dest, tag=DATA))
                return
            self.poll_stop()
            backoff.sleep()

    # -- acknowledgements (a receiver's items done, for its senders' credits) -----
    def finished(self, sender: int, items: int, seconds: float) -> None:
        """`items` from `sender` are done, after `seconds`; acknowledged by send_acks()."""
        done = self._done.get(sender)
        if done is None:
            self._done[sender] = [items, seconds]
        else:
            done[0] += items
            done[1] += seconds

    def send_acks(self) -> None:
        """Tell each sender how many of its items are done since the last time; of items
        cheaper than CHEAP_S (which their sender does not split by credit), at most
        every CHEAP_ACK_S after the first, to keep its counts near."""
        if not self._done or self.stopped:
            return
        now = time.monotonic()
        for sender in list(self._done):
            items, seconds = self._done[sender]
            last = self._acked_at.get(sender)
            if last is not None and seconds < CHEAP_S * items and now - last < CHEAP_ACK_S:
                continue
            self.send(sender, ACK, (self.rank, int(items), seconds / items))
            self._acked_at[sender] = now
            del self._done[sender]
        if len(self._control) > 64:
            self._control = [r for r in self._control if not r.Test()]

    def poll_acks(self) -> None:
        """Take every ACK that has arrived."""
        while (message := self.comm.improbe(tag=ACK)) is not None:
            self._control_message(ACK, message.recv())

    # -- control ---------------------------------------------------------------
    def send(self, dest: int, tag: int, payload: Any) -> None:
        self._control.append(self.comm.issend(payload, dest=dest, tag=tag))

    def stop_everyone(self, reason: str | None = None) -> None:
        """Tell every other rank to stop (and why); this rank sends no more data either."""
        self.stopped = True
        self.stop_reason = self.stop_reason or reason
        for dest in range(self.size):
            if dest != self.rank:
                self.send(dest, STOP, reason)

    def send_progress(self, items: dict[str, int]) -> None:
        """Send rank 0 this rank's counts, unless the last ones are not yet received."""
        if self._progress_request is None or self._progress_request.Test():
            self._progress_request = self.comm.issend((self.rank, items), dest=0, tag=PROGRESS)

    def take_signal(self, signum: int) -> None:
        """The signal handler's part (the polls act on it): the first signal, or a second
        one if SAME_SIGNAL_S or more after the first; one closer is the first again."""
        now = time.monotonic()
        if self._first_signal_at is None:
            self._first_signal_at = now
            self.signalled = signum
        elif now - self._first_signal_at >= SAME_SIGNAL_S:
            self.second_signal = True

    def say_leaving(self, within: float) -> None:
        """Rank 0, ending the run on a dead rank: tell every live rank, so that none takes
        rank 0's exit for a death of its own; wait at most `within` for them to hear it."""
        requests = [self.comm.issend(LEAVING, dest=d, tag=STOP) for d in range(1, self.size) if d not in self.dead]
        deadline = time.monotonic() + within
        backoff = Backoff()
        while not MPI.Request.Testall(requests) and time.monotonic() < deadline:
            backoff.sleep()

    def poll_stop(self) -> bool:
        """Take a STOP, INTERRUPT or DEAD if one has arrived (and every ACK), and act on a
        signal or a dead rank on this node; True once stopped."""
        for tag in (STOP, INTERRUPT, DEAD, PROGRESS):
            message = self.comm.improbe(tag=tag)
            if message is not None:
                self._control_message(tag, message.recv())
        self.poll_acks()
        self._check()
        return self.stopped

    def _control_message(self, tag: int, payload: Any) -> None:
        if tag == STOP:
            self.stopped = True
            self.rank0_leaving = self.rank0_leaving or payload is LEAVING
            if isinstance(payload, str):
                self.stop_reason = self.stop_reason or payload
        elif tag == INTERRUPT:
            self._interrupt(payload)
        elif tag == DEAD:
            self._found_dead({payload})
        elif tag == PROGRESS:
            rank, items = payload
            self.progress[rank] = items
        elif tag == ACK and self.on_ack is not None:
            self.on_ack(*payload)

    def _check(self) -> None:
        """Act on a signal taken since the last check, on the drain's deadline, and on
        dead ranks of this node."""
        if not self.closing:
            if self.signalled is not None:
                signum, self.signalled = self.signalled, None
                if self.rank == 0:
                    self._interrupt(signum)
                elif self.interrupted is None:
                    self.interrupted = signum
                    self.send(0, INTERRUPT, signum)
            if self.second_signal and not self.stopped:  # stop now, dropping what is in flight
                self.stop_everyone(SECOND_SIGNAL)
            deadline = self._drain_deadline
            if deadline is not None and not self.stopped and time.monotonic() >= deadline:
                logging.getLogger("hpcflow").warning(
                    "the drain did not end within %g s (drain_timeout): every rank stops now", self.drain_timeout
                )
                self.stop_everyone(DRAIN_DEADLINE)
        dead = self.liveness.check()
        if dead:
            self._found_dead(dead)

    def _interrupt(self, signum: int) -> None:
        """The run drains on `signum`; rank 0 tells every other rank (once)."""
        if self.interrupted is not None and self.rank != 0:
            return
        first = self.interrupted is None
        self.interrupted = self.interrupted or signum
        if self.rank == 0 and first and not self.closing:
            self._drain_deadline = time.monotonic() + self.drain_timeout
            name = signal.Signals(signum).name
            logging.getLogger("hpcflow").warning(
                "%s: the sources stop, the items in flight drain (for at most %g s)", name, self.drain_timeout
            )
            for dest in range(1, self.size):
                if dest not in self.dead:
                    self.send(dest, INTERRUPT, signum)

    def _found_dead(self, ranks: set[int]) -> None:
        """Rank 0 ends the run; another rank tells rank 0 (or, if rank 0 itself is dead,
        the first live rank on its node ends the job: see mpi.py)."""
        if self.rank == 0:
            self.dead |= ranks
            self.stopped = True
            return
        for rank in sorted(ranks - self.saw_dead):
            if rank == 0:
                self.dead.add(0)
                self.stopped = True
            else:
                self.send(0, DEAD, rank)
            self.saw_dead.add(rank)

    # -- receiving ---------------------------------------------------------------
    def receive(self) -> tuple[int, Any] | None:
        """The next message as (tag, payload), or None if none is waiting. A STOP sets
        `stopped`; REPORT and DONE payloads are also kept in `mail`."""
        message = self.comm.improbe(status=self._status)
        if message is None:
            self._check()
            return None
        tag = self._status.Get_tag()
        self.source = self._status.Get_source()
        payload = message.recv()
        if tag in (STOP, INTERRUPT, DEAD, PROGRESS, ACK):
            self._control_message(tag, payload)
        elif tag != DATA:
            self.mail[tag].append(payload)
        return tag, payload

    def sends_complete(self) -> bool:
        """True once every message this rank sent has been received."""
        for queue in self._in_flight.values():
            while queue and queue[0].Test():
                queue.popleft()
        self._control = [r for r in self._control if not r.Test()]
        if self._progress_request is not None and self._progress_request.Test():
            self._progress_request = None
        return not self._control and self._progress_request is None and not any(self._in_flight.values())

    def drain_until(self, done: Callable[[], bool]) -> None:
        """Receive (and drop data) until `done()` holds and every send is complete: the
        way out of a run, in which a rank keeps taking messages so that no other rank's
        send waits on it forever. It ends at once when a dead rank was found: that rank's
        messages will never be received."""
        backoff = Backoff()
        while not self.dead and not (self.sends_complete() and done()):
            if self.receive() is None:
                backoff.sleep()
            else:
                backoff.reset()
