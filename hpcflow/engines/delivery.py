"""Idempotent delivery: the coordinator's record of which outputs have arrived.

A worker's outputs leave before the chunk that made them is acknowledged (outbox.py),
so a worker that dies mid-chunk has delivered part of that chunk's outputs. For every
chunk not yet acknowledged the ledger keeps its high-water mark: how many of the writes
made running it were delivered (writes are numbered in the order the PE makes them; a
Delivery carries the range [lo, hi)). A replayed chunk carries the mark as `resume` and
the new worker drops that many writes first; a delivery the ledger has already seen
(hi <= mark: a late or repeated message) is dropped here. This assumes that a PE given
the same input makes the same writes in the same order, which holds for the stateless
PEs a pool replays (a PE that writes random numbers gets its first `resume` writes from
the first run and the rest from the replay).

The marks of a chunk are forgotten once its report arrives: the ledger holds one entry
per chunk in flight, not per chunk of the run. Checkpoints (#19) can save it as it is.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import RunAborted
from .protocol import Delivery


class DeliveryLedger:
    def __init__(self) -> None:
        self.marks: dict[int, int] = {}  # chunk id -> writes delivered so far
        self.duplicates = 0  # deliveries dropped as already seen

    def accept(self, d: Delivery) -> bool:
        """Whether `d` is new (and now recorded); False for one already delivered."""
        mark = self.marks.get(d.source, 0)
        if d.hi <= mark:
            self.duplicates += 1
            return False
        if d.lo < mark:
            raise RunAborted(
                f"outputs {d.lo}-{d.hi} of chunk {d.source:x} overlap the {mark} already delivered: a replay made "
                "different writes than the first run"
            )
        self.marks[d.source] = d.hi
        return True

    def delivered(self, source: int) -> int:
        """How many writes of chunk `source` were delivered (what its replay resumes after)."""
        return self.marks.get(source, 0)

    def forget(self, sources: Iterable[int]) -> None:
        """These chunks are acknowledged: they will not be replayed."""
        for s in sources:
            self.marks.pop(s, None)
