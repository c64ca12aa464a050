"""Chaining stateless stages: a pool worker runs the next PE on an item at once, in process.

When a PE the pool runs writes to a port whose one stream goes, by shuffle, to another
PE the pool runs, the worker that made the item may run that PE's process() on it at once
(Flink's operator chaining, Storm's local-or-shuffle grouping): no pickling, no hop to
the coordinator and back. Only the writes that leave the chain are numbered and
delivered (outbox.py), so a replay of the chunk makes the same numbered writes and the
delivery ledger stays exact: a chain of stateless PEs is deterministic per input.

Where a chain may apply (`links`): from a pool PE's output port with exactly one stream
(not a fan-out), to a pool PE's input grouped by shuffle. A pinned PE (a root, a
stateful instance, every instance in `multi`) neither chains nor is chained into; a
group-by, global or all input makes its PE stateful, hence pinned; `mpi` never gets here.
A destination with several inputs may be chained into on one of them: it is stateless,
each call sees one input.

When it does (`ChainMask`): whether a chunk's tasks chain into a PE is decided when the
chunk is made and travels in the chunk (`Chunk.chain`, a bit per PE), so that a replay
or a resumed checkpoint chains exactly as the first run did, however the measurements
moved since. A PE is chained into only once it is measured (its first tasks go to the
pool) and while its measured time per task, its own chain included, is at most
CHAIN_MAX_S; a slower PE's items go back to the pool, where any idle worker takes them.

What a chained task costs is counted as its PE's: the worker reports (pe, items, busy
seconds) for the tasks it ran in chains (`Report.chained`), which count in the run's
items per PE and measure the PE; the time of a task includes the chain it started, so
the chunks of its PE are sized for the work they really hold.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import PEError
from ..graph import WorkflowGraph
from ..grouping import SHUFFLE
from ..plan import DYNAMIC, HYBRID, Plan
from ..transports.base import DISPATCH_TARGET_S, pool_pes

CHAIN_MAX_S = DISPATCH_TARGET_S / 10  # a PE slower than this a task is not chained into

TIME_EVERY = 8  # of the chained calls of a PE, one in this many is timed (a power of 2)
TIME_EVERY_MASK = TIME_EVERY - 1

Links = dict[tuple[str, str], tuple[str, str]]  # (pe, output port) -> (pe, input port) it may chain into


def chain_links(graph: WorkflowGraph, plan: Plan, enabled: bool = True) -> Links:
    """Every output port a chain may follow, and where it leads."""
    if not enabled or plan.kind not in (DYNAMIC, HYBRID):
        return {}
    pool = set(pool_pes(plan))
    streams: dict[tuple[str, str], list] = defaultdict(list)
    for e in graph.edges:
        streams[(e.src, e.src_port)].append(e)
    links: Links = {}
    for key, edges in streams.items():
        if len(edges) != 1:
            continue
        e = edges[0]
        if e.src in pool and e.dst in pool and graph.grouping(e.dst, e.dst_port).kind == SHUFFLE:
            links[key] = (e.dst, e.dst_port)
    return links


class ChainMask:
    """The maker's side: which PEs the tasks of a chunk being made may chain into."""

    def __init__(self, links: Links, pe_index: dict[str, int], service_s: Sequence[float]):
        self.reach = {pe: sorted(pe_index[d] for d in reachable(links, pe)) for pe, _ in links}
        self.service_s = service_s  # kept current by the channel

    def __call__(self, pe: str) -> int:
        svc = self.service_s
        mask = 0
        for i in self.reach.get(pe, ()):
            if 0 < svc[i] <= CHAIN_MAX_S:
                mask |= 1 << i
        return mask


def reachable(links: Links, pe: str) -> set[str]:
    """The PEs a chain starting at `pe` may run."""
    out: set[str] = set()
    todo = [pe]
    while todo:
        src = todo.pop()
        for (p, _), (dst, _) in links.items():
            if p == src and dst not in out:
                out.add(dst)
                todo.append(dst)
    return out


class Chain:
    """The worker's side: the sink its PEs write to. A write that may chain (its link
    exists and the running chunk's mask has the destination's bit) runs the destination
    at once; any other goes to `forward` (the outbox: routed, numbered, delivered)."""

    def __init__(self, links: Links, pe_index: dict[str, int], forward: Callable[[str, str, Any], None]):
        self.links = {key: (dst, port, 1 << pe_index[dst]) for key, (dst, port) in links.items()}
        self.names = {1 << i: pe for pe, i in pe_index.items()}
        self.forward = forward
        self.process: Callable[[str, dict[str, Any]], None] | None = None  # the Invoker's, set once made
        self.mask = 0
        self.counts: dict[str, int] = {}  # chained calls of each PE this batch
        self.busy: dict[str, float] = {}  # seconds of the calls timed
        self.timed: dict[str, int] = {}
        self.failed: PEError | None = None

    def begin(self, mask: int) -> None:
        """The writes that follow are made running a chunk that may chain into `mask`."""
        self.mask = mask

    def pes(self, mask: int) -> list[str]:
        """The PEs a chunk with this mask may run in chains (to preprocess them first)."""
        return [pe for bit, pe in self.names.items() if mask & bit]

    def sink(self, pe: str, port: str, data: Any) -> None:
        link = self.links.get((pe, port))
        if link is None or not self.mask & link[2]:
            self.forward(pe, port, data)
            return
        dst, dst_port, _ = link
        n = self.counts[dst] = self.counts.get(dst, 0) + 1
        try:
            if n & TIME_EVERY_MASK != 1:
                self.process(dst, {dst_port: data})
                return
            t0 = time.perf_counter()  # one call in TIME_EVERY is timed (the first of each batch too)
            self.process(dst, {dst_port: data})
            self.busy[dst] = self.busy.get(dst, 0.0) + time.perf_counter() - t0
            self.timed[dst] = self.timed.get(dst, 0) + 1
        except PEError as exc:  # kept, in case the writing PE's own code catches it
            self.failed = self.failed or exc
            raise

    def check(self) -> None:
        """Raise the error of a chained PE that the PE that wrote to it swallowed."""
        if self.failed is not None:
            raise self.failed

    def take(self) -> list[tuple[str, int, float]]:
        """(pe, items, busy seconds) of the tasks run in chains since the last take (the
        busy time of the calls timed, scaled to all of them)."""
        out = [(pe, n, self.busy.get(pe, 0.0) * n / max(1, self.timed.get(pe, 0))) for pe, n in self.counts.items()]
        self.counts, self.busy, self.timed = {}, {}, {}
        return out
