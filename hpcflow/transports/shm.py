"""The shared-memory transport: the coordinator is the broker.

It keeps the queued chunks in memory (a private queue per pinned instance, one shared
queue per pool PE) and hands them to idle workers over one pipe each, in doses of about
DISPATCH_TARGET_S of work (by measured service time; one chunk while a PE is unmeasured)
for pinned instances as for the pool, so consecutive stages overlap. A pinned worker
whose own queue is empty gets pool work, if the run has a pool. The workers send their
outputs and reports back on the same pipe. A worker waiting for work blocks in a pipe
read: no polling, no CPU. Measured service times reach the workers through one shared
array.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from ..engines.protocol import DONE, EXITED, FINALIZE, OUTPUT, READY, STOP, WORK, Chunk, Delivery, Report, dumps, loads
from ..engines.worker import start_worker_process
from ..job import Job
from .base import (
    DISPATCH_TARGET_S,
    MAX_REPLAYS,
    Broker,
    Channel,
    ChannelClosed,
    is_pool,
    pool_pes,
    reap,
    replay_limit,
    replay_of,
)

AHEAD_BYTES = 32 << 10  # a dose sent ahead to a busy worker: far below a pipe's buffer (about 200 KB)


class PipeChannel(Channel):
    def __init__(self, conn: Connection, service_s: Any, inherited: list[Connection]):
        self.conn = conn
        self.service_s = service_s
        self.inherited = inherited  # the coordinator's pipe ends a forked child must close

    def open(self) -> None:
        for c in self.inherited:
            c.close()
        self.inherited = []

    def send(self, msg: tuple) -> None:
        try:
            self.conn.send_bytes(dumps(msg))
        except (BrokenPipeError, ConnectionResetError, EOFError):
            raise ChannelClosed from None

    def receive(self, work: bool = True) -> tuple:
        try:  # (work sent ahead, while the worker is busy, waits here in order)
            return loads(self.conn.recv_bytes())
        except (EOFError, OSError):
            raise ChannelClosed from None

    def deliver(self, deliveries: list[Delivery]) -> None:
        self.send((OUTPUT, deliveries))

    def complete(self, report: Report) -> None:
        self.send((DONE, report))

    def close(self) -> None:
        self.conn.close()


@dataclass
class Slot:
    """What the broker knows of one local worker."""

    hosts: list[tuple[str, int]]
    proc: BaseProcess
    conn: Connection
    pool: bool
    ready: bool = False
    lease: list[Chunk] | None = None  # what it runs now (empty for postprocess)
    ahead: list[Chunk] | None = None  # its next dose, sent before it finished the current one
    parked: bool = False
    idle_since: float = 0.0
    gone: bool = False
    stopping: bool = False
    deferred: tuple | None = None  # a FINALIZE for when its current work is done


class ShmBroker(Broker):
    def __init__(self, job: Job, ctx: Any):
        super().__init__()
        self.job = job
        self.ctx = ctx
        plan = job.plan
        self.pe_index = {n: i for i, n in enumerate(plan.order)}
        self.service = ctx.RawArray("d", len(plan.order))
        self.pool_priority = pool_pes(plan)[::-1]  # downstream first: drains, bounds memory
        self.pool_queues: dict[str, deque[Chunk]] = {n: deque() for n in self.pool_priority}
        self.pinned_queues: dict[tuple[str, int], deque[Chunk]] = {h: deque() for h in plan.pinned}
        self.slots: dict[int, Slot] = {}
        self.replays: Counter = Counter()  # chunk id -> workers it was leased to that died
        self.helping = plan.pool > 0 and job.options.help_pool  # pinned workers run pool work when idle
        self.ids = 0

    def open(self) -> None:
        """Nothing to prepare: the queues live in this process."""

    def close(self) -> None:
        reap(s.proc for s in self.slots.values())

    # -- workers -------------------------------------------------------------
    def new_worker_id(self) -> int:
        self.ids += 1
        return self.ids - 1

    def start_worker(self, wid: int, hosts: list[tuple[str, int]], name: str) -> None:
        ours, theirs = self.ctx.Pipe(duplex=True)
        fork = self.ctx.get_start_method() == "fork"
        inherited = [ours] + [s.conn for s in self.slots.values() if not s.gone] if fork else []
        job = (self.job.graph, self.job.plan, self.job.options)
        proc = start_worker_process(self.ctx, PipeChannel(theirs, self.service, inherited), job, hosts, name)
        theirs.close()
        self.slots[wid] = Slot(hosts, proc, ours, is_pool(self.job.plan, hosts))

    def send(self, wid: int, msg: tuple) -> None:
        s = self.slots[wid]
        if msg[0] == FINALIZE:
            if s.lease is not None:  # a pinned worker running pool work: after that
                s.deferred = msg
                return
            s.lease = []
        elif msg[0] == STOP:
            s.stopping = True  # given no more work
        self._write(s, msg)

    def _write(self, s: Slot, msg: tuple) -> None:
        try:
            s.conn.send_bytes(dumps(msg))
        except (OSError, EOFError):  # a broken pipe, or closed by poll() before its EXITED is handled
            pass  # its death is reported through its sentinel

    def kill(self, wids: list[int]) -> None:
        for wid in wids:
            s = self.slots[wid]
            if s.proc.is_alive():
                s.proc.kill()

    # -- events --------------------------------------------------------------
    def poll(self, timeout: float) -> list[tuple[int, tuple]]:
        live = {wid: s for wid, s in self.slots.items() if not s.gone}
        conns = {s.conn: wid for wid, s in live.items()}
        sentinels = {s.proc.sentinel: wid for wid, s in live.items()}
        events = []
        ready = wait(list(conns) + list(sentinels), timeout=timeout)
        for obj in ready:
            if obj in conns:
                wid = conns[obj]
                try:
                    msg = loads(obj.recv_bytes())
                except (EOFError, OSError):
                    events.append((wid, self._exited(wid)))
                    continue
                if msg[0] == READY and self.slots[wid].lease is None:
                    self.slots[wid].ready = True
                    self.slots[wid].idle_since = time.perf_counter()
                events.append((wid, msg))
        for obj in ready:
            if obj in sentinels:
                wid = sentinels[obj]
                s = self.slots[wid]
                if not s.gone and not s.conn.poll():
                    events.append((wid, self._exited(wid)))
        return events

    def _exited(self, wid: int) -> tuple:
        s = self.slots[wid]
        s.gone = True
        s.proc.join(timeout=1)
        s.conn.close()
        code = s.proc.exitcode
        return (EXITED, f"signal {-code}" if code is not None and code < 0 else f"exit code {code}")

    # -- queues --------------------------------------------------------------
    def enqueue(self, c: Chunk, front: bool = False) -> None:
        q = self.pool_queues[c.pe] if c.instance is None else self.pinned_queues[(c.pe, c.instance)]
        q.appendleft(c) if front else q.append(c)
        self.count_queued(c.pe, c.count)

    def _dequeue(self, q: deque[Chunk]) -> Chunk:
        c = q.popleft()
        self.count_queued(c.pe, -c.count)
        return c

    submit = enqueue

    def deliver(self, wid: int, chunks: list[Chunk]) -> None:
        for c in chunks:
            self.enqueue(c)

    def accept(self, wid: int, report: Report) -> None:
        s = self.slots[wid]
        for c in s.lease or ():
            self.replays.pop(c.id, None)
        s.lease, s.ahead = s.ahead, None  # reports come in the order the doses were sent
        if s.lease is not None:
            return
        s.ready = True
        s.idle_since = time.perf_counter()
        if s.deferred is not None:
            msg, s.deferred = s.deferred, None
            self.send(wid, msg)

    def publish_service(self, pe: str, seconds: float) -> None:
        self.service[self.pe_index[pe]] = seconds

    def pool_work(self, max_bytes: float = float("inf")) -> list[Chunk]:
        """Chunks for one pool worker (or an idle pinned one): downstream PEs first."""
        return self._dose([self.pool_queues[pe] for pe in self.pool_priority], max_bytes)

    def _dose(self, queues: list[deque[Chunk]], max_bytes: float = float("inf")) -> list[Chunk]:
        """About DISPATCH_TARGET_S of work from these queues, in order, so no worker holds
        much more than that while others idle (and a pinned instance passes its outputs
        on as it goes); while a PE's speed is unknown, one chunk (of one task) at a
        time. A chunk replayed after its worker died goes alone, so that if it kills
        again, the error names its PE. At most `max_bytes` of pickled tasks."""
        chunks: list[Chunk] = []
        est, nbytes = 0.0, 0
        for q in queues:
            while q:
                if chunks and (est >= DISPATCH_TARGET_S or self.replays[q[0].id]):
                    return chunks
                nbytes += q[0].nbytes
                if nbytes > max_bytes:
                    return chunks
                c = self._dequeue(q)
                chunks.append(c)
                if self.replays[c.id]:
                    return chunks
                svc = self.service[self.pe_index[c.pe]]
                est += c.count * svc if svc > 0 else DISPATCH_TARGET_S
        return chunks

    def dispatch(self) -> None:
        for s in self.slots.values():
            if not s.ready or s.lease is not None or s.parked or s.gone or s.stopping:
                continue
            chunks = self.pool_work() if s.pool else self._dose([self.pinned_queues[s.hosts[0]]])
            if not chunks and not s.pool and self.helping:
                chunks = self.pool_work()
            if chunks:
                s.lease = chunks
                self._write(s, (WORK, chunks))
        self._prefetch()

    def _prefetch(self) -> None:
        """Send a busy worker its next dose before it finishes the current one, so that it
        never waits for a round trip: a pinned instance its own next work (a root its next
        inputs), a pool worker pool work while the queues hold a chunk for every pool
        worker (so what one holds ahead is never what an idle one lacks at the end). A
        dose ahead holds at most AHEAD_BYTES: a busy worker does not read its pipe, and a
        write that fills it would block the coordinator while that worker waits for it to
        read its outputs (a bigger dose waits for the worker to be idle, as before)."""
        surplus = sum(len(q) for q in self.pool_queues.values()) - sum(1 for s in self.slots.values() if s.pool)
        for s in self.slots.values():
            if not s.lease or s.ahead is not None or s.parked or s.gone or s.stopping or s.deferred:
                continue
            if s.pool:
                if surplus < 0:
                    continue
                chunks = self.pool_work(AHEAD_BYTES)
                surplus -= len(chunks)
            else:
                chunks = self._dose([self.pinned_queues[s.hosts[0]]], AHEAD_BYTES)
            if chunks:
                s.ahead = chunks
                self._write(s, (WORK, chunks))

    # -- auto-scaling and faults ---------------------------------------------
    def park(self, wid: int) -> None:
        self.slots[wid].parked = True

    def wake(self, wid: int) -> None:
        s = self.slots[wid]
        s.parked = False
        s.idle_since = time.perf_counter()

    def idle_times(self, wids: list[int], now: float) -> dict[int, float | None]:
        out: dict[int, float | None] = {}
        for wid in wids:
            s = self.slots[wid]
            out[wid] = None if s.lease is not None else (now - s.idle_since if s.ready else 0.0)
        return out

    def pending(self, delivered: Callable[[int], int]) -> list[Chunk]:
        held = [
            c._replace(resume=delivered(c.id))
            for s in self.slots.values()
            if not s.gone
            for c in (*(s.lease or ()), *(s.ahead or ()))
        ]
        queued = [c for q in (*self.pinned_queues.values(), *self.pool_queues.values()) for c in q]
        return held + queued

    def pid(self, wid: int) -> int | None:
        return self.slots[wid].proc.pid

    def recover(self, wid: int, why: str, delivered: Callable[[int], int]) -> None:
        s = self.slots[wid]
        for c in s.lease or ():  # (its dose ahead had not started)
            self.replays[c.id] += 1
            if self.replays[c.id] >= MAX_REPLAYS:
                raise replay_limit(c, why)
        for c in reversed([*(s.lease or ()), *(s.ahead or ())]):  # what the dead worker delivered is not sent again
            self.enqueue(replay_of(c, delivered(c.id)), front=True)
