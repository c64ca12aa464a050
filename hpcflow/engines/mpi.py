"""The `mpi` mapping: the static baseline on MPI, one rank per PE instance.

Every rank of the job calls run() with the same graph. The plan is a pure function of
the graph and the number of ranks, so rank r runs instance `plan.pinned[r]` and knows
where every other instance lives without asking; ranks beyond the plan idle until the
end. A rank's loop: preprocess; a root runs its feed, any other PE takes batches until
it has an end-of-stream mark from every upstream instance; postprocess; send the
end-of-stream mark to every downstream instance. So postprocess() runs after the last
item and its output flows downstream before the run ends, with no idle timeout. An item
for a shuffle input of a PE with several instances goes where the sender's credits say
(mpi_credit.py: by demand); any other goes where the Router says.

The end of a run, normal or failed, is one path: every rank completes its sends and
reports to rank 0, which merges the reports and answers every rank with the summary.
A PE failure sends STOP to every rank; each stops after the item it is on, so no rank
waits for a message that will never come, and the summary carries the PEError, which
run() raises on every rank.

SIGTERM or SIGINT on any rank drains the run: the sources stop, the items in flight go
through, postprocess() runs, and every rank raises the same RunAborted ("stopped by
SIGTERM", exit code 128 + signal) with rank 0's result holding the metrics and outputs.
A drain that takes longer than `drain_timeout`, or a second signal, stops every rank
after the item it is on: the counts are then those of the items each rank ran, and the
message says which it was. A rank that dies ends the run within LIVENESS_S: rank 0
raises a RunAborted naming the rank and its PE instance with what it knows (the reports
of the ranks that had ended, the last PROGRESS of the others: those PEs' counts are
lower bounds, listed in `items_lower_bound`, or None if nothing came), then exits without
MPI_Finalize, which would wait for the dead rank; the other ranks see it gone and leave too.

Rank 0's result holds the outputs of every unconnected port; the other ranks' results
hold the same metrics and errors and no outputs.
"""

from __future__ import annotations

import atexit
import copy
import os
import signal
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from mpi4py import MPI

from ..errors import PEError, RunAborted, UsageError
from ..inputs import iter_feed
from ..invoke import Invoker
from ..job import Job, Outcome, add_output
from ..metrics import cpu_seconds
from ..mpirun import launcher_size
from ..routing import Router
from .mpi_channel import (
    BATCH_ITEMS,
    DATA,
    DONE,
    DRAIN_DEADLINE,
    PROGRESS_S,
    REPORT,
    SECOND_SIGNAL,
    Backoff,
    Channel,
    quiet_barrier,
)
from .mpi_credit import Credits, acknowledges
from .mpi_liveness import LIVENESS_S, Liveness

# How often a busy rank sends its partly filled batches and looks for a STOP: bounds how
# long a slow PE's outputs wait for a batch to fill, and how long a rank goes on (besides
# the item it is on) after a PE failed elsewhere.
TICK_S = 0.01

# How long the other ranks on a dead rank 0's node wait for the rank that writes in its
# place before they leave (their exit makes the launcher end the job).
REPORT_WAIT_S = 30.0


@dataclass
class Report:
    """What one rank tells rank 0 at the end of a run."""

    rank: int
    start: float = 0.0  # time.time() when the run started on this rank
    end: float = 0.0  # ... and when its last message had been received
    active_s: float = 0.0  # wall time it ran a PE instance (0 for an idle rank)
    cpu_s: float = 0.0
    items: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, dict[str, list]] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    failure: PEError | None = None
    failed_at: float = 0.0
    cut: bool = False  # stopped before its PE's end of stream (a failure elsewhere, a second signal, the deadline)


def resolve_processes(requested: int | None) -> int:
    """The mapping's processes are the ranks of the MPI job; a request for another
    number is an error rather than a run that silently uses a different count."""
    size = MPI.COMM_WORLD.Get_size()
    started = launcher_size()
    if started is None and size == 1:
        raise UsageError(
            "mapping mpi runs as the ranks of an MPI job: start the program with `mpiexec -n N` "
            "or `srun -n N` (`hpcflow run --mapping mpi` re-launches itself through mpiexec)"
        )
    if started is not None and started != size:
        raise UsageError(
            f"the launcher started {started} processes but MPI sees {size} rank(s): the launcher "
            "does not match this MPI library (with srun, try --mpi=pmi2 or --mpi=pmix)"
        )
    if requested is not None and requested != size:
        raise UsageError(
            f"mapping mpi runs one process per MPI rank: asked for {requested} processes in a job of "
            f"{size} ranks; start it with `mpiexec -n {requested}` or leave the process count out"
        )
    return size


def execute(job: Job) -> Outcome:
    world = MPI.COMM_WORLD
    quiet_barrier(world)  # start together: launch skew is the launcher's, not the run's
    comm = world.Dup()  # the run's messages never meet the caller's or another run's
    channel = Channel(comm, job.options.drain_timeout)
    handlers = _catch_signals(channel)
    try:
        outcome = _run(job, channel)
    except KeyboardInterrupt:
        world.Abort(130)  # the launcher interrupted every rank: end the job without a traceback each
        raise
    except BaseException:
        # A bug in the engine itself (a PE's errors are PEErrors and take the STOP path):
        # other ranks may be waiting on this one, so end the whole job rather than hang it.
        traceback.print_exc()
        sys.stderr.flush()
        world.Abort(1)
        raise
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    if channel.dead:  # MPI_Finalize would wait for the dead rank: leave without it once rank 0 has written
        atexit.register(_leave, 1, channel.liveness.reported)
        return outcome
    comm.Free()
    atexit.register(_leave_together, world, channel.liveness)
    return outcome


def _leave_together(world: MPI.Comm, liveness: Liveness) -> None:
    """At exit: meet every rank before MPI_Finalize, so that no rank exits non-zero before
    rank 0 has written (srun --kill-on-bad-exit would end rank 0 too), and no rank waits in
    MPI_Finalize, forever, for a rank that died after the run ended: one found dead on
    this node meanwhile makes this rank leave without MPI_Finalize."""
    request = world.Ibarrier()
    backoff = Backoff()
    while not request.Test():
        if liveness.check():
            _leave(1)
        backoff.sleep()


def _catch_signals(channel: Channel) -> dict:
    """SIGTERM and SIGINT, on the main thread, become a drain of the run: the handler only
    notes the signal, the rank's polls act on it (they may not be inside an MPI call)."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def note(signum: int, frame: Any) -> None:
        channel.take_signal(signum)

    return {sig: signal.signal(sig, note) for sig in (signal.SIGTERM, signal.SIGINT)}


def _run(job: Job, channel: Channel) -> Outcome:
    start, cpu0 = time.time(), cpu_seconds()
    if channel.rank < len(job.plan.pinned):
        pe, instance = job.plan.pinned[channel.rank]
        report = InstanceRank(job, channel, pe, instance).run()
        report.active_s = time.time() - start
    else:
        report = Report(channel.rank)
    report.start, report.end, report.cpu_s = start, time.time(), cpu_seconds() - cpu0
    if channel.rank != 0:
        if not channel.dead:
            channel.closing = True
            channel.send(0, REPORT, report)
            channel.drain_until(lambda: bool(channel.mail[DONE]))
        if channel.dead:
            return _rank0_died(job, channel, report)
        return channel.mail[DONE][0]
    channel.drain_until(lambda: len(channel.mail[REPORT]) == channel.size - 1)
    channel.closing = True
    reports = sorted([report, *channel.mail[REPORT]], key=lambda r: r.rank)
    summary = _summarise(reports, len(job.plan.pinned), channel.liveness.hosts)
    if channel.dead:
        channel.say_leaving(within=2 * LIVENESS_S)
        unreported = _add_progress(summary, job, reports, channel.progress)
        summary.failure = RunAborted(
            "; ".join(_died(job, rank) for rank in sorted(channel.dead)) + f": the run cannot finish ({unreported})"
        )
    elif summary.failure is None and channel.interrupted is not None:
        name = signal.Signals(channel.interrupted).name
        how = _how_stopped(channel, any(r.cut for r in reports))
        summary.failure = RunAborted(f"stopped by {name}: {how}", exit_code=128 + channel.interrupted)
    if not channel.dead:
        for dest in range(1, channel.size):
            channel.send(dest, DONE, summary)
        channel.drain_until(lambda: True)
    outputs: dict[str, dict[str, list]] = {}
    for r in reports:
        for pe, ports in r.outputs.items():
            for port, items in ports.items():
                outputs.setdefault(pe, {}).setdefault(port, []).extend(items)
    summary.outputs = outputs
    return summary


def _how_stopped(channel: Channel, cut: bool) -> str:
    """The truth about a run that stopped on a signal: drained, or cut short and why."""
    if not cut:
        return "sources stopped, in-flight work drained"
    if channel.stop_reason == DRAIN_DEADLINE:
        return (
            f"the drain did not end within {channel.drain_timeout:g} s (drain_timeout): the ranks still at work "
            "stopped after their current item; the items in flight were dropped and their postprocess() did not run"
        )
    if channel.stop_reason == SECOND_SIGNAL:
        return "stopped at once on a second signal"
    return "stopped at once"


def _add_progress(summary: Outcome, job: Job, reports: list[Report], progress: dict[int, dict[str, int]]) -> str:
    """Add the last PROGRESS of each PE instance that did not report to the counts of a
    run that ends on a dead rank; mark its PE's count a lower bound (None: nothing known).
    What the message says of the counts."""
    reported = {r.rank for r in reports}
    missing = [rank for rank in range(len(job.plan.pinned)) if rank not in reported]
    if not missing:
        return "the counts are of every instance"
    lower: set[str] = set()
    for rank in missing:
        pe = job.plan.pinned[rank][0]
        lower.add(pe)
        if rank in progress:
            summary.items[pe] = (summary.items.get(pe) or 0) + progress[rank].get(pe, 0)
        else:
            summary.items.setdefault(pe, None)
    summary.extra["items_lower_bound"] = sorted(lower)
    return (
        f"{len(missing)} instance(s) had not reported: the counts of {', '.join(sorted(lower))} are lower "
        f"bounds, from progress at most {PROGRESS_S:g} s old"
    )


def _died(job: Job, rank: int) -> str:
    pinned = job.plan.pinned
    what = f"PE {pinned[rank][0]} instance {pinned[rank][1]}" if rank < len(pinned) else "idle"
    return f"rank {rank} ({what}) died (found within {LIVENESS_S:g} s by a rank on its node)"


def _rank0_died(job: Job, channel: Channel, report: Report) -> Outcome:
    """Rank 0 is gone. If it said it was leaving, it ended the run on another dead rank
    (and said so): leave. Else the first live rank on its node to claim it takes rank 0's
    place: its outcome (its own counts, the others unknown) carries a failure that
    `hpcflow run` writes and says as rank 0 would (`in_place_of_rank0`). The other
    ranks leave once it has written: an exit makes the launcher end the job."""
    if channel.rank0_leaving:
        _leave(1)
    if not channel.liveness.claim_report_of(0):
        channel.liveness.wait_for_report_of(0, within=REPORT_WAIT_S)
        _leave(1)
    outcome = _summarise([report], len(job.plan.pinned), channel.liveness.hosts)  # where every rank ran
    unknown = sorted({pe for pe, _ in job.plan.pinned} - set(report.items))
    outcome.items.update(dict.fromkeys(unknown))
    failure = RunAborted(
        f"{_died(job, 0)}: the run cannot finish (rank {channel.rank} wrote what it knows; "
        f"the counts of {', '.join(unknown) or 'no PE'} are unknown)"
    )
    failure.in_place_of_rank0 = True
    outcome.failure = failure
    return outcome


def _leave(code: int, before: Callable[[], None] | None = None) -> NoReturn:
    """Exit without MPI_Finalize, which would wait for a dead rank (MPI_Abort too, under
    srun). The launcher sees a rank end with `code` and ends the job if it has not yet."""
    if before is not None:
        before()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _summarise(reports: list[Report], instances: int, hosts: list[str]) -> Outcome:
    """The run's outcome, without outputs, from every rank's report (`hosts`: each rank's)."""
    start = min(r.start for r in reports)
    items: Counter[str] = Counter()
    for r in reports:
        items.update(r.items)
    ends = sorted(r.end - start for r in reports[:instances])
    timeline = [[0.0, instances, 0]] + [[round(t, 6), instances - i - 1, 0] for i, t in enumerate(ends)]
    failed = sorted((r for r in reports if r.failure is not None), key=lambda r: r.failed_at)
    return Outcome(
        outputs={},
        items=dict(items),
        runtime_s=max(r.end for r in reports) - start,
        process_time_s=sum(r.active_s for r in reports),
        cpu_time_s=sum(r.cpu_s for r in reports),
        timeline=timeline,
        errors=[e for r in reports for e in r.errors],
        extra={
            "ranks": len(reports),
            "idle_ranks": len(reports) - instances,
            "worker_hosts": dict(sorted(Counter(hosts).items())),
        },
        failure=failed[0].failure if failed else None,
    )


class InstanceRank:
    """A rank running one PE instance: its worker loop."""

    def __init__(self, job: Job, channel: Channel, pe_name: str, instance: int):
        graph = copy.deepcopy(job.graph)  # the caller's PEs keep no state from the run
        plan = job.plan
        pe = graph.get(pe_name)
        pe.instance = instance
        self.name = pe_name
        self.instance = instance
        self.channel = channel
        self.collect = job.options.collect
        self.router = Router(graph, plan)
        self.rank_of = {slot: rank for rank, slot in enumerate(plan.pinned)}
        self.invoker = Invoker([pe], self._sink, job.options.error_policy)
        self.feed = job.feeds.get(pe_name)  # roots only
        self.upstream = sum(plan.instances[p] for p in graph.predecessors(pe_name))  # end marks to wait for
        self.downstream = sorted(
            {self.rank_of[(s, i)] for s in graph.successors(pe_name) for i in range(plan.instances[s])}
        )
        self.credits = Credits(graph, plan, self.rank_of, pe_name, instance, TICK_S, BATCH_ITEMS)  # split by demand
        channel.on_ack = self.credits.acknowledged
        self.acknowledges = acknowledges(graph, plan, pe_name)
        self._credit_wait = Backoff()
        self._done, self._done_from, self._done_since = 0, -1, 0.0  # items done, not yet acknowledged
        self.outputs: dict[str, dict[str, list]] = {}
        self._next_tick = 0.0
        self._next_progress = time.perf_counter() + PROGRESS_S

    def run(self) -> Report:
        failure: PEError | None = None
        cut = False
        try:
            self.invoker.preprocess(self.name)
            if self.feed is not None:
                self._produce()
            else:
                self._consume()
            if not self.channel.stopped:
                self.invoker.postprocess(self.name)
                self.channel.end_streams(self.downstream)
            else:
                cut = True
        except PEError as exc:
            failure = exc
        except Exception as exc:  # a send outside a PE call failed (an output that cannot be pickled)
            failure = PEError(
                self.name, self.instance, "<sending outputs>", f"{type(exc).__name__}: {exc}", traceback.format_exc()
            )
        if failure is not None:
            self.channel.stop_everyone()
        self.channel.drain_until(lambda: True)
        return Report(
            self.channel.rank,
            items=dict(self.invoker.items),
            outputs=self.outputs,
            errors=self.invoker.errors,
            failure=failure,
            failed_at=time.time() if failure else 0.0,
            cut=cut,
        )

    def _produce(self) -> None:
        for inputs in iter_feed(self.feed):
            if self.channel.stopped or self.channel.interrupted is not None:
                return  # a failure elsewhere, or a signal: the source stops, the run drains
            self.invoker.process(self.name, inputs)
            self._tick()

    def _consume(self) -> None:
        backoff = Backoff()
        waiting = self.upstream
        while waiting and not self.channel.stopped:
            message = self.channel.receive()
            if message is None:
                self.channel.flush()  # about to wait: what is buffered goes now
                self.channel.send_acks()
                self._progress(time.perf_counter())
                backoff.sleep()
                continue
            backoff.reset()
            tag, payload = message
            if tag != DATA:
                continue
            items, eos = payload
            self._done_from, self._done_since = self.channel.source, time.perf_counter()
            for port, item in items:
                if self.channel.stopped:
                    return
                self.invoker.process(self.name, {port: item})
                self._done += self.acknowledges
                self._tick()
            self._note_done()
            waiting -= eos

    def _tick(self) -> None:
        now = time.perf_counter()
        if now >= self._next_tick:
            self._next_tick = now + TICK_S
            self.channel.flush()
            self._note_done()
            self.channel.send_acks()
            self.channel.poll_stop()
            self._progress(now)

    def _note_done(self) -> None:
        """Hand the items done since the last note (all from one sender: one batch's) to
        the acknowledgements, with their seconds each."""
        if self._done:
            now = time.perf_counter()
            self.channel.finished(self._done_from, self._done, now - self._done_since)
            self._done, self._done_since = 0, now

    def _progress(self, now: float) -> None:
        """Every PROGRESS_S, this rank's counts to rank 0 (which keeps its own)."""
        if now >= self._next_progress and self.channel.rank != 0:
            self._next_progress = now + PROGRESS_S
            self.channel.send_progress(dict(self.invoker.items))

    def _sink(self, pe: str, port: str, data: Any) -> None:
        if not self.router.is_connected(pe, port):
            if self.collect:
                add_output(self.outputs, pe, port, data)
            return
        for dest in self.router.route(pe, port, data):
            if self.credits.splits(dest.pe, dest.port):
                rank = self.credits.pick(dest.pe, dest.port, self._wait_for_credit)
                self._credit_wait.reset()
            else:
                rank = self.rank_of[(dest.pe, dest.instance)]
            self.channel.put(rank, dest.port, data)
            self.credits.sent(rank)

    def _wait_for_credit(self) -> bool:
        """While no instance of a demand-split stream has credit: send what is held (so
        that acknowledgements come), take acknowledgements; True if the run stops."""
        self.channel.flush()
        self._note_done()
        self.channel.send_acks()
        if self.channel.poll_stop():
            return True
        self._progress(time.perf_counter())
        self._credit_wait.sleep()
        return False
