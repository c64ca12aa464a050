"""A worker's outputs on their way out: routed, packed into chunks and sent as they are
made, with backpressure.

What a PE writes is routed at once and packed into a chunk per destination as soon as
that destination's bucket is full (`chunk_limit` of its measured service time), so at
most one open bucket per destination is held unpickled. Packed chunks leave in an OUTPUT
message once they hold FLUSH_BYTES, about FLUSH_WORK_S of work downstream, or are
FLUSH_S old; whatever is left when the batch ends goes with its report. The worker may
have DELIVERY_WINDOW OUTPUT messages unanswered; the next one waits for a CREDIT, which
the coordinator holds back while a destination is backlogged. So a call that writes a
million items runs at the speed the run can take them, in bounded memory, and the next
stage starts on its first outputs while the call still runs.

Every write made while running a chunk is numbered; a Delivery carries a contiguous
range of those numbers, which makes delivery idempotent (see `protocol`).
"""

from __future__ import annotations

import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import PEError
from ..graph import WorkflowGraph
from ..invoke import short_repr
from ..routing import Router
from ..transports.base import DISPATCH_TARGET_S, Channel
from .protocol import CREDIT, DELIVERY_WINDOW, MAX_CHUNK, RESUME, STOP, Chunk, Delivery, chunk_id, chunk_limit, dumps

FLUSH_S = 0.02  # packed outputs wait at most about this long: how far the next stage lags
FLUSH_BYTES = 1 << 20  # ... or leave once this many bytes are packed: bounds a worker's memory
FLUSH_WORK_S = DISPATCH_TARGET_S  # ... or once they hold this much work for their destinations
UNMEASURED_PER_FLUSH = 1  # tasks for a PE not measured yet in one OUTPUT: it may be slow


class Outbox:
    def __init__(
        self,
        graph: WorkflowGraph,
        router: Router,
        service_s: Sequence[float],
        pe_index: dict[str, int],
        collect: bool,
        channel: Channel,
    ):
        self.graph = graph
        self.router = router
        self.service_s = service_s  # kept current by the channel (the coordinator measures)
        self.pe_index = pe_index
        self.collect = collect
        self.channel = channel
        self.buckets: dict[tuple[str, int | None], list] = {}
        self.fixed: dict[tuple[str, str], list] = {}  # (pe, port) -> its targets, for routes that ignore the item
        self.sinks: dict[tuple[str, str], list] = {}
        self.sink_items = 0
        self.packed: list[Chunk] = []
        self.packed_sinks: list[tuple[str, str, bytes]] = []
        self.ready: list[Delivery] = []  # closed, not sent yet
        self.bytes = 0
        self.work = 0.0
        self.since: float | None = None  # when the oldest unsent output was written
        self.unacked = 0  # OUTPUT messages without a CREDIT back
        self.held: deque[tuple] = deque()  # other messages that came while waiting for a CREDIT
        self.halted = False  # the coordinator asked a root to stop after its current input
        self.chain_mask: Callable[[str], int] = lambda pe: 0  # what a chunk made for `pe` may chain into
        self.source, self.writer, self.instance = 0, "", None
        self.index = self.lo = self.resume = 0

    # -- what the PEs write ------------------------------------------------------
    def begin(self, source: int, resume: int, writer: str, instance: int | None) -> None:
        """The writes that follow are made running chunk `source` (by PE `writer`); the
        first `resume` of them were delivered by a worker that died, and are dropped."""
        self._close()
        self.source, self.writer, self.instance = source, writer, instance
        self.index = 0
        self.lo = self.resume = resume

    def sink(self, pe: str, port: str, data: Any) -> None:
        i = self.index
        self.index = i + 1
        if i < self.resume:
            return
        targets = self.fixed.get((pe, port))
        if targets is None:
            targets = self._targets(pe, port, data)
        if not targets:
            if self.collect:
                self.sinks.setdefault((pe, port), []).append(data)
                self.sink_items += 1
                if self.sink_items >= MAX_CHUNK:
                    self._pack_sinks()
        for key, dst_port, index in targets:
            bucket = self.buckets.get(key)
            if bucket is None:
                bucket = self.buckets[key] = []
            bucket.append((dst_port, data))
            svc = self.service_s[index]
            self.work += svc if svc > 0 else FLUSH_WORK_S / UNMEASURED_PER_FLUSH
            if len(bucket) >= chunk_limit(svc):
                self._pack(key, self.buckets.pop(key))
        now = time.perf_counter()
        if self.since is None:
            self.since = now
        if self.bytes >= FLUSH_BYTES or self.work >= FLUSH_WORK_S or now - self.since >= FLUSH_S:
            self.flush()

    def flush(self) -> None:
        """Send what is packed now, after waiting for a credit if the window is full."""
        self._close()
        if not self.ready:
            return
        while self.unacked >= DELIVERY_WINDOW:
            self._on_message(self.channel.receive(work=False))
        self.channel.deliver(self.ready)
        self.unacked += 1
        self._reset()

    def take(self) -> list[Delivery]:
        """What is left at the end of a batch, for its report (which needs no credit)."""
        self._close()
        ready = self.ready
        self._reset()
        return ready

    def receive(self) -> tuple:
        """The next message for the worker loop; credits are taken in passing."""
        while True:
            msg = self.held.popleft() if self.held else self.channel.receive()
            if msg[0] != CREDIT:
                return msg
            self._on_message(msg)

    def pause(self) -> None:
        """Take no work until RESUME (a checkpoint is written meanwhile); what else comes
        is kept for after it. A STOP ends the pause too."""
        while True:
            msg = self.channel.receive(work=False)
            if msg[0] == RESUME:
                return
            self._on_message(msg)
            if msg[0] == STOP:
                return

    # -- internals ---------------------------------------------------------------
    def _targets(self, pe: str, port: str, data: Any) -> list[tuple[tuple[str, int | None], str, int]]:
        """Where `data` goes: (bucket key, input port, PE index) a destination; kept for a
        route that does not depend on the item."""
        dests = self.router.route(pe, port, data)
        targets = [((d.pe, d.instance), d.port, self.pe_index[d.pe]) for d in dests]
        if self.router.is_fixed(pe, port):
            self.fixed[(pe, port)] = targets
        return targets

    def _on_message(self, msg: tuple) -> None:
        if msg[0] == CREDIT:
            self.unacked -= msg[2]
            self.halted = self.halted or msg[1]
        else:
            self.held.append(msg)

    def _reset(self) -> None:
        self.ready = []
        self.bytes = 0
        self.work = 0.0
        self.since = None

    def _close(self) -> None:
        """Pack the open buckets and close the writes so far into a Delivery."""
        for key in list(self.buckets):
            self._pack(key, self.buckets.pop(key))
        if self.sinks:
            self._pack_sinks()
        hi = max(self.index, self.lo)
        if self.packed or self.packed_sinks:  # writes that went nowhere need no delivery
            self.ready.append(Delivery(self.source, self.lo, hi, self.packed, self.packed_sinks))
            self.packed, self.packed_sinks = [], []
        self.lo = hi

    def _pack(self, key: tuple[str, int | None], items: list) -> None:
        try:
            blob = dumps(items)
        except Exception:
            raise self._unpicklable(key[0], [(port, data, False) for port, data in items]) from None
        cid = chunk_id(self.source, self.lo, len(self.packed))
        self.packed.append(Chunk(key[0], key[1], len(items), blob, cid, 0, len(blob), self.chain_mask(key[0])))
        self.bytes += len(blob)

    def _pack_sinks(self) -> None:
        for (pe, port), items in self.sinks.items():
            try:
                blob = dumps(items)
            except Exception:
                raise self._unpicklable(pe, [(port, data, True) for data in items]) from None
            self.packed_sinks.append((pe, port, blob))
            self.bytes += len(blob)
        self.sinks = {}
        self.sink_items = 0

    def _unpicklable(self, pe: str, written: list[tuple[str, Any, bool]]) -> PEError:
        """The error for the first item that cannot be pickled, naming the PE that wrote
        it (the one running now) and its port."""
        for port, data, own_port in written:
            try:
                dumps(data)
            except Exception as exc:
                if not own_port:  # (pe, port) is where it was going: find the writer's port
                    edges = self.graph.edges
                    ups = sorted(e.src_port for e in edges if (e.dst, e.dst_port, e.src) == (pe, port, self.writer))
                    port = ups[0] if ups else port
                return PEError(
                    self.writer,
                    self.instance,
                    "<sending outputs>",
                    f"an item written to port {port!r} cannot be pickled to pass it to another process "
                    f"({short_repr(data)}): {type(exc).__name__}: {exc}",
                    traceback.format_exc(),
                )
        return PEError(self.writer, self.instance, "<sending outputs>", "its outputs cannot be pickled")
