"""A worker's side of the Redis transport: it pulls its own work.

Each take is one server-side script that looks at the worker's control stream first
(FINALIZE, STOP, PARK, WAKE), then at its work streams in priority order (a pinned
instance's own stream; for a pool worker the pool PEs' streams, downstream first, which
drains the pipeline and bounds memory as the shared-memory broker does) and reads from
the first that has entries. With nothing to take, the worker blocks in one XREADGROUP
on all of them: an idle worker uses no CPU. A parked worker blocks on its control
stream only, so it takes no work until woken.

Outputs leave while a batch runs, each OUTPUT in one MULTI/EXEC: XADD of its chunks and
of the OUTPUT event (so the event is read before any report of a worker that ran them).
A batch ends in one MULTI/EXEC: XADD of the last output chunks, XACK (and XDEL) of the
entries it ran, XADD of the report to the events stream. A worker that dies before that
leaves its entries pending for the coordinator to replay, with the outputs it delivered
marked (protocol.py). While it waits for a CREDIT a worker reads its control stream only.
"""

from __future__ import annotations

import os
import socket
import time
from collections import deque

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ...engines.protocol import DONE, JOINED, OUTPUT, PARK, REJECTED, WAKE, WORK, Chunk, Delivery, Report, chunk_limit
from ..base import DISPATCH_TARGET_S, Channel, ChannelClosed
from .keys import GROUP, RunKeys, consumer
from .signing import Signer

BLOCK_MS = 2000  # an idle worker's blocking read; it then looks again (and notices a deleted run)
SOCKET_TIMEOUT_S = 30  # far above BLOCK_MS: a silent server is noticed, a blocking read is not cut
SERVICE_REFRESH_S = 0.1  # how stale the measured service times a worker sizes chunks with may be

# KEYS: control stream, then work streams by priority; ARGV: group, consumer, then a COUNT per work stream.
TAKE = """
local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', 1, 'STREAMS', KEYS[1], '>')
if r then return r end
for i = 2, #KEYS do
  r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[i + 1], 'STREAMS', KEYS[i], '>')
  if r then return r end
end
return false
"""


def client(url: str, name: str | None = None) -> redis.Redis:
    """A connection that never retries by itself: a MULTI/EXEC retried after a lost
    reply could be applied twice."""
    return redis.Redis.from_url(
        url, client_name=name, socket_timeout=SOCKET_TIMEOUT_S, socket_keepalive=True, retry=Retry(NoBackoff(), 0)
    )


class RedisChannel(Channel):
    def __init__(
        self,
        url: str,
        run_id: str,
        key: bytes,
        wid: int,
        work: list[tuple[str, str]],
        pinned: bool,
        order: tuple[str, ...],
        joined: str | None = None,
    ):
        self.url = url
        self.run_id = run_id
        self.key = key
        self.wid = wid
        self.work = work  # (stream, pe) it reads, highest priority first
        self.pinned = pinned
        self.order = order
        self.joined = joined  # the group of `hpcflow worker` processes it belongs to
        self.service_s = [0.0] * len(order)

    def open(self) -> None:
        self.keys = RunKeys(self.run_id)
        self.name = consumer(self.wid)
        self.signer = Signer(self.key)
        self.ctl = self.keys.control(self.wid)
        self.r = client(self.url, self.keys.client(self.wid))
        self.take = self.r.register_script(TAKE)
        self.pe_index = {pe: i for i, pe in enumerate(self.order)}
        self.streams = [stream for stream, _ in self.work]
        self.inbox: deque[tuple] = deque()
        self.acks: dict[str, list[bytes]] = {}
        self.parked = False
        self.refreshed = 0.0
        try:
            self.r.xgroup_create(self.ctl, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        if self.joined is not None:
            self.send((JOINED, self.joined, socket.gethostname(), os.getpid()))

    # -- to the coordinator ----------------------------------------------------
    def send(self, msg: tuple) -> None:
        events = self.keys.events
        self._redis(lambda: self.r.xadd(events, self.signer.pack(events, (self.wid, msg))))

    def deliver(self, deliveries: list[Delivery]) -> None:
        p = self.r.pipeline(transaction=True)
        refresh = time.monotonic() - self.refreshed > SERVICE_REFRESH_S  # a long call sizes its chunks too
        if refresh:
            p.hgetall(self.keys.service)
        counted = self._publish(p, deliveries)
        events = self.keys.events
        p.xadd(events, self.signer.pack(events, (self.wid, (OUTPUT, counted))))
        replies = self._redis(p.execute)
        if refresh:
            self._set_service(replies[0])

    def _publish(self, p: redis.client.Pipeline, deliveries: list[Delivery]) -> list[Delivery]:
        """XADD the output chunks; the deliveries without their blobs, for the event."""
        for d in deliveries:
            for c in d.outputs:
                stream = self.keys.stream_of(c.pe, c.instance)
                p.xadd(stream, self.signer.pack(stream, (*c, 0)))
        return [d._replace(outputs=[c._replace(blob=None) for c in d.outputs]) for d in deliveries]

    def complete(self, report: Report) -> None:
        p = self.r.pipeline(transaction=True)
        counted = report._replace(deliveries=self._publish(p, report.deliveries))  # the blobs went above
        self._ack(p)
        events = self.keys.events
        p.xadd(events, self.signer.pack(events, (self.wid, (DONE, counted))))
        if self.signer.rejected:
            p.xadd(events, self.signer.pack(events, (self.wid, (REJECTED, self.signer.rejected))))
            self.signer.rejected = 0
        self._redis(p.execute)

    def _ack(self, p: redis.client.Pipeline) -> None:
        for stream, ids in self.acks.items():
            p.xack(stream, GROUP, *ids)
            p.xdel(stream, *ids)  # acknowledged entries are not kept: memory stays bounded
        self.acks = {}

    # -- from the run ----------------------------------------------------------
    def receive(self, work: bool = True) -> tuple:
        while not self.inbox:
            self._redis(lambda: self._fill(work))
        return self.inbox.popleft()

    def _fill(self, work: bool) -> None:
        if self.parked or not work:
            self._accept(self.r.xreadgroup(GROUP, self.name, {self.ctl: ">"}, count=1, block=BLOCK_MS))
            return
        p = self.r.pipeline(transaction=False)
        refresh = time.monotonic() - self.refreshed > SERVICE_REFRESH_S
        if refresh:
            p.hgetall(self.keys.service)
        self.take(keys=[self.ctl, *self.streams], args=[GROUP, self.name, *self._counts()], client=p)
        replies = p.execute()
        if refresh:
            self._set_service(replies[0])
        taken = replies[-1]
        if not taken:
            wanted = {self.ctl: ">", **{s: ">" for s in self.streams}}
            taken = self.r.xreadgroup(GROUP, self.name, wanted, count=1, block=BLOCK_MS)
        self._accept(taken)

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

    def _accept(self, taken: list) -> None:
        """Queue what a read returned: the work first, then the commands."""
        chunks, commands = [], []
        for stream, entries in taken or ():
            stream = stream.decode() if isinstance(stream, bytes) else stream
            for eid, fields in entries:
                if isinstance(fields, list):  # raw from the script: [field, value, ...]
                    fields = dict(zip(fields[::2], fields[1::2], strict=True))
                self.acks.setdefault(stream, []).append(eid)
                ok, msg = self.signer.unpack(stream, fields)
                if not ok:
                    continue
                if stream == self.ctl:
                    commands.append(msg)
                else:
                    chunks.append(Chunk(*msg[:-1]))
        if chunks:
            self.inbox.append((WORK, chunks))
        elif self.signer.rejected and self.acks:  # only forged entries: drop them now, not at the next batch
            p = self.r.pipeline(transaction=True)
            self._ack(p)
            p.execute()
        for msg in commands:
            if msg[0] == PARK:
                self.parked = True
            elif msg[0] == WAKE:
                self.parked = False
            else:
                self.inbox.append(msg)

    def _redis(self, call):
        try:
            return call()
        except redis.ConnectionError:
            raise ChannelClosed from None
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):  # the run is over: its keys were deleted
                raise ChannelClosed from None
            raise

    def close(self) -> None:
        r = getattr(self, "r", None)
        if r is not None:
            r.close()
