"""A worker's side of the Redis transport: it pulls its own work.

Each take is one server-side script (`fenced.TAKE`) that checks the worker's lease,
looks at its control stream first (FINALIZE, STOP, PARK, WAKE), then at its work
streams in priority order (a pinned instance's own stream; for a pool worker the pool
PEs' streams, downstream first, which drains the pipeline and bounds memory as the
shared-memory broker does) and takes from the first that has entries, dropping any
whose unique id was taken before (a copy). With nothing to take, the worker waits in
one blocking XREAD (which takes nothing) for a new entry on any of them, then takes
again: an idle worker uses no CPU, and a worker written off meanwhile takes nothing.
A parked worker looks at its control stream only, so it takes no work until woken.

Outputs leave while a batch runs, each OUTPUT in one script (`fenced.PUT`): lease
check, XADD of its chunks and of the OUTPUT event (so the event is read before any
report of a worker that ran them). A batch ends in one script: lease check, XADD of the
last output chunks, XACK (and XDEL) of the entries it ran, XADD of the report to the
events stream. A worker that dies or is written off before that leaves its entries
pending for the coordinator to replay, with the outputs it delivered marked
(engines/delivery.py). While it waits for a CREDIT a worker takes from its control
stream only.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections import deque

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ...engines.protocol import DONE, JOINED, OUTPUT, PARK, REJECTED, WAKE, WORK, Chunk, Delivery, Report, chunk_limit
from ..base import DISPATCH_TARGET_S, Channel, ChannelClosed
from .fenced import FENCED, NO_RUN, PUT, TAKE, Batch
from .keys import GROUP, RunKeys, consumer
from .signing import Signer

BLOCK_MS = 2000  # an idle worker's blocking wait; it then looks again (and notices a deleted run)
SOCKET_TIMEOUT_S = 30  # far above BLOCK_MS: a silent server is noticed, a blocking read is not cut
SERVICE_REFRESH_S = 0.1  # how stale the measured service times a worker sizes chunks with may be


def client(url: str, name: str | None = None, timeout_s: float = SOCKET_TIMEOUT_S) -> redis.Redis:
    """A connection that never retries by itself: a MULTI/EXEC retried after a lost
    reply could be applied twice."""
    return redis.Redis.from_url(
        url, client_name=name, socket_timeout=timeout_s, socket_keepalive=True, retry=Retry(NoBackoff(), 0)
    )


class RedisChannel(Channel):
    def __init__(
        self,
        url: str,
        run_id: str,
        key: bytes,
        wid: int,
        token: str,
        work: list[tuple[str, str]],
        pinned: bool,
        order: tuple[str, ...],
        joined: str | None = None,
    ):
        self.url = url
        self.run_id = run_id
        self.key = key
        self.wid = wid
        self.token = token  # its lease: what every script it runs must show
        self.work = work  # (stream, pe) it reads, highest priority first
        self.pinned = pinned
        self.order = order
        self.joined = joined  # the group of `hpcflow worker` processes it belongs to
        self.service_s = [0.0] * len(order)

    def open(self) -> None:
        self.keys = RunKeys(self.run_id)
        self.name = consumer(self.wid)
        self.signer = Signer(self.key, self.run_id)
        self.ctl = self.keys.control(self.wid)
        self.lease = self.keys.lease(self.wid)
        self.r = client(self.url, self.keys.client(self.wid))
        self.take = self.r.register_script(TAKE)
        self.put = self.r.register_script(PUT)
        self.pe_index = {pe: i for i, pe in enumerate(self.order)}
        self.streams = [stream for stream, _ in self.work]
        self.inbox: deque[tuple] = deque()
        self.acks: dict[str, list[bytes]] = {}
        self.parked = False
        self.refreshed = 0.0
        if self.joined is not None:
            self.send((JOINED, self.joined, socket.gethostname(), os.getpid()))

    # -- to the coordinator ----------------------------------------------------
    def send(self, msg: tuple) -> None:
        batch = self._batch()
        self._event(batch, msg)
        self._write(batch)

    def deliver(self, deliveries: list[Delivery]) -> None:
        batch = self._batch()
        self._event(batch, (OUTPUT, self._publish(batch, deliveries)))
        self._write(batch)
        if time.monotonic() - self.refreshed > SERVICE_REFRESH_S:  # a long call sizes its chunks too
            self._set_service(self._redis(lambda: self.r.hgetall(self.keys.service)))

    def _publish(self, batch: Batch, deliveries: list[Delivery]) -> list[Delivery]:
        """XADD the output chunks; the deliveries without their blobs, for the event."""
        for d in deliveries:
            for c in d.outputs:
                stream = self.keys.stream_of(c.pe, c.instance)
                batch.xadd(stream, self.signer.pack(stream, (*c, 0)))
        return [d._replace(outputs=[c._replace(blob=None) for c in d.outputs]) for d in deliveries]

    def complete(self, report: Report) -> None:
        batch = self._batch()
        counted = report._replace(deliveries=self._publish(batch, report.deliveries))  # the blobs went above
        self._ack(batch)
        self._event(batch, (DONE, counted))
        self._write(batch)

    def _batch(self) -> Batch:
        return Batch(self.lease, self.token)

    def _event(self, batch: Batch, msg: tuple) -> None:
        """The event `msg`, after a REJECTED count of what this worker dropped, if any."""
        events = self.keys.events
        if self.signer.rejected:
            batch.xadd(events, self.signer.pack(events, (self.wid, (REJECTED, self.signer.rejected))))
            self.signer.rejected = 0
        batch.xadd(events, self.signer.pack(events, (self.wid, msg)))

    def _write(self, batch: Batch) -> None:
        self._redis(lambda: self.put(keys=batch.keys, args=batch.args))

    def _ack(self, batch: Batch) -> None:
        for stream, ids in self.acks.items():
            batch.ack(stream, ids)  # acknowledged entries are deleted: memory stays bounded
        self.acks = {}

    # -- from the run ----------------------------------------------------------
    def receive(self, work: bool = True) -> tuple:
        while not self.inbox:
            self._redis(lambda: self._fill(work))
        return self.inbox.popleft()

    def _fill(self, work: bool) -> None:
        control_only = self.parked or not work
        streams = [self.ctl] if control_only else [self.ctl, *self.streams]
        counts = [] if control_only else self._counts()
        p = self.r.pipeline(transaction=False)
        refresh = time.monotonic() - self.refreshed > SERVICE_REFRESH_S
        if refresh:
            p.hgetall(self.keys.service)
        self.take(keys=[self.lease, self.keys.seen, *streams], args=[self.token, GROUP, self.name, *counts], client=p)
        replies = p.execute()
        if refresh:
            self._set_service(replies[0])
        stream, entries, copies = replies[-1]
        self.signer.rejected += copies
        if stream != 0:
            self._accept(stream.decode(), entries)
        elif entries:  # nothing new anywhere: wait for an entry after the last of each stream
            self.r.xread(dict(zip(streams, entries, strict=True)), count=1, block=BLOCK_MS)

    def _counts(self) -> list[int]:
        """Entries to take from each work stream: about DISPATCH_TARGET_S of work, so no
        worker holds much more than that while others idle (and a pinned instance passes
        its outputs on as it goes)."""
        counts = []
        for _, pe in self.work:
            svc = self.service_s[self.pe_index[pe]]
            counts.append(max(1, int(DISPATCH_TARGET_S / (svc * chunk_limit(svc)))) if svc > 0 else 1)
        return counts

    def _set_service(self, values: dict[bytes, bytes]) -> None:
        for pe, seconds in values.items():
            i = self.pe_index.get(pe.decode())
            if i is not None:
                self.service_s[i] = float(seconds)
        self.refreshed = time.monotonic()

    def _accept(self, stream: str, entries: list) -> None:
        """Queue what a take returned (raw from the script: [id, [field, value, ...]])."""
        chunks = []
        for eid, flat in entries:
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
            self.acks.setdefault(stream, []).append(eid)
            ok, msg = self.signer.unpack(stream, fields)
            if not ok:
                continue
            if stream != self.ctl:
                chunks.append(Chunk(*msg[:-1]))
            elif msg[0] == PARK:
                self.parked = True
            elif msg[0] == WAKE:
                self.parked = False
            else:
                self.inbox.append(msg)
        if chunks:
            self.inbox.append((WORK, chunks))
        elif stream != self.ctl:  # only forged entries: drop them now, not at the next batch
            batch = self._batch()
            self._ack(batch)
            self._write(batch)

    def _redis(self, call):
        try:
            return call()
        except (redis.ConnectionError, redis.TimeoutError):
            raise ChannelClosed from None
        except redis.ResponseError as exc:
            text = str(exc).rsplit("caused error: ", 1)[-1]  # what a pipeline adds goes first
            if text == FENCED:
                sys.stderr.write(
                    f"hpcflow: worker {self.wid} was written off by run {self.run_id}'s coordinator (its work "
                    "went to other workers); it stops without changing the run\n"
                )
                raise ChannelClosed from None
            if "NOGROUP" in text or text == NO_RUN:  # the run is over: its keys were deleted
                raise ChannelClosed from None
            raise

    def close(self) -> None:
        r = getattr(self, "r", None)
        if r is not None:
            r.close()
