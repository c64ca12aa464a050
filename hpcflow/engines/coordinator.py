"""The multi-process engine on shared memory: static, dynamic and hybrid placements.

One coordinator (the calling process) and one process per pinned PE instance plus a
pool of workers. The plan decides the placement: `multi` pins every instance, `dyn_*`
pins only the roots (each called in order by one instance) and pools the rest, and
`hybrid_*` also pins every stateful instance. The coordinator is the broker: it keeps the
queued chunks (private queues for pinned instances, one shared queue per pool PE), hands
work to idle workers over a pipe each, counts every task for exact termination, replays
the chunks of a pool worker that died, throttles the roots when too much is queued, and
parks and wakes pool workers when an auto-scaler is given. A worker waiting for work
blocks in a pipe read: no polling, no CPU.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from ..autoscale import Observation, ServiceTimes, make_autoscaler
from ..errors import HpcflowError, RunAborted
from ..inputs import feed_length
from ..job import Job, Outcome, add_output
from ..metrics import cpu_seconds
from .protocol import (
    BYE,
    DONE,
    FAILED,
    FINALIZE,
    MAX_CHUNK,
    READY,
    STOP,
    WORK,
    Chunk,
    Report,
    chunk_limit,
    dumps,
    loads,
)
from .termination import Termination
from .worker import worker_main

DISPATCH_TARGET_S = 0.01  # work handed to a pool worker at once: small enough to balance
PINNED_DISPATCH_TASKS = MAX_CHUNK  # what a worker holds comes back as outputs: bounds memory
SAMPLE_S = 0.1  # timeline (and auto-scaler) sampling interval

STARTING, IDLE, BUSY, PARKED, STOPPING, EXITED = "starting", "idle", "busy", "parked", "stopping", "exited"


MAX_REPLAYS = 2  # a chunk that killed this many workers is not given out again


@dataclass
class Worker:
    id: int
    hosts: list[tuple[str, int]]  # the (pe, instance) it runs: one if pinned, every pool PE if not
    pool: bool
    proc: Any
    conn: Connection
    state: str = STARTING
    lease: list[Chunk] | None = None
    finalizing: tuple[str, int] | None = None
    active_since: float | None = None
    active_s: float = 0.0
    cpu_s: float = 0.0
    parked: bool = False  # an auto-scaled pool worker not given work; not active
    idle_since: float = 0.0

    @property
    def alive(self) -> bool:
        return self.state != EXITED

    def activate(self, now: float) -> None:
        if self.active_since is None:
            self.active_since = now

    def deactivate(self, now: float) -> None:
        if self.active_since is not None:
            self.active_s += now - self.active_since
            self.active_since = None


@dataclass
class Feed:
    """The not yet handed-out part of a root's inputs."""

    items: int | list
    sent: int = 0
    in_flight: bool = False

    @property
    def remaining(self) -> int:
        return feed_length(self.items) - self.sent

    def take(self, n: int) -> tuple[int, bytes | None]:
        n = min(n, self.remaining)
        if isinstance(self.items, int):
            blob = None
        else:
            blob = dumps(self.items[self.sent : self.sent + n])
        self.sent += n
        return n, blob


@dataclass
class Stats:
    items: Counter = field(default_factory=Counter)
    errors: list = field(default_factory=list)
    sinks: list = field(default_factory=list)
    timeline: list = field(default_factory=list)
    replaced: int = 0
    peak_queued: int = 0
    startup_s: float = 0.0  # until every first worker was ready
    tail_s: float = 0.0  # from the last task report to the end of the run


class Coordinator:
    def __init__(self, job: Job):
        self.job = job
        self.plan = plan = job.plan
        self.graph = job.graph
        self.options = job.options
        self.scaler = make_autoscaler(job.options.autoscale, max_workers=plan.pool) if job.mapping.autoscale else None
        self.service_times = ServiceTimes()
        self.ctx = multiprocessing.get_context(job.options.resolved_start_method)
        self.pe_index = {n: i for i, n in enumerate(plan.order)}
        self.service = self.ctx.RawArray("d", len(plan.order))
        pinned_pes = {pe for pe, _ in plan.pinned}
        self.pool_pes = [n for n in plan.order if n not in pinned_pes]
        self.pool_priority = self.pool_pes[::-1]  # downstream first: drains, bounds memory
        self.pool_queues: dict[str, deque[Chunk]] = {n: deque() for n in self.pool_pes}
        self.capacity = {n: plan.pool if n in self.pool_queues else plan.instances[n] for n in plan.order}
        self.pinned_queues: dict[tuple[str, int], deque[Chunk]] = {h: deque() for h in plan.pinned}
        self.queued = 0
        self.queued_by_pe: Counter = Counter()
        self.feeds = {r: Feed(job.feeds[r]) for r in plan.roots}
        upstream = {n: self.graph.predecessors(n) for n in plan.order}
        finalizers = Counter(pe for pe, _ in plan.pinned)
        self.term = Termination(plan.order, upstream, finalizers)
        for root, feed in self.feeds.items():
            self.term.created(root, feed.remaining)
        self.to_finalize: set[tuple[str, int]] = set()
        self.workers: dict[int, Worker] = {}
        self.replays: Counter = Counter()  # id(chunk) -> workers it was leased to that died
        self.next_id = 0
        self.stats = Stats()
        self.failure: HpcflowError | None = None
        self.signalled: int | None = None
        self.t0 = 0.0
        self.started_at: float | None = None  # when every first worker was ready
        self.last_report = 0.0  # when the last task report arrived

    # -- workers -------------------------------------------------------------
    def start_worker(self, pinned: tuple[str, int] | None = None) -> Worker:
        hosts = [pinned] if pinned else [(pe, 0) for pe in self.pool_pes]
        ours, theirs = self.ctx.Pipe(duplex=True)
        fork = self.ctx.get_start_method() == "fork"
        close = [ours] + [w.conn for w in self.workers.values() if w.alive] if fork else []
        proc = self.ctx.Process(
            target=worker_main,
            args=(theirs, self.graph, self.plan, self.options, hosts, self.service, close),
            name=f"hpcflow-{pinned[0]}[{pinned[1]}]" if pinned else f"hpcflow-worker-{self.next_id}",
            daemon=True,
        )
        proc.start()
        theirs.close()
        w = Worker(self.next_id, hosts, pinned is None, proc, ours)
        w.activate(time.perf_counter())
        self.next_id += 1
        self.workers[w.id] = w
        return w

    def send(self, w: Worker, msg: tuple) -> None:
        try:
            w.conn.send_bytes(dumps(msg))
        except (BrokenPipeError, ConnectionResetError, EOFError):
            pass  # its death is handled through its sentinel

    # -- queues --------------------------------------------------------------
    def enqueue(self, c: Chunk, front: bool = False) -> None:
        q = self.pool_queues[c.pe] if c.instance is None else self.pinned_queues[(c.pe, c.instance)]
        q.appendleft(c) if front else q.append(c)
        self.queued += c.count
        if self.queued > self.stats.peak_queued:
            self.stats.peak_queued = self.queued
        self.queued_by_pe[c.pe] += c.count

    def _dequeue(self, q: deque[Chunk]) -> Chunk:
        c = q.popleft()
        self.queued -= c.count
        self.queued_by_pe[c.pe] -= c.count
        return c

    def service_s(self, pe: str) -> float:
        return self.service[self.pe_index[pe]]

    def pool_work(self) -> list[Chunk]:
        """Chunks for one pool worker: downstream PEs first, about DISPATCH_TARGET_S of
        work, so no worker holds much more than that while others idle; while a PE's
        speed is unknown, one chunk (of one task) at a time."""
        chunks: list[Chunk] = []
        est = 0.0
        for pe in self.pool_priority:
            q = self.pool_queues[pe]
            svc = self.service_s(pe)
            while q:
                if chunks and est >= DISPATCH_TARGET_S:
                    return chunks
                c = self._dequeue(q)
                chunks.append(c)
                est += c.count * svc if svc > 0 else DISPATCH_TARGET_S
        return chunks

    def backlogged(self) -> bool:
        """Whether the roots must wait: too many tasks queued, or a PE with more queued
        work per instance than max_backlog_s (bounds memory, latency and the drain on
        SIGTERM whatever the PEs' speeds)."""
        if self.queued >= self.options.max_queued:
            return True
        limit = self.options.max_backlog_s
        for pe, n in self.queued_by_pe.items():
            if n and n * self.service_s(pe) > limit * self.capacity[pe]:
                return True
        return False

    def pinned_work(self, host: tuple[str, int]) -> list[Chunk]:
        pe, _ = host
        feed = self.feeds.get(pe)
        if feed is not None:
            if feed.in_flight or feed.remaining == 0 or self.backlogged():
                return []
            n, blob = feed.take(chunk_limit(self.service_s(pe)))
            feed.in_flight = True
            return [Chunk(pe, 0, n, blob)]
        q = self.pinned_queues[host]
        chunks, tasks = [], 0
        while q and tasks < PINNED_DISPATCH_TASKS:
            c = self._dequeue(q)
            chunks.append(c)
            tasks += c.count
        return chunks

    # -- dispatch ------------------------------------------------------------
    def dispatch(self) -> None:
        idle = [w for w in self.workers.values() if w.state == IDLE and not w.parked]
        for w in idle:
            if w.pool:
                chunks = self.pool_work()
            else:
                host = w.hosts[0]
                chunks = self.pinned_work(host)
                if not chunks and host in self.to_finalize:
                    self.to_finalize.discard(host)
                    w.finalizing = host
                    w.state = BUSY
                    self.send(w, (FINALIZE, *host))
                    continue
            if chunks:
                w.lease = chunks
                w.state = BUSY
                self.send(w, (WORK, chunks))

    def finalize_ready(self) -> None:
        for pe in self.term.ready_to_finalize():
            for host in self.plan.pinned:
                if host[0] == pe:
                    self.to_finalize.add(host)

    # -- events --------------------------------------------------------------
    def on_message(self, w: Worker) -> None:
        try:
            msg = loads(w.conn.recv_bytes())
        except (EOFError, OSError):
            self.on_exit(w)
            return
        kind = msg[0]
        if kind == READY:
            w.cpu_s = msg[1]
            w.state = IDLE
            w.idle_since = time.perf_counter()
            if self.started_at is None and all(x.state != STARTING for x in self.workers.values()):
                self.started_at = time.perf_counter()
        elif kind == DONE:
            self.on_report(w, msg[1])
        elif kind == FAILED:
            w.cpu_s = msg[2]
            if self.failure is None:
                self.failure = msg[1]
            w.state = STOPPING
        elif kind == BYE:
            w.cpu_s = msg[1]
            w.state = STOPPING

    def on_report(self, w: Worker, report: Report) -> None:
        for c in report.outputs:
            self.term.created(c.pe, c.count)
            self.enqueue(c)
        for c in w.lease or ():
            self.term.completed(c.pe, c.count)
            feed = self.feeds.get(c.pe)
            if feed is not None:
                feed.in_flight = False
        for pe, n, busy in report.stats:
            self.stats.items[pe] += n
            if n:
                self.service_times.record(pe, busy / n)
                self.service[self.pe_index[pe]] = self.service_times.get(pe)
        self.stats.sinks.extend(report.sinks)
        self.stats.errors.extend(report.errors)
        w.cpu_s = report.cpu_s
        self.last_report = now = time.perf_counter()
        w.lease = None
        w.state = IDLE
        w.idle_since = now
        if self.scaler is not None:
            self.rescale(w, now)
        if w.finalizing is not None:
            self.term.finalized(*w.finalizing)
            w.finalizing = None
            w.state = STOPPING  # a finalized instance has nothing more to do
            self.send(w, (STOP,))

    def on_exit(self, w: Worker) -> None:
        if w.state == EXITED:
            return
        now = time.perf_counter()
        w.proc.join(timeout=1)
        w.deactivate(now)
        expected = w.state == STOPPING or self.failure is not None
        lost = w.lease
        w.state = EXITED
        w.conn.close()
        if expected:
            return
        code = w.proc.exitcode
        why = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        if not w.pool:
            pe, inst = w.hosts[0]
            self.failure = RunAborted(
                f"the process of PE {pe}[{inst}] died ({why}); a pinned instance's state cannot be "
                "recovered, so the run stops"
            )
            return
        for c in lost or []:
            self.replays[id(c)] += 1
            if self.replays[id(c)] >= MAX_REPLAYS:
                self.failure = RunAborted(
                    f"a chunk of {c.count} item(s) for PE {c.pe} was running in {MAX_REPLAYS} workers "
                    f"that died (last: {why}); not retrying it"
                )
                return
        for c in reversed(lost or []):  # replayed whole: the dead worker sent none of its outputs
            self.enqueue(c, front=True)
        self.stats.replaced += 1
        self.start_worker()

    # -- auto-scaling --------------------------------------------------------
    def pool_workers(self) -> list[Worker]:
        return [w for w in self.workers.values() if w.pool and w.alive and w.state != STOPPING]

    def park(self, w: Worker, now: float) -> None:
        w.parked = True
        w.deactivate(now)

    def wake(self, w: Worker, now: float) -> None:
        w.parked = False
        w.activate(now)
        w.idle_since = now

    def observe(self, now: float, pool: list[Worker]) -> Observation:
        """The pool as the auto-scaler sees it. Idle means active and not running a
        task: waiting for one, or still starting."""
        active = [w for w in pool if not w.parked]
        idle = [w for w in active if w.state != BUSY]
        queued_by_pe = {pe: self.queued_by_pe[pe] for pe in self.pool_pes if self.queued_by_pe[pe]}
        return Observation(
            t=now - self.t0,
            queued=sum(queued_by_pe.values()),
            active=len(active),
            busy=len(active) - len(idle),
            queued_by_pe=queued_by_pe,
            service_s=self.service_times.snapshot(),
            idle_s=sum(now - w.idle_since for w in idle) / len(active) if active else 0.0,
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
            idle = sorted((w for w in active if w.state != BUSY), key=lambda w: w.idle_since)  # longest idle first
            for w in idle[: len(active) - target]:
                self.park(w, now)

    def rescale(self, w: Worker, now: float) -> None:
        """After a report, between steps: ask the scaler's `demand` when work is queued
        for the pool while workers are parked, or when the pool has nothing queued (the
        reporting worker has nothing to do); wake parked workers up to its answer, then
        park the reporting worker if the pool is above it. A burst arriving just after a
        step would otherwise wait up to a whole interval for workers, and a worker left
        idle stay active as long."""
        pool = self.pool_workers()
        pool_queued = any(self.queued_by_pe[pe] for pe in self.pool_pes)
        if (pool_queued and any(x.parked for x in pool)) or (w.pool and not pool_queued):
            self.wake_up_to(self.scaler.demand(self.observe(now, pool)), pool, now)
        if w.pool and not w.parked and sum(1 for x in pool if not x.parked) > self.scaler.target:
            self.park(w, now)

    def wake_up_to(self, target: int, pool: list[Worker], now: float) -> None:
        parked = [w for w in pool if w.parked]
        for w in parked[: max(0, target - (len(pool) - len(parked)))]:
            self.wake(w, now)

    # -- signals -------------------------------------------------------------
    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.signalled is not None:  # a second signal: stop now
            self.failure = self.failure or RunAborted(f"stopped by signal {signum}")
        self.signalled = signum

    def stop_sources(self) -> None:
        """Stop feeding the roots; what is in flight still drains and postprocess() runs."""
        for root, feed in self.feeds.items():
            left = feed.remaining
            if left:
                feed.sent += left
                self.term.cancel_pending(root, left)

    # -- the loop ------------------------------------------------------------
    def run(self) -> Outcome:
        cpu0 = cpu_seconds()
        self.t0 = time.perf_counter()
        handlers = self._install_signal_handlers()
        try:
            for host in self.plan.pinned:
                self.start_worker(host)
            for _ in range(self.plan.pool):
                self.start_worker()
            if self.scaler is not None:
                now = time.perf_counter()
                for w in self.pool_workers()[self.scaler.initial() :]:
                    self.park(w, now)
            self.loop()
        finally:
            self.shutdown()
            self._restore_signal_handlers(handlers)
        end = time.perf_counter()
        self.stats.startup_s = (self.started_at or end) - self.t0
        self.stats.tail_s = end - max(self.last_report, self.t0)
        return self.outcome(end - self.t0, cpu_seconds() - cpu0)

    def loop(self) -> None:
        next_sample = self.t0
        next_scale = self.t0 if self.scaler is not None else float("inf")  # t0 forever would spin the loop
        interval = self.scaler.interval if self.scaler is not None else float("inf")
        stopping_sources = False
        while self.failure is None:
            if self.signalled is not None and not stopping_sources:
                stopping_sources = True
                self.stop_sources()
            self.finalize_ready()
            if self.term.all_done:
                break
            now = time.perf_counter()
            if self.scaler is not None and now >= next_scale:
                self.autoscale(now)
                next_scale = now + interval
            self.dispatch()
            if now >= next_sample:
                self.sample(now)
                next_sample = now + SAMPLE_S
            live = [w for w in self.workers.values() if w.alive]
            waitables = {w.conn: w for w in live}
            sentinels = {w.proc.sentinel: w for w in live}
            timeout = max(0.0, min(next_sample, next_scale) - time.perf_counter())
            ready = wait(list(waitables) + list(sentinels), timeout=timeout)
            for obj in ready:
                if obj in waitables:
                    self.on_message(waitables[obj])
            for obj in ready:
                if obj in sentinels:
                    w = sentinels[obj]
                    if w.alive and not w.conn.poll():
                        self.on_exit(w)
        if self.failure is None and self.signalled is not None:
            name = signal.Signals(self.signalled).name
            self.failure = RunAborted(
                f"stopped by {name}: sources stopped, in-flight work drained", exit_code=128 + self.signalled
            )

    def sample(self, now: float) -> None:
        active = sum(1 for w in self.workers.values() if w.active_since is not None)
        self.stats.timeline.append([round(now - self.t0, 4), active, self.queued])

    def shutdown(self) -> None:
        """Stop every worker: STOP and wait for BYE normally, kill them after a failure."""
        live = [w for w in self.workers.values() if w.alive]
        if self.failure is not None:
            for w in live:
                if w.proc.is_alive():
                    w.proc.kill()
        else:
            for w in live:
                if w.state != STOPPING:
                    w.state = STOPPING
                    self.send(w, (STOP,))
        deadline = time.perf_counter() + 10
        while any(w.alive for w in self.workers.values()):
            live = [w for w in self.workers.values() if w.alive]
            conns = {w.conn: w for w in live}
            sentinels = {w.proc.sentinel: w for w in live}
            ready = wait(list(conns) + list(sentinels), timeout=max(0.0, deadline - time.perf_counter()))
            if not ready:
                for w in live:
                    w.proc.kill()
                    self.on_exit(w)
                break
            for obj in ready:
                w = conns.get(obj) or sentinels.get(obj)
                if not w.alive:
                    continue
                if obj in conns:
                    try:
                        msg = loads(w.conn.recv_bytes())
                    except (EOFError, OSError):
                        self.on_exit(w)
                        continue
                    if msg[0] in (BYE, FAILED):
                        w.cpu_s = msg[-1]
                else:
                    self.on_exit(w)

    def outcome(self, runtime: float, coordinator_cpu: float) -> Outcome:
        outputs: dict[str, dict[str, list]] = {}
        for pe, port, blob in self.stats.sinks:
            for item in loads(blob):
                add_output(outputs, pe, port, item)
        workers = list(self.workers.values())
        return Outcome(
            outputs=outputs,
            items=dict(self.stats.items),
            runtime_s=runtime,
            process_time_s=sum(w.active_s for w in workers),
            cpu_time_s=sum(w.cpu_s for w in workers) + coordinator_cpu,
            timeline=self.stats.timeline,
            errors=self.stats.errors,
            extra={
                "coordinator_cpu_s": round(coordinator_cpu, 4),
                "workers_started": len(workers),
                "workers_replaced": self.stats.replaced,
                "peak_queued": self.stats.peak_queued,
                "startup_s": round(self.stats.startup_s, 4),
                "tail_s": round(self.stats.tail_s, 4),
                **self.autoscale_metrics(),
            },
            failure=self.failure if isinstance(self.failure, HpcflowError) else None,
        )

    def autoscale_metrics(self) -> dict[str, Any]:
        if self.scaler is None:
            return {}
        return {
            "autoscale": self.scaler.name,
            "autoscale_timeline": [[round(t, 4), n] for t, n in self.scaler.history],  # [t, target]
        }

    def _install_signal_handlers(self) -> dict:
        if threading.current_thread() is not threading.main_thread():
            return {}
        old = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            old[sig] = signal.signal(sig, self._on_signal)
        return old

    @staticmethod
    def _restore_signal_handlers(old: dict) -> None:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def execute(job: Job) -> Outcome:
    return Coordinator(job).run()
