"""The units and messages the coordinator and the workers exchange, on any transport.

The unit of transfer is a Chunk: up to a few hundred tasks for one destination (PE and
instance), pickled once by the worker that made them. The coordinator queues, counts
and hands out chunks without unpickling them, so its cost grows with the number of
chunks, not of items. Chunk sizes follow the destination PE's measured service time:
large for cheap PEs (throughput), one task for slow ones (balance across workers).

Outputs stream: a worker sends what its PEs write as Deliveries while it runs (OUTPUT),
not at the end of a batch, and at most DELIVERY_WINDOW of them before the coordinator
answers each with a CREDIT, which it holds back while the destination is backlogged, so
a call that writes a million items blocks instead of buffering them. Delivery is
idempotent (see engines/README.md): every chunk has a run-unique `id`; the writes made
while running it are numbered 0, 1, 2, ... and a Delivery says which range [lo, hi) of
them it carries. The coordinator keeps the high-water mark per chunk until the chunk is
acknowledged; a chunk replayed after its worker died carries that mark as `resume`, and
the new worker drops the writes below it (the PE runs again, its outputs leave once).
"""

from __future__ import annotations

import hashlib
import pickle
from typing import Any, NamedTuple

PROTOCOL = pickle.HIGHEST_PROTOCOL

# coordinator -> worker
WORK = "work"  # (WORK, [Chunk, ...])
FINALIZE = "finalize"  # (FINALIZE, pe, instance): run postprocess()
STOP = "stop"  # (STOP,)
CREDIT = "credit"  # (CREDIT, halt, n): n more OUTPUTs may leave; halt: a root stops after its current input
PARK = "park"  # (PARK,): take no work until WAKE (a Redis worker blocks on its control stream)
WAKE = "wake"  # (WAKE,)
SNAPSHOT = "snapshot"  # (SNAPSHOT,): at the end of the current batch, send STATE, then take no work until RESUME
RESUME = "resume"  # (RESUME,): a checkpoint's pause is over
# worker -> coordinator
READY = "ready"  # (READY, cpu_s)
DONE = "done"  # (DONE, Report)
OUTPUT = "output"  # (OUTPUT, [Delivery, ...]): outputs made so far, before the batch is done
FAILED = "failed"  # (FAILED, PEError, {pe: items the failed batch ran}, cpu_s)
BYE = "bye"  # (BYE, cpu_s)
JOINED = "joined"  # (JOINED, group, host, pid): a worker started by `hpcflow worker`, maybe on another node
STATE = "state"  # (STATE, blob | None): a pinned instance's snapshot (None from a pool worker), paused
REJECTED = "rejected"  # (REJECTED, n): Redis: n forged or unsigned entries the worker dropped
# broker -> coordinator
EXITED = "exited"  # (EXITED, why): the worker is gone

MAX_CHUNK = 512  # tasks in one chunk at most
CHUNK_TARGET_S = 0.005  # a chunk holds about this much work once the PE's speed is known


# OUTPUT messages a worker may have sent without a CREDIT back: more than one round trip
# in flight, as a producer feeding slow PEs sends one task a message
DELIVERY_WINDOW = 4


class Chunk(NamedTuple):
    pe: str
    instance: int | None  # None: any pool worker
    count: int
    blob: bytes | None  # pickled [(port, data), ...]; for a root: pickled [inputs dict, ...] or None = count x {}
    id: int = 0  # unique in the run (see chunk_id): the key of its outputs' delivery marks
    resume: int = 0  # writes made running it that were already delivered: a replay drops these first
    nbytes: int = 0  # len(blob) when made (kept when a transport strips the blob from a report)
    chain: int = 0  # PEs (bits by plan order) its tasks may run in process when they write to them (chain.py)


class Delivery(NamedTuple):
    """Writes [lo, hi) made while running chunk `source`, routed and pickled."""

    source: int
    lo: int
    hi: int
    outputs: list[Chunk]  # new tasks
    sinks: list[tuple[str, str, bytes]]  # (pe, port, pickled [data, ...]) for unconnected ports


class Report(NamedTuple):
    """What a worker sends back when a WORK or FINALIZE message is done: the rest of the
    outputs and the completions. Until it arrives the chunks are not acknowledged, so a
    worker that dies mid-way has its chunks replayed (its deliveries are not repeated)."""

    deliveries: list[Delivery]  # outputs not yet sent as OUTPUT
    stats: list[tuple[str, int, float]]  # (pe, items processed, busy seconds)
    errors: list[dict[str, Any]]  # items skipped under on_error=skip
    cpu_s: float
    done: list[int]  # ids of the chunks it completes
    dropped: list[tuple[str, int]]  # (root, inputs not run): a root halted on a stop signal
    chained: list[tuple[str, int, float]] = []  # (pe, items, busy s) run in process by a chain, never queued


def chunk_id(*parts: object) -> int:
    """A run-unique 63-bit id, the same in every process for the same parts: a root's
    chunk is (root, offset in its feed), an output chunk (source chunk, first write,
    index in the delivery), a postprocess() call (pe, instance)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def dumps(obj: Any) -> bytes:
    return pickle.dumps(obj, PROTOCOL)


loads = pickle.loads


def chunk_limit(service_s: float) -> int:
    """How many tasks of a PE with this service time go in one chunk."""
    if service_s <= 0:
        return 1
    return max(1, min(MAX_CHUNK, int(CHUNK_TARGET_S / service_s)))
