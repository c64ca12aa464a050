"""The multi-process engine: static, dynamic and hybrid placements, on any broker.

One coordinator (the calling process) and one process per pinned PE instance plus a
pool of workers. The plan decides the placement: `multi` pins every instance, `dyn_*`
pins only the roots (each called in order by one instance) and pools the rest, and
`hybrid_*` also pins every stateful instance. A pinned process with nothing of its own
to do runs pool tasks (when there is a pool), its own work first. In `multi` every
instance is pinned and there is no pool, so it keeps dispel4py's "one process per PE
instance".

The coordinator is the scheduler: it feeds the roots and answers the workers' streamed
outputs with credits, both throttled by the backlog bound (flow.py), counts every task
for exact termination (termination.py), drops outputs already delivered (delivery.py),
finalizes PEs in topological order, replaces a pool worker that died (its broker replays
the chunks it held, resuming after what was delivered), parks and wakes pool workers
when an auto-scaler is given, and records the metrics. How chunks travel is the broker's
business (transports/): in memory with a pipe per worker (`*_multi`), or Redis streams
(`*_redis`). The design is described in engines/README.md.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import heldsignals, progress
from ..autoscale import Observation, ServiceTimes, make_autoscaler
from ..errors import HpcflowError, RunAborted, UsageError
from ..fingerprint import check_same, fingerprint
from ..job import Job, Outcome
from ..metrics import cpu_seconds
from ..plan import own_pool
from ..transports import check_job, make_broker
from ..transports.base import MAX_REPLAYS, pool_pes
from .barrier import Checkpointer
from .checkpoint import CheckpointDamaged, CheckpointStore, Cut
from .delivery import DeliveryLedger
from .feed import ROOT_AHEAD, Feed
from .flow import FlowControl
from .protocol import (
    BYE,
    CREDIT,
    DONE,
    EXITED,
    FAILED,
    FINALIZE,
    JOINED,
    OUTPUT,
    READY,
    STATE,
    STOP,
    Delivery,
    Report,
    chunk_limit,
    dumps,
    loads,
)
from .termination import Termination

SAMPLE_S = 0.1  # timeline (and auto-scaler) sampling interval
STOP_WAIT_S = 10  # how long stopping workers may take to say goodbye before they are killed

log = logging.getLogger("hpcflow")

STARTING, RUNNING, STOPPING, EXITED_STATE = "starting", "running", "stopping", "exited"


@dataclass
class Worker:
    id: int
    hosts: list[tuple[str, int]]  # the (pe, instance) it runs: one if pinned, every pool PE if not
    pool: bool
    joined: bool = False  # started by `hpcflow worker`, maybe on another node
    host: str = field(default_factory=socket.gethostname)  # where it runs: a joined one says so
    state: str = STARTING
    finalizing: tuple[str, int] | None = None
    active_since: float | None = None
    active_s: float = 0.0
    cpu_s: float = 0.0
    parked: bool = False  # an auto-scaled pool worker not given work; not active

    @property
    def alive(self) -> bool:
        return self.state != EXITED_STATE

    def activate(self, now: float) -> None:
        if self.active_since is None:
            self.active_since = now

    def deactivate(self, now: float) -> None:
        if self.active_since is not None:
            self.active_s += now - self.active_since
            self.active_since = None


@dataclass
class Stats:
    items: Counter = field(default_factory=Counter)
    errors: list = field(default_factory=list)
    sinks: list = field(default_factory=list)
    timeline: list = field(default_factory=list)
    pool_timeline: list = field(default_factory=list)  # [t, active pool workers], auto-scaled runs
    replaced: int = 0
    resumed: int = 0  # replayed chunks whose first outputs had been delivered (not sent again)
    chained: int = 0  # tasks run in process by a chain (chain.py)
    startup_s: float = 0.0  # until every first worker was ready
    tail_s: float = 0.0  # from the last task report to the end of the run
    elastic: dict | None = None  # the metrics of the run's own worker jobs


class Rollback(RunAborted):
    """A pinned instance died: the run goes back to its last checkpoint (or its start)."""

    def __init__(self, host: tuple[str, int], why: str):
        super().__init__(f"the process of PE {host[0]}[{host[1]}] died ({why})")
        self.host = host

    def __reduce__(self):
        return (Rollback, (self.host, str(self).rsplit("(", 1)[-1].rstrip(")")))


class Coordinator:
    def __init__(self, job: Job, restored: tuple[Cut, str] | None = None):
        self.job = job
        self.plan = plan = job.plan
        self.graph = job.graph
        self.options = job.options
        self.local = job.mapping.transport == "shared memory"  # a wake is a flag, a look at the pool a count
        self.scaler = None
        if job.mapping.autoscale:  # (so locally the whole pool may be parked)
            self.scaler = make_autoscaler(job.options.autoscale, max_workers=plan.pool, free_wakes=self.local)
        self.service_times = ServiceTimes()
        self.ctx = multiprocessing.get_context(job.options.resolved_start_method)
        self.broker = make_broker(job, self.ctx)
        self.pool_pes = pool_pes(plan)
        self.helping = bool(self.pool_pes) and job.options.help_pool  # pinned processes run pool tasks when idle
        self.capacity = {n: plan.pool if n in self.pool_pes else plan.instances[n] for n in plan.order}
        self.feeds = {r: Feed(job.feeds[r]) for r in plan.roots}
        upstream = {n: self.graph.predecessors(n) for n in plan.order}
        finalizers = Counter(pe for pe, _ in plan.pinned)
        self.term = Termination(plan.order, upstream, finalizers)
        for root, feed in self.feeds.items():
            self.term.created(root, feed.remaining)
        self.hosted: dict[tuple[str, int], Worker] = {}  # (pe, instance) -> the worker pinned to it
        self.waiting: Counter[tuple[str, int]] = Counter()  # tasks for each pinned instance not yet done
        self.workers: dict[int, Worker] = {}
        self.start_deaths = 0  # pool workers that died before they were ready (in preprocess())
        self.stats = Stats()
        self.ledger = DeliveryLedger()
        self.flow = FlowControl(
            self.options.max_backlog_s, self.options.max_queued, self.capacity, self.service_s, self.broker.queued_by_pe
        )
        self.failure: HpcflowError | None = None
        self.signalled: int | None = None
        self.t0 = 0.0
        self.started_at: float | None = None  # when every first worker was ready
        self.last_report = 0.0  # when the last task report arrived
        self.last_progress = 0.0  # ... or a worker became ready: what the stall watchdog watches
        self.elastic = None  # the run's own worker jobs (`--elastic`), from run() on
        self.cpu0 = 0.0
        self.restored = restored  # (checkpoint, its generation directory) to continue from
        self.checkpointer: Checkpointer | None = None
        if job.options.checkpoint_dir:
            store = CheckpointStore(job.options.checkpoint_dir)
            previous = restored[0] if restored else None
            self.checkpointer = Checkpointer(self, store, job.options.checkpoint_interval, previous)

    # -- workers -------------------------------------------------------------
    def start_worker(self, pinned: tuple[str, int] | None = None) -> Worker:
        hosts = [pinned] if pinned else [(pe, 0) for pe in self.pool_pes]
        w = Worker(self.broker.new_worker_id(), hosts, pinned is None)
        name = f"hpcflow-{pinned[0]}[{pinned[1]}]" if pinned else f"hpcflow-worker-{w.id}"
        self.broker.start_worker(w.id, hosts, name)
        w.activate(time.perf_counter())
        self.workers[w.id] = w
        if pinned:
            self.hosted[pinned] = w
        return w

    def join(self, wid: int, host: str) -> None:
        """A worker started by `hpcflow worker` on `host` joined the pool."""
        w = Worker(wid, [(pe, 0) for pe in self.pool_pes], pool=True, joined=True, host=host)
        w.activate(time.perf_counter())
        self.workers[wid] = w
        for pe in self.pool_pes:  # the backlog bound grows with the pool
            self.capacity[pe] += 1
        if self.scaler is not None:
            self.scaler.max_workers += 1

    def service_s(self, pe: str) -> float:
        return self.service_times.get(pe) or 0.0

    def feed_roots(self) -> None:
        """Give each root its next chunks of inputs, ROOT_AHEAD at a time (run in order,
        the next waits in its pipe: no round trip between two), unless the run is backlogged."""
        for root, feed in self.feeds.items():
            if feed.in_flight >= ROOT_AHEAD or feed.remaining == 0 or self.flow.backlogged():
                continue
            chunk = feed.take(root, chunk_limit(self.service_s(root)))
            feed.in_flight += 1
            self.broker.submit(chunk)
            self.expect((root, 0), chunk.count)

    # -- credits -------------------------------------------------------------
    def credit(self, w: Worker, n: int = 1) -> None:
        """Let `w` send `n` more OUTPUTs; after a stop signal a root is told to halt."""
        halt = self.signalled is not None and self.checkpointer is None and not w.pool and w.hosts[0][0] in self.feeds
        self.broker.send(w.id, (CREDIT, halt, n))

    def release_credits(self) -> None:
        for wid, n in self.flow.releasable(self.drainers):
            w = self.workers.get(wid)
            if w is not None and w.alive:
                self.credit(w, n)

    def release_all_credits(self) -> None:
        """A checkpoint's round: no worker may wait for a credit while others are paused."""
        for wid in list(self.flow.held):
            w = self.workers.get(wid)
            n = self.flow.release(wid)
            if w is not None and w.alive:
                self.credit(w, n)

    def drainers(self, pe: str) -> list[int]:
        """The workers that may run tasks of `pe` now."""
        if self.plan.is_pinned(pe):
            return [w.id for w in self.workers.values() if w.alive and not w.pool and w.hosts[0][0] == pe]
        return [w.id for w in self.workers.values() if w.alive and w.state != STOPPING and not w.parked]

    def expect(self, host: tuple[str, int], n: int) -> None:
        """`n` more tasks for a pinned instance: it is active until they are done."""
        self.waiting[host] += n
        self.hosted[host].activate(time.perf_counter())

    def finalize_ready(self) -> None:
        for pe in self.term.ready_to_finalize():
            for host in self.plan.pinned:
                if host[0] == pe and not self.term.was_finalized(*host):
                    w = self.hosted[host]
                    w.finalizing = host
                    w.activate(time.perf_counter())
                    self.broker.send(w.id, (FINALIZE, *host))

    # -- events --------------------------------------------------------------
    def on_event(self, wid: int, msg: tuple) -> None:
        kind = msg[0]
        if kind == JOINED:
            self.join(wid, msg[2])
            if self.checkpointer is not None and self.broker.pauses_pool:
                self.checkpointer.abort()  # it could take work a paused worker left
            return
        w = self.workers.get(wid)
        if w is None or not w.alive:
            return  # a late message of a worker already written off
        if kind == READY:
            w.cpu_s = msg[1]
            self.last_progress = time.perf_counter()
            if w.state == STARTING:
                w.state = RUNNING
            if self.started_at is None and all(x.state != STARTING for x in self.workers.values()):
                self.started_at = time.perf_counter()
        elif kind == OUTPUT:
            self.on_deliveries(w, msg[1])
            if self.scaler is not None and self.local:  # streamed outputs may queue work for parked workers
                self.rescale(w, time.perf_counter(), done=False)
            pausing = self.checkpointer is not None and self.checkpointer.open
            dests = {c.pe for d in msg[1] for c in d.outputs}
            if self.signalled is not None or pausing or not self.flow.hold(w.id, dests):
                self.credit(w)
        elif kind == STATE:
            self.checkpointer.on_state(w.id, msg[1])
        elif kind == DONE:
            self.on_report(w, msg[1])
        elif kind == FAILED:
            w.cpu_s = msg[-1]
            if self.failure is None:
                self.failure = msg[1]
                self.stats.items.update(msg[2])  # the failed batch's items, the failed item among them
            w.state = STOPPING
        elif kind == BYE:
            w.cpu_s = msg[1]
            w.state = STOPPING
        elif kind == EXITED:
            self.on_exit(w, msg[1])

    def on_deliveries(self, w: Worker, deliveries: list[Delivery]) -> None:
        """Outputs a worker sent: counted for termination and queued, unless already
        delivered (a replay's or a repeated message's)."""
        for d in deliveries:
            if not self.ledger.accept(d):
                continue
            for c in d.outputs:
                self.term.created(c.pe, c.count)
                if c.instance is not None:
                    self.expect((c.pe, c.instance), c.count)
            self.flow.measured(d.outputs)
            self.broker.deliver(w.id, d.outputs)
            self.stats.sinks.extend(d.sinks)

    def on_report(self, w: Worker, report: Report) -> None:
        self.on_deliveries(w, report.deliveries)
        self.ledger.forget(report.done)
        self.broker.accept(w.id, report)
        own = w.hosts[0][0] if not w.pool else None
        helped = 0.0  # a pinned worker's time on pool tasks
        for pe, n, busy in report.stats:
            self.term.completed(pe, n)
            feed = self.feeds.get(pe)
            if feed is not None and report.done:
                feed.in_flight -= 1
            self.measured(pe, n, busy)
            if own is not None and pe != own:
                helped += busy
        for pe, n, busy in report.chained:  # run in process by a chain (chain.py): never queued, never pending
            self.measured(pe, n, busy)
            self.stats.chained += n
        for pe, n in report.dropped:  # a root halted by a stop signal: its other inputs will not run
            self.term.cancel_pending(pe, n)
        self.stats.errors.extend(report.errors)
        w.cpu_s = report.cpu_s
        self.last_report = self.last_progress = now = time.perf_counter()
        # Under the _auto mappings a pinned instance with nothing of its own to run waits like
        # a parked worker: not active, but for the pool tasks it runs meanwhile. Elsewhere every
        # process holds its CPU for the whole run, and is counted so (the paper's process time).
        auto = self.scaler is not None
        if own is not None:
            self.waiting[w.hosts[0]] -= sum(n for pe, n, _ in report.stats if pe == own)
            self.waiting[w.hosts[0]] -= sum(n for _, n in report.dropped)
            if auto:
                w.active_s += helped
        if auto:
            self.rescale(w, now)
        if auto and own is not None and not self.waiting[w.hosts[0]] and w.finalizing is None:
            w.deactivate(now)
        if w.finalizing is not None and not report.done:  # (not a report of pool work it ran before)
            self.term.finalized(*w.finalizing)
            w.finalizing = None
            if auto:
                w.deactivate(now)
            if not self.helping:  # a finalized instance has nothing more to do, unless it helps the pool
                w.state = STOPPING
                self.broker.send(w.id, (STOP,))

    def on_exit(self, w: Worker, why: str) -> None:
        w.deactivate(time.perf_counter())
        if w.joined:
            for pe in self.pool_pes:
                self.capacity[pe] -= 1
        stopped = w.state == STOPPING  # as asked: a finalized instance, or at the run's end
        expected = stopped or self.failure is not None
        starting = w.state == STARTING
        w.state = EXITED_STATE
        if self.checkpointer is not None:  # one killed after a failure owes a state it never sent
            self.checkpointer.on_exit(w.id, stopped)
        if expected:
            return
        self.flow.release(w.id)
        if not w.pool:  # its state is lost: the run goes back to its last checkpoint (execute())
            self.failure = Rollback(w.hosts[0], why)
            return
        if starting:  # died in preprocess(): a replacement would most likely die the same way
            self.start_deaths += 1
            if self.start_deaths >= MAX_REPLAYS:
                self.failure = RunAborted(
                    f"{self.start_deaths} pool workers died while starting (last: {why}), in preprocess() of "
                    f"PE {' or '.join(self.pool_pes)}; not starting more"
                )
                return
        try:
            self.broker.recover(w.id, why, self.resume_mark)
        except RunAborted as exc:
            self.failure = exc
            return
        self.stats.replaced += 1
        if not w.joined:  # a joined node's worker is not replaced by one on this node
            self.start_worker()

    def measured(self, pe: str, n: int, busy: float) -> None:
        self.stats.items[pe] += n
        if n:
            self.service_times.record(pe, busy / n)
            self.broker.publish_service(pe, self.service_times.get(pe))

    def resume_mark(self, chunk: int) -> int:
        """Where the replay of a lost chunk resumes: after the writes it already delivered."""
        n = self.ledger.delivered(chunk)
        if n:
            self.stats.resumed += 1
        return n

    # -- auto-scaling --------------------------------------------------------
    def pool_workers(self) -> list[Worker]:
        return [w for w in self.workers.values() if w.pool and w.alive and w.state != STOPPING]

    def park(self, w: Worker, now: float) -> None:
        w.parked = True
        w.deactivate(now)
        self.broker.park(w.id)

    def wake(self, w: Worker, now: float) -> None:
        w.parked = False
        w.activate(now)
        self.broker.wake(w.id)

    def observe(self, now: float, pool: list[Worker]) -> Observation:
        """The pool as the auto-scaler sees it. Idle means active and not running a
        task: waiting for one, or still starting."""
        active = [w for w in pool if not w.parked]
        idle_for = self.broker.idle_times([w.id for w in active], now)  # None: running a task
        idle = [w for w in active if idle_for[w.id] is not None]
        queued_by_pe = {pe: n for pe in self.pool_pes if (n := self.broker.queued_by_pe[pe])}
        return Observation(
            t=now - self.t0,
            queued=sum(queued_by_pe.values()),
            active=len(active),
            busy=len(active) - len(idle),
            queued_by_pe=queued_by_pe,
            service_s=self.service_times.snapshot(),
            idle_s=sum(idle_for[w.id] for w in idle) / len(active) if active else 0.0,
        )

    def autoscale(self, now: float) -> None:
        """One step of the auto-scaler: wake parked workers up to its target, or park
        idle ones down to it; a busy worker is never interrupted."""
        pool = self.pool_workers()
        target = self.scaler.step(self.observe(now, pool))
        active = [w for w in pool if not w.parked]
        if target > len(active):
            self.wake_up_to(target, pool, now)
        elif target < len(active):
            idle_for = self.broker.idle_times([w.id for w in active], now)  # None: running a task
            idle = sorted((w for w in active if idle_for[w.id] is not None), key=lambda w: -idle_for[w.id])
            for w in idle[: len(active) - target]:
                self.park(w, now)

    def rescale(self, w: Worker, now: float, done: bool = True) -> None:
        """After a report or streamed outputs, between steps: ask the scaler's `demand`
        when work is queued for the pool while workers are parked, or when a report
        leaves the pool nothing queued (the reporting worker has nothing to do); wake
        parked workers up to its answer, then park the reporting worker if the pool is
        above it. A burst arriving just after a step would otherwise wait up to a whole
        interval for workers, and a worker left idle stay active as long. Outputs sent
        mid-task (`done` False) only wake: their worker is still running its task."""
        pool = self.pool_workers()
        pool_queued = any(self.broker.queued_by_pe[pe] for pe in self.pool_pes)
        if (pool_queued and any(x.parked for x in pool)) or (done and w.pool and not pool_queued):
            self.wake_up_to(self.scaler.demand(self.observe(now, pool)), pool, now)
        if done and w.pool and not w.parked and sum(1 for x in pool if not x.parked) > self.scaler.target:
            self.park(w, now)

    def wake_up_to(self, target: int, pool: list[Worker], now: float) -> None:
        parked = [w for w in pool if w.parked]
        for w in parked[: max(0, target - (len(pool) - len(parked)))]:
            self.wake(w, now)

    # -- signals -------------------------------------------------------------
    def _on_signal(self, signum: int, frame: Any) -> None:
        """The first signal stops the run (with a checkpoint, where one is kept). While
        that checkpoint is written a repeated SIGTERM changes nothing (a batch system may
        send several: scancel of a job whose script forwards it); a later SIGINT (Ctrl-C
        again), or any second signal of a run without checkpoints, stops at once."""
        if self.signalled is None:
            self.signalled = signum
        elif self.checkpointer is None or signum != signal.SIGTERM:
            self.failure = self.failure or self.stopped_at_once(signum)

    def stopped_at_once(self, signum: int) -> RunAborted:
        name = signal.Signals(signum).name
        if self.checkpointer is None:
            return RunAborted(f"stopped at once by a second signal ({name})", exit_code=128 + signum)
        return RunAborted(
            f"stopped at once by a second signal ({name}) before the stop's checkpoint was complete; "
            + self.checkpointer.resume_from(),
            exit_code=128 + signum,
        )

    def stop_sources(self) -> None:
        """Stop feeding the roots; what is in flight still drains and postprocess() runs."""
        for root, feed in self.feeds.items():
            left = feed.remaining
            if left:
                feed.sent += left
                self.term.cancel_pending(root, left)

    # -- the loop ------------------------------------------------------------
    def run(self) -> Outcome:
        self.cpu0 = cpu0 = cpu_seconds()
        self.t0 = time.perf_counter()
        handlers = self._install_signal_handlers()
        try:
            self.broker.open()
            if self.job.options.elastic is not None:  # the batch modules (and YAML) only for a run with jobs
                from ..batch.elastic import start_elastic

                self.elastic = start_elastic(self.job.options)
            for host in self.plan.pinned:
                self.start_worker(host)
            active = self.scaler.initial() if self.scaler is not None else self.plan.pool
            for i in range(own_pool(self.plan, self.job.options.joining)):  # the rest join from other nodes
                self.start_early()
                w = self.start_worker()
                if i >= active:  # the auto-scaler's first target: the rest start parked
                    self.park(w, time.perf_counter())
            if self.restored is not None:
                self.restore(self.restored[0])
            if self.checkpointer is not None:
                self.checkpointer.start_clock(time.perf_counter())
            self.loop()
        except self.broker.lost as exc:
            self.failure = self.transport_lost(exc)
        finally:
            try:
                if self.elastic is not None:
                    self.elastic.halt()
                self.shutdown()
            finally:
                if self.elastic is not None:
                    self.stats.elastic = self.elastic.close()
                self.broker.close()
                self._restore_signal_handlers(handlers)
        end = time.perf_counter()
        self.stats.startup_s = (self.started_at or end) - self.t0
        self.stats.tail_s = end - max(self.last_report, self.t0)
        return self.outcome(end - self.t0, cpu_seconds() - cpu0)

    def start_early(self) -> None:
        """Before each pool worker's start, on shared memory, every pinned instance
        started: feed the roots and answer the workers already started, so that the first
        task need not wait for the last fork. Not when resuming: the feeds' positions come
        from the checkpoint."""
        if self.restored is not None or not self.local:
            return
        self.feed_roots()
        self.broker.dispatch()
        for wid, msg in self.broker.poll(0):
            self.on_event(wid, msg)

    def loop(self) -> None:
        next_sample = self.t0
        next_scale = self.t0 if self.scaler is not None else float("inf")  # else wait() would never block
        interval = self.scaler.interval if self.scaler is not None else float("inf")
        stopping_sources = False
        while self.failure is None:
            if self.signalled is not None and not stopping_sources:
                stopping_sources = True
                if self.checkpointer is not None:  # a checkpoint, then the run stops
                    self.checkpointer.stop()
                else:
                    self.stop_sources()
                    for w in self.workers.values():  # a root waiting for a credit is told to halt now
                        if w.id in self.flow.held and not w.pool and w.hosts[0][0] in self.feeds:
                            self.credit(w, self.flow.release(w.id))
            self.finalize_ready()
            if self.term.all_done:
                break
            now = time.perf_counter()
            if self.checkpointer is not None and self.checkpointer.due(now):
                self.checkpointer.begin()
            if self.scaler is not None and now >= next_scale:
                self.autoscale(now)
                next_scale = now + interval
            self.feed_roots()
            self.release_credits()
            self.broker.dispatch()
            if now >= next_sample:
                self.sample(now)
                self.check_stall(now)
                next_sample = now + SAMPLE_S
            timeout = max(0.0, min(next_sample, next_scale) - time.perf_counter())
            for wid, msg in self.broker.poll(timeout):
                self.on_event(wid, msg)
        if self.failure is None and self.signalled is not None:
            name = signal.Signals(self.signalled).name
            self.failure = RunAborted(
                f"stopped by {name}: sources stopped, in-flight work drained", exit_code=128 + self.signalled
            )

    # -- checkpoints (engines/barrier.py, engines/checkpoint.py) ---------------
    def pausable(self, everyone: bool) -> list[Worker]:
        """The workers a checkpoint's round pauses: the pinned ones, or all (`everyone`)."""
        return [w for w in self.workers.values() if w.alive and w.state != STOPPING and (everyone or not w.pool)]

    def capture(self, now: float) -> Cut:
        """What the coordinator holds now, every pinned instance paused: a consistent cut."""
        before = self.checkpointer.before
        workers = self.workers.values()
        active = sum(w.active_s + (now - w.active_since if w.active_since is not None else 0.0) for w in workers)
        cpu = sum(w.cpu_s for w in workers) + cpu_seconds() - self.cpu0 + self.broker.cpu_s()
        return Cut(
            feeds={root: feed.sent for root, feed in self.feeds.items()},
            pending=self.broker.pending(self.ledger.delivered),
            finalized=self.term.finalized_instances(),
            items=dict(self.stats.items),
            errors=list(self.stats.errors),
            service=self.service_times.snapshot(),
            totals={
                "runtime_s": before.get("runtime_s", 0.0) + now - self.t0,
                "process_time_s": before.get("process_time_s", 0.0) + active,
                "cpu_time_s": before.get("cpu_time_s", 0.0) + cpu,
            },
            instances=dict(self.plan.instances),
            pinned=list(self.plan.pinned),
            replays_resumed=self.stats.resumed,
        )

    def restore(self, cut: Cut) -> None:
        """Continue from a checkpoint: the roots' positions, the tasks not done (queued
        again, each resuming after its delivered writes), the counts and the outputs.
        The pinned instances restore their own states (checkpoint.restore_instance)."""
        for root, sent in cut.feeds.items():
            self.feeds[root].sent = sent
        pending: Counter[str] = Counter({root: feed.remaining for root, feed in self.feeds.items()})
        for c in cut.pending:
            pending[c.pe] += c.count
        self.term.restore(pending, cut.finalized)
        for pe, seconds in cut.service.items():
            self.service_times.record(pe, seconds)
            self.broker.publish_service(pe, seconds)
        for c in cut.pending:
            if c.resume:
                self.ledger.marks[c.id] = c.resume
            self.broker.submit(c)
            if c.instance is not None:
                self.expect((c.pe, c.instance), c.count)
            if c.pe in self.feeds:
                self.feeds[c.pe].in_flight += 1
        self.stats.items.update(cut.items)
        self.stats.errors.extend(cut.errors)
        self.stats.resumed = cut.replays_resumed
        self.stats.sinks = self.checkpointer.store.sinks(cut.sinks_bytes)
        self.checkpointer.sinks_saved = len(self.stats.sinks)

    def stopped_with_checkpoint(self, generation: int) -> None:
        """A stop signal's checkpoint is written: the run ends now, without postprocess()."""
        name = signal.Signals(self.signalled).name
        run_dir = Path(self.options.checkpoint_dir).parent
        self.failure = RunAborted(
            f"stopped by {name}: checkpoint {generation} written; continue with: hpcflow resume {run_dir}",
            exit_code=128 + self.signalled,
        )

    def check_stall(self, now: float) -> None:
        """The watchdog: a run in which nothing has finished for `stall_timeout` seconds
        stops with an error naming the PEs that hold work, instead of hanging."""
        limit = self.options.stall_timeout
        if not limit or now - max(self.last_progress, self.t0) <= limit:
            return
        held = self.term.holding_work()
        where = ", ".join(f"PE {pe} holds {n} task(s)" for pe, n in held.items()) or "no PE holds work"
        self.failure = RunAborted(
            f"no task finished for {limit:g} s (stall_timeout): {where}; a PE may be stuck in process(), or "
            "its tasks take longer than that (raise stall_timeout, 0 turns the watchdog off)"
        )

    def sample(self, now: float) -> None:
        active = sum(1 for w in self.workers.values() if w.active_since is not None)
        t = round(now - self.t0, 4)
        self.stats.timeline.append([t, active, self.broker.queued])
        if self.scaler is not None:  # the workers its target counts, told apart from the pinned instances
            self.stats.pool_timeline.append([t, sum(1 for w in self.pool_workers() if w.active_since is not None)])
        progress.on_sample(self, now)  # the live display and status.json read what is recorded here
        if self.elastic is not None:
            pool = self.pool_workers()
            self.elastic.observe(self.observe(now, pool), len(pool), sum(1 for w in pool if w.joined))

    def transport_lost(self, exc: BaseException) -> RunAborted:
        server = self.job.mapping.transport.capitalize()
        return RunAborted(f"lost the {server} server mid-run ({type(exc).__name__}: {exc}); the run cannot go on")

    def shutdown(self) -> None:
        """Stop every worker: STOP and wait for it to exit normally, kill it after a
        failure (or when it takes longer than STOP_WAIT_S)."""
        try:
            self._stop_workers()
        except self.broker.lost as exc:  # nothing to wait for through a dead transport
            self.failure = self.failure or self.transport_lost(exc)
            live = [w for w in self.workers.values() if w.alive]
            self.broker.kill([w.id for w in live])
            for w in live:
                self.on_exit(w, "killed: the transport is gone")

    def _stop_workers(self) -> None:
        live = [w for w in self.workers.values() if w.alive]
        if self.failure is not None:
            self.broker.kill([w.id for w in live])
        else:
            for w in live:
                if w.state != STOPPING:
                    w.state = STOPPING
                    self.broker.send(w.id, (STOP,))
        deadline = time.perf_counter() + STOP_WAIT_S
        while any(w.alive for w in self.workers.values()):
            left = deadline - time.perf_counter()
            if left <= 0:
                live = [w for w in self.workers.values() if w.alive]
                self.broker.kill([w.id for w in live])
                for w in live:
                    self.on_exit(w, "killed after the run")
                break
            for wid, msg in self.broker.poll(left):
                w = self.workers.get(wid)
                if w is None or not w.alive:
                    continue
                if msg[0] in (BYE, FAILED):
                    w.cpu_s = msg[-1]
                elif msg[0] == EXITED:
                    self.on_exit(w, msg[1])

    def outcome(self, runtime: float, coordinator_cpu: float) -> Outcome:
        outputs: dict[str, dict[str, list]] = {}
        for pe, port, blob in self.stats.sinks:  # a packed list of one port's outputs
            outputs.setdefault(pe, {}).setdefault(port, []).extend(loads(blob))
        workers = list(self.workers.values())
        before = self.checkpointer.before if self.checkpointer is not None else {}
        return Outcome(
            outputs=outputs,
            items=dict(self.stats.items),
            runtime_s=runtime + before.get("runtime_s", 0.0),
            process_time_s=sum(w.active_s for w in workers) + before.get("process_time_s", 0.0),
            cpu_time_s=sum(w.cpu_s for w in workers)
            + coordinator_cpu
            + self.broker.cpu_s()
            + before.get("cpu_time_s", 0.0),
            timeline=self.stats.timeline,
            errors=self.stats.errors,
            extra={
                "coordinator_cpu_s": round(coordinator_cpu, 4),
                "workers_started": len(workers),
                "workers_joined": sum(1 for w in workers if w.joined),
                "worker_hosts": dict(sorted(Counter(w.host for w in workers).items())),
                "workers_replaced": self.stats.replaced,
                "replays_resumed": self.stats.resumed,
                "tasks_chained": self.stats.chained,
                "duplicates_dropped": self.ledger.duplicates,
                "peak_queued": self.broker.peak_queued,
                **self.broker.metrics(),
                "startup_s": round(self.stats.startup_s, 4),
                "tail_s": round(self.stats.tail_s, 4),
                **self.autoscale_metrics(),
                **(self.checkpointer.metrics() if self.checkpointer is not None else {}),
                **({"elastic": self.stats.elastic} if self.stats.elastic else {}),
            },
            failure=self.failure if isinstance(self.failure, HpcflowError) else None,
        )

    def autoscale_metrics(self) -> dict[str, Any]:
        if self.scaler is None:
            return {}
        return {
            "autoscale": self.scaler.name,
            "autoscale_timeline": [[round(t, 4), n] for t, n in self.scaler.history],  # [t, target]
            "pool_timeline": self.stats.pool_timeline,  # [t, active pool workers]: what the target counts
        }

    def _install_signal_handlers(self) -> dict:
        if threading.current_thread() is not threading.main_thread():
            return {}
        old = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            old[sig] = signal.signal(sig, self._on_signal)
        for signum in heldsignals.take():  # came while no coordinator listened (heldsignals.py)
            self._on_signal(signum, None)
        return old

    @staticmethod
    def _restore_signal_handlers(old: dict) -> None:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def check(job: Job) -> None:
    """Bad input for this engine, refused before the run: run inputs that cannot be
    pickled to the root's process, PEs the transport cannot ship (Redis), and, unless
    workers are forked, PEs that cannot be pickled to a spawned worker."""
    for root, feed in job.feeds.items():
        if isinstance(feed, list):
            try:
                dumps(feed)
            except Exception as exc:
                raise UsageError(
                    f"inputs for PE {root} cannot be pickled to pass them to its process: {type(exc).__name__}: {exc}"
                ) from None
    check_job(job)
    method = job.options.resolved_start_method
    if method == "fork":
        return
    for pe in job.graph.pes:
        try:
            dumps(pe)
        except Exception as exc:
            raise UsageError(
                f"PE {pe.name} cannot be pickled to start a worker with start_method {method!r}: "
                f"{type(exc).__name__}: {exc}; use start_method 'fork', or create what it holds in preprocess()"
            ) from None


def execute(job: Job) -> Outcome:
    """Run the job. A pinned instance that dies takes the whole run back to its last
    checkpoint (or its start) in this process, as Flink does: every task since is run
    again, the outputs since are dropped, so the result is exact. The same instance
    dying again before a newer checkpoint ends the run, naming it."""
    store = CheckpointStore(job.options.checkpoint_dir) if job.options.checkpoint_dir else None
    restored = None
    if store is not None and job.options.resume:
        if store.clear_unfinished():
            log.info("removed the unfinished checkpoint directories a stopped attempt left")
        restored = latest(store, "the resume")
        if restored is not None:  # refused before anything runs: another graph, mapping, inputs...
            check_same(
                getattr(restored[0], "fingerprint", None), fingerprint(job), f"from {job.options.checkpoint_dir}"
            )
    elif store is not None:
        store.clear()
    recovered: dict[tuple[str, int], int] = {}  # instance -> the generation it last went back to
    recoveries = 0
    lost = Counter()  # time of attempts rolled back, after the checkpoint they went back to
    while True:
        _continue_from(job, restored)
        coordinator = Coordinator(job, restored)
        outcome = coordinator.run()
        died = outcome.failure
        if not isinstance(died, Rollback):
            break
        if coordinator.signalled is not None:  # it died during a stop: the stop stands
            name = signal.Signals(coordinator.signalled).name
            then = coordinator.checkpointer.resume_from() if coordinator.checkpointer else "its outputs are lost"
            outcome.failure = RunAborted(
                f"stopped by {name}: {died} during the stop; {then}", exit_code=128 + coordinator.signalled
            )
            break
        try:
            restored = latest(store, "the recovery") if store is not None else None
        except CheckpointDamaged as exc:
            outcome.failure = RunAborted(f"{died}; the run cannot go back: {exc}")
            break
        generation = restored[0].generation if restored else 0
        if recovered.get(died.host) == generation:
            since = f"checkpoint {generation}" if generation else "the start"
            outcome.failure = RunAborted(
                f"{died}; it had been restarted from {since} and died again before a newer checkpoint, so the run stops"
            )
            break
        recovered[died.host] = generation
        recoveries += 1
        tell(f"{died}: the run goes back to {f'checkpoint {generation}' if generation else 'its start'}")
        for key in ("runtime_s", "process_time_s", "cpu_time_s"):
            lost[key] += getattr(outcome, key) - (restored[0].totals.get(key, 0.0) if restored else 0.0)
    for key, seconds in lost.items():
        setattr(outcome, key, getattr(outcome, key) + seconds)
    if recoveries:
        outcome.extra["recoveries"] = recoveries
    return outcome


def tell(message: str) -> None:
    """A warning the user must see: on stderr and in run.log."""
    log.warning("%s", message)
    progress.say(f"hpcflow: warning: {message}")


def latest(store: CheckpointStore, purpose: str) -> tuple[Cut, Path] | None:
    """The checkpoint to continue from; every damaged one passed over, or a start from
    scratch, is said (CheckpointDamaged if every one is damaged)."""
    restored = store.latest()
    for line in store.passed_over:
        tell(line)
    if restored is None:
        tell(f"no checkpoint to continue from: {purpose} starts the run from its start")
    elif store.passed_over:
        tell(f"{purpose} continues from checkpoint {restored[0].generation}, the newest intact one")
    return restored


def _continue_from(job: Job, restored: tuple[Cut, Path] | None) -> None:
    """Point the pinned workers at the states to restore, and keep the checkpoint's
    pinned instances (each holds its own keys' state); the pool may have a new size."""
    job.options.restore_from = str(restored[1]) if restored else None
    if restored is None:
        return
    cut, plan = restored[0], job.plan
    pinned = tuple((pe, i) for pe, i in cut.pinned)
    if pinned != plan.pinned:
        pool = max(1, plan.processes - len(pinned)) if plan.pool else 0
        instances = {**plan.instances, **cut.instances}
        job.plan = replace(plan, instances=instances, pinned=pinned, pool=pool, processes=len(pinned) + pool)
