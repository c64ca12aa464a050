"""The units and messages the coordinator and the workers exchange, on any transport.

The unit of transfer is a Chunk: up to a few hundred tasks for one destination (PE and
instance), pickled once by the worker that made them. The coordinator queues, counts
and hands out chunks without unpickling them, so its cost grows with the number of
chunks, not of items. Chunk sizes follow the destination PE's measured service time:
large for cheap PEs (throughput), one task for slow ones (balance across workers).
"""

from __future__ import annotations

import pickle
from typing import Any, NamedTuple

PROTOCOL = pickle.HIGHEST_PROTOCOL

# coordinator -> worker
WORK = "work"  # (WORK, [Chunk, ...])
FINALIZE = "finalize"  # (FINALIZE, pe, instance): run postprocess()
STOP = "stop"  # (STOP,)
PARK = "park"  # (PARK,): take no work until WAKE (a Redis worker blocks on its control stream)
WAKE = "wake"  # (WAKE,)
# worker -> coordinator
READY = "ready"  # (READY, cpu_s)
DONE = "done"  # (DONE, Report)
FAILED = "failed"  # (FAILED, PEError, cpu_s)
BYE = "bye"  # (BYE, cpu_s)
JOINED = "joined"  # (JOINED, group, host, pid): a worker started by `hpcflow worker`, maybe on another node
REJECTED = "rejected"  # (REJECTED, n): Redis: n forged or unsigned entries the worker dropped
# broker -> coordinator
EXITED = "exited"  # (EXITED, why): the worker is gone

MAX_CHUNK = 512  # tasks in one chunk at most
CHUNK_TARGET_S = 0.005  # a chunk holds about this much work once the PE's speed is known


class Chunk(NamedTuple):
    pe: str
    instance: int | None  # None: any pool worker
    count: int
    blob: bytes | None  # pickled [(port, data), ...]; for a root: pickled [inputs dict, ...] or None = count x {}


class Report(NamedTuple):
    """What a worker sends back for one WORK or FINALIZE message, all at once, so a
    worker that dies mid-way has sent nothing of it and its chunks can be replayed."""

    outputs: list[Chunk]  # new tasks, routed
    sinks: list[tuple[str, str, bytes]]  # (pe, port, pickled [data, ...]) for unconnected ports
    stats: list[tuple[str, int, float]]  # (pe, items processed, busy seconds)
    errors: list[dict[str, Any]]  # items skipped under on_error=skip
    cpu_s: float


def dumps(obj: Any) -> bytes:
    return pickle.dumps(obj, PROTOCOL)


loads = pickle.loads


def chunk_limit(service_s: float) -> int:
    """How many tasks of a PE with this service time go in one chunk."""
    if service_s <= 0:
        return 1
    return max(1, min(MAX_CHUNK, int(CHUNK_TARGET_S / service_s)))
