"""The coordinator's side of the Redis transport.

Streams (see `keys`): one per pool PE, so a worker can take downstream work first and
the queue of each PE is visible on its own; one per pinned instance (a root's inputs, a
stateful instance's items); one control stream per worker; one events stream that
every worker reports to and only the coordinator reads. The coordinator writes a root's
next chunk of inputs and the workers' commands; everything else the workers move
themselves, and each batch's outputs, acknowledgements and report land in one atomic
script, so the report's counts are exact for termination.

A worker that dies leaves its taken entries pending in their consumer group. Whoever
declares it gone first fences it (`fenced`): its supervisor, with the EXITED it reports,
or this broker, when a local worker's process sentinel fires or a joined node's
heartbeat expires. Then the events it sent before are read, its EXITED follows them,
and the coordinator replays what it held: nothing it sends later can land beside the
replay. No lease with a minimum idle time (XAUTOCLAIM) is used: a task longer than the
lease would be run twice.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import redis

from ...batch.allocation import detect_allocation
from ...engines.protocol import BYE, EXITED, FAILED, JOINED, PARK, REJECTED, STOP, WAKE, Chunk, Report
from ...engines.worker import start_worker_process
from ...errors import UsageError
from ...job import Job
from ...redact import write_private
from ..base import MAX_REPLAYS, Broker, is_pool, pool_pes, reap, replay_limit, replay_of
from .channel import RedisChannel, client
from .fenced import grant, write_off
from .keys import GROUP, HEARTBEAT_S, HEARTBEAT_TTL_MS, RunKeys, check_run_id, consumer, delete_run_keys, new_run_id
from .leftovers import hold, sweep_run_dir
from .server import AUTO, PrivateServer, connect
from .shipping import ship
from .signing import Signer, key_from_env, new_key, url_file, write_key_file

POLL_S = 0.1  # longest blocking read of the events: a local worker's death is seen this fast
EVENTS_BATCH = 1000
log = logging.getLogger("hpcflow.redis")


class ServerReset(redis.ConnectionError):
    """The server answers but no longer holds the run's keys: it was restarted (without
    persistence) or flushed while the run went on."""


class RedisBroker(Broker):
    # a connection lost or timed out (a server killed, paused, unreachable), or an error
    # reply to the coordinator's own commands (NOGROUP: a server restarted empty)
    lost = (redis.ConnectionError, redis.TimeoutError, redis.ResponseError)
    pauses_pool = True  # workers queue their outputs themselves

    def __init__(self, job: Job, ctx: Any):
        super().__init__()
        self.job = job
        self.ctx = ctx
        self.setup = (job.graph, job.plan, job.options)
        self.keys = RunKeys(check_run_id(job.options.run_id or new_run_id()))
        self.signer = Signer(key_from_env() or new_key(), self.keys.run_id)
        self.pool_work = [(self.keys.pool(pe), pe) for pe in reversed(pool_pes(job.plan))]  # downstream first
        self.url = ""
        self.server: PrivateServer | None = None
        self.r: redis.Redis | None = None
        self.procs: dict[int, BaseProcess] = {}
        self.groups: dict[int, str] = {}  # joined worker -> its `hpcflow worker` group
        self.gone: set[int] = set()
        self.later: list[tuple[int, tuple]] = []  # events made here, for the next poll
        self.last_event = b"0-0"
        self.service: dict[str, float] = {}
        self.next_heartbeat = 0.0
        self.rejected_by_workers = 0
        self.server_cpu = 0.0
        self.key_lock: int | None = None

    # -- the run's keys ---------------------------------------------------------
    def open(self) -> None:
        url = self.job.options.redis_url or AUTO
        if url == AUTO:
            # worker jobs of an elastic run may land on other nodes: bind this node's address too
            other_nodes = detect_allocation().nodes > 1 or self.job.options.elastic is not None
            self.server = PrivateServer(several_nodes=other_nodes)
            url = self.server.url
        self.url = url
        connect(url).close()  # a clear UsageError if the server went away since the run was prepared
        self.r = client(url, "hpcflow-coordinator")
        if self.r.exists(self.keys.setup):
            self.r = None  # the keys are another run's: leave them alone
            raise UsageError(f"run id {self.keys.run_id} is in use on this Redis server")
        p = self.r.pipeline(transaction=True)
        for stream, _ in self.pool_work:
            p.xgroup_create(stream, GROUP, id="0", mkstream=True)
        for pe, instance in self.job.plan.pinned:
            p.xgroup_create(self.keys.pinned(pe, instance), GROUP, id="0", mkstream=True)
        p.hset(self.keys.setup, mapping=self.signer.pack_bytes(self.keys.setup, ship(self.setup)))
        key_file = self.job.options.key_file
        if key_file:
            sweep_run_dir(key_file)  # what a killed launcher left in this run directory
            write_key_file(key_file, self.signer.key)
            self.key_lock = hold(key_file)  # until close(), or this process's death
            p.set(self.keys.key_file, str(key_file))
            if self.server is not None:  # `hpcflow worker --redis-url auto` finds the private server here
                write_private(url_file(key_file), url)
        p.execute()

    def close(self) -> None:
        try:
            if self.r is not None:
                try:
                    delete_run_keys(self.r, self.keys)
                except self.lost:
                    pass  # the server is gone, and its keys with it
                self.r.close()
            reap(self.procs.values())  # also when no exit event could come through
        finally:
            key_file = self.job.options.key_file
            if self.key_lock is not None:  # the run is over: its key and URL are of no use
                Path(key_file).unlink(missing_ok=True)
                url_file(key_file).unlink(missing_ok=True)
                os.close(self.key_lock)
                self.key_lock = None
            if self.server is not None:
                self.server.stop()
                self.server_cpu = self.server.cpu

    # -- workers ----------------------------------------------------------------
    def new_worker_id(self) -> int:
        return self.r.incr(self.keys.ids) - 1

    def start_worker(self, wid: int, hosts: list[tuple[str, int]], name: str) -> None:
        pinned = not is_pool(self.job.plan, hosts)
        work = self.pool_work
        if pinned:  # its own stream first; the pool's when it may help (protocol: own work first)
            work = [(self.keys.pinned(*hosts[0]), hosts[0][0])] + (self.pool_work if self.job.options.help_pool else [])
        token = grant(self.r, self.keys, wid)
        run_id, key = self.keys.run_id, self.signer.key
        channel = RedisChannel(self.url, run_id, key, wid, token, work, pinned, self.job.plan.order)
        self.procs[wid] = start_worker_process(self.ctx, channel, self.setup, hosts, name)

    def send(self, wid: int, msg: tuple) -> None:
        ctl = self.keys.control(wid)
        self.r.xadd(ctl, self.signer.pack(ctl, msg))

    def park(self, wid: int) -> None:
        self.send(wid, (PARK,))

    def wake(self, wid: int) -> None:
        self.send(wid, (WAKE,))

    def kill(self, wids: list[int]) -> None:
        for wid in wids:
            proc = self.procs.get(wid)
            if proc is not None:
                if proc.is_alive():
                    proc.kill()
            elif wid not in self.gone:  # a joined worker: asked to stop, and written off now
                try:
                    self.send(wid, (STOP,))
                    write_off(self.r, self.keys, [wid])
                except self.lost:
                    pass  # through a lost server: its lease ends with its heartbeat
                self.gone.add(wid)
                self.later.append((wid, (EXITED, "stopped after the run failed")))

    # -- events -----------------------------------------------------------------
    def poll(self, timeout: float) -> list[tuple[int, tuple]]:
        events, self.later = self.later, []
        if self.service:
            self.r.hset(self.keys.service, mapping=self.service)
            self.service = {}
        block = None if events or timeout <= 0 else max(1, int(min(timeout, POLL_S) * 1000))
        events += self._read(block)
        events += self._deaths(events)
        if time.monotonic() >= self.next_heartbeat:
            self.next_heartbeat = time.monotonic() + HEARTBEAT_S
            self.r.set(self.keys.coordinator_alive, 1, px=HEARTBEAT_TTL_MS)
            events += self._silent_nodes()
        return events

    def _read(self, block: int | None) -> list[tuple[int, tuple]]:
        stream = self.keys.events
        p = self.r.pipeline(transaction=False)
        p.xtrim(stream, minid=self.last_event, approximate=False)  # what was read is not kept
        p.xread({stream: self.last_event}, count=EVENTS_BATCH, block=block)
        replies = p.execute()[-1]
        events = []
        full = False
        for _, entries in replies or ():
            full = len(entries) == EVENTS_BATCH
            for eid, fields in entries:
                self.last_event = eid
                ok, event = self.signer.unpack_once(stream, fields)
                if not ok:
                    continue
                wid, msg = event
                if msg[0] == REJECTED:
                    self.rejected_by_workers += msg[1]
                    continue
                if msg[0] == JOINED:
                    self.groups[wid] = msg[1]
                    log.info("worker %d joined from %s (pid %d)", wid, msg[2], msg[3])
                elif msg[0] == EXITED:
                    if wid in self.gone:
                        continue
                    self.gone.add(wid)
                events.append((wid, msg))
        return events + self._read(None) if full else events  # the rest, in order

    def _deaths(self, events: list[tuple[int, tuple]]) -> list[tuple[int, tuple]]:
        """EXITED for local workers whose process ended, after everything they sent: those
        whose sentinel fired, and those that just said goodbye (BYE, FAILED), which exit
        at once (waiting for it here saves a poll interval at the end of every run)."""
        live = {p.sentinel: wid for wid, p in self.procs.items() if wid not in self.gone}
        dead = [live[s] for s in wait(list(live), timeout=0)] if live else []
        leaving = [wid for wid, msg in events if msg[0] in (BYE, FAILED) and wid in self.procs and wid not in dead]
        if not dead and not leaving:
            return []
        write_off(self.r, self.keys, dead)
        more = self._read(None) if dead else []  # their last messages come before their deaths
        for wid in dead + leaving:
            proc = self.procs[wid]
            proc.join(timeout=1)
            if proc.exitcode is None:
                continue  # still going: its sentinel will tell
            code = proc.exitcode
            self.gone.add(wid)
            more.append((wid, (EXITED, f"signal {-code}" if code < 0 else f"exit code {code}")))
        return more

    def _silent_nodes(self) -> list[tuple[int, tuple]]:
        """EXITED for the workers of a joined group whose heartbeat expired."""
        live: dict[str, list[int]] = {}
        for wid, group in self.groups.items():
            if wid not in self.gone:
                live.setdefault(group, []).append(wid)
        lost = {group: wids for group, wids in live.items() if not self.r.exists(self.keys.alive(group))}
        if not lost:
            return []
        write_off(self.r, self.keys, [wid for wids in lost.values() for wid in wids])
        events = self._read(None)  # what they sent before they were fenced comes first
        for group, wids in lost.items():
            for wid in wids:
                if wid not in self.gone:
                    self.gone.add(wid)
                    events.append((wid, (EXITED, f"its node ({group}) stopped answering")))
        return events

    # -- queues -----------------------------------------------------------------
    def submit(self, chunk: Chunk) -> None:
        stream = self.keys.stream_of(chunk.pe, chunk.instance)
        self.r.xadd(stream, self.signer.pack(stream, (*chunk, 0)))
        self.count_queued(chunk.pe, chunk.count)

    def deliver(self, wid: int, chunks: list[Chunk]) -> None:
        for c in chunks:  # the worker queued them itself
            self.count_queued(c.pe, c.count)

    def accept(self, wid: int, report: Report) -> None:
        for pe, n, _ in report.stats:
            self.count_queued(pe, -n)
        for pe, n in report.dropped:
            self.count_queued(pe, -n)

    def publish_service(self, pe: str, seconds: float) -> None:
        self.service[pe] = seconds

    def dispatch(self) -> None:
        """Nothing to do: workers take their work from the streams."""

    def idle_times(self, wids: list[int], now: float) -> dict[int, float | None]:
        """From XINFO CONSUMERS of the pool streams: a worker with pending entries is busy;
        otherwise idle since its last read (`inactive` from Redis 7.2, `idle` before)."""
        p = self.r.pipeline(transaction=False)
        for stream, _ in self.pool_work:
            p.xinfo_consumers(stream, GROUP)
        pending: dict[str, int] = {}
        idle: dict[str, float] = {}
        for consumers in p.execute():
            for c in consumers:
                name = c["name"].decode() if isinstance(c["name"], bytes) else c["name"]
                pending[name] = pending.get(name, 0) + c["pending"]
                ms = c.get("inactive", -1)
                ms = c["idle"] if ms is None or ms < 0 else ms
                idle[name] = min(idle.get(name, ms), ms)
        out: dict[int, float | None] = {}
        for wid in wids:
            name = consumer(wid)
            out[wid] = None if pending.get(name) else idle.get(name, 0) / 1000
        return out

    def pending(self, delivered: Callable[[int], int]) -> list[Chunk]:
        """Every entry of the work streams: with every worker paused at the end of a
        batch, what was taken is acknowledged (and deleted), so what is there is what is
        not done, each with the `resume` it was queued with."""
        streams = [s for s, _ in self.pool_work] + [self.keys.pinned(*h) for h in self.job.plan.pinned]
        p = self.r.pipeline(transaction=True)  # one moment: the run's keys, and what its streams hold
        p.exists(self.keys.setup)
        for stream in streams:
            p.xrange(stream)
        there, *contents = p.execute()
        if not there:  # empty streams of a server that lost everything are not "nothing to do"
            raise ServerReset(f"the server no longer holds run {self.keys.run_id} (restarted or flushed)")
        chunks = []
        for stream, entries in zip(streams, contents, strict=True):
            for _, fields in entries:
                ok, entry = self.signer.unpack(stream, fields)
                if ok:
                    chunks.append(Chunk(*entry[:-1]))
        return chunks

    def pid(self, wid: int) -> int | None:
        proc = self.procs.get(wid)
        return proc.pid if proc is not None else None

    def recover(self, wid: int, why: str, delivered: Callable[[int], int]) -> None:
        """Put a dead pool worker's pending entries back at the end of their streams, each
        resuming after the writes of it already delivered, acknowledging the old ones in
        the same MULTI/EXEC."""
        name = consumer(wid)
        for stream, _ in self.pool_work:
            pending = self.r.xpending_range(stream, GROUP, "-", "+", 100_000, consumername=name)
            ids = [e["message_id"] for e in pending]
            if not ids:
                continue
            p = self.r.pipeline(transaction=True)
            for _, fields in self.r.xclaim(stream, GROUP, "coordinator", 0, ids):
                ok, entry = self.signer.unpack(stream, fields)
                if not ok:
                    continue
                *fields, replays = entry
                chunk = Chunk(*fields)
                if replays + 1 >= MAX_REPLAYS:
                    raise replay_limit(chunk, why)
                chunk = replay_of(chunk, delivered(chunk.id))
                p.xadd(stream, self.signer.pack(stream, (*chunk, replays + 1)))
            p.xack(stream, GROUP, *ids)
            p.xdel(stream, *ids)
            p.execute()

    # -- metrics ------------------------------------------------------------------
    def cpu_s(self) -> float:
        return self.server_cpu

    def metrics(self) -> dict[str, Any]:
        return {
            "redis": "private server" if self.server is not None else "given",
            "redis_server_cpu_s": round(self.server_cpu, 4),
            "rejected_messages": self.signer.rejected + self.rejected_by_workers,
        }
