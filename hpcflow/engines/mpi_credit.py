"""Demand-driven shuffle for the `mpi` mapping: which instance of a shuffle-grouped PE
gets the next item.

A static round robin hands every instance the same number of items, whatever they
cost: with items of varying cost (a Beta(2,5) sleep of mean 20 ms) the instances whose
share happened to cost most finish last while the others idle, and the run's tail is
that imbalance (about a tenth of the run for 300 items over 7 instances). So a sender keeps
each instance's unfinished items (sent, not yet acknowledged done) under a small credit
and gives the next item to the instance with the fewest (on a tie, the one that
acknowledged last, else where the staggered round robin would); with no credit left anywhere it waits for an
acknowledgement (flushing what it holds, so that it comes). An instance that is fast,
or on cheap items, is acknowledged sooner and so gets more: the split follows demand,
as a pool's would, while each instance stays on its own rank.

The credits of all the senders of an instance together cover the item it is on (or,
for items cheaper than two ticks, the two ticks an acknowledgement may take) and
LOOKAHEAD_S more of its work, each sender at least one item: enough that an instance
has its next item while its acknowledgement goes round, few enough that the last items
do not queue behind others. It is measured: each acknowledgement carries the
receiver's seconds per item (smoothed); before the first, the credit is one item.
Items cheaper than CHEAP_S, or so cheap that a credit would hold a whole batch, go
round robin, bounded by the channel's flow control (MAX_IN_FLIGHT batches) as before.

Only shuffle streams to a PE of several instances are split this way: group-by, global
and all-groupings place an item by its key or on every instance, as in every mapping.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ..graph import WorkflowGraph
from ..grouping import SHUFFLE
from ..plan import Plan

# Seconds of work an instance has queued beyond the time its acknowledgements take to
# be sent and read (see Credits.acknowledged): about the time an acknowledgement takes
# to reach an idle sender and its answer to arrive (an idle rank polls every millisecond).
LOOKAHEAD_S = 0.005

# How much each acknowledgement moves the measured seconds per item (a moving average:
# one short item must not open a long queue).
SMOOTHING = 0.25

# Items cheaper than this go round robin: the imbalance they can make is small, and their
# measured cost is mostly noise (a rank that waits for a core looks slow).
CHEAP_S = 0.001

# The largest credit of one sender at one instance (cheap items: never the bound).
CREDIT_MAX = 1 << 20


def acknowledges(graph: WorkflowGraph, plan: Plan, pe: str) -> bool:
    """Whether the instances of `pe` acknowledge their items to the senders: they do when
    some input of `pe` is a shuffle over several instances (its senders split by demand)."""
    return plan.instances[pe] > 1 and any(graph.grouping(pe, port).kind == SHUFFLE for port in _inputs(graph, pe))


def _inputs(graph: WorkflowGraph, pe: str) -> list[str]:
    return sorted({e.dst_port for e in graph.edges if e.dst == pe})


class Credits:
    """One sending rank's view of the unfinished items at the instances it splits by demand."""

    def __init__(
        self,
        graph: WorkflowGraph,
        plan: Plan,
        rank_of: dict[tuple[str, int], int],
        sender: str,
        instance: int,
        tick_s: float,
        batch_items: int,
    ):
        self._tick_s = tick_s  # how often a busy rank sends its acknowledgements and reads those it got
        self._batch_items = batch_items  # items per data message
        self._ranks: dict[tuple[str, str], list[int]] = {}  # (pe, port) split by demand -> its instances' ranks
        self._next: dict[tuple[str, str], int] = {}  # where each stream's ties start
        self._senders: dict[int, int] = {}  # rank -> how many instances send to it
        for pe in graph.successors(sender):
            if not acknowledges(graph, plan, pe):
                continue
            n = plan.instances[pe]
            for port in _inputs(graph, pe):
                if graph.grouping(pe, port).kind == SHUFFLE:
                    self._ranks[(pe, port)] = [rank_of[(pe, i)] for i in range(n)]
                    self._next[(pe, port)] = instance % n  # as the staggered round robin starts
            senders = sum(plan.instances[p] for p in graph.predecessors(pe))
            self._senders.update((rank_of[(pe, i)], senders) for i in range(n))
        self.unfinished: dict[int, int] = dict.fromkeys(self._senders, 0)
        self._limit: dict[int, int] = dict.fromkeys(self._senders, 1)
        self._cost: dict[int, float] = {}  # rank -> its seconds per item, smoothed
        self._acked_at: dict[int, int] = dict.fromkeys(self._senders, 0)  # rank -> when it last acknowledged
        self._acks = 0

    def splits(self, pe: str, port: str) -> bool:
        return (pe, port) in self._ranks

    def sent(self, rank: int) -> None:
        if rank in self.unfinished:
            self.unfinished[rank] += 1

    def acknowledged(self, rank: int, items: int, seconds_per_item: float) -> None:
        """`rank` finished `items` more of this rank's items, at `seconds_per_item` each."""
        if rank not in self.unfinished:
            return
        self.unfinished[rank] = max(0, self.unfinished[rank] - items)
        self._acks += 1
        self._acked_at[rank] = self._acks
        cost = self._cost.get(rank)
        cost = seconds_per_item if cost is None else cost + SMOOTHING * (seconds_per_item - cost)
        self._cost[rank] = cost
        # the instance's queue, shared by its senders: enough work to last until an acknowledgement
        # reaches a sender and its answer arrives. A slow item is acknowledged when it ends; cheaper
        # ones a tick later, read by a busy sender at its next tick: two ticks.
        share = cost * self._senders[rank]
        lasts = max(cost, 2 * self._tick_s) + LOOKAHEAD_S
        limit = CREDIT_MAX if cost < CHEAP_S else math.ceil(lasts / share)
        # items so cheap that a batch or more is in the credit are not worth splitting one by
        # one: the channel's flow control bounds them, as it bounds every stream
        self._limit[rank] = CREDIT_MAX if limit >= self._batch_items else limit

    def pick(self, pe: str, port: str, wait: Callable[[], bool]) -> int:
        """The rank of the instance of (`pe`, `port`) for the next item: the one with the
        fewest unfinished items among those under their credit, of those the one that
        acknowledged last (it has just finished an item: most likely idle, as this sender
        cannot see the items of the others). `wait()` is called while none is, until one
        is or it returns True (the run stops: any rank will do)."""
        ranks = self._ranks[(pe, port)]
        start = self._next[(pe, port)]
        rank = ranks[start]
        if self._limit[rank] == CREDIT_MAX and self.unfinished[rank] < CREDIT_MAX:
            self._next[(pe, port)] = (start + 1) % len(ranks)
            return rank  # cheap items: the round robin's choice, without a search
        while True:
            best, key = None, None
            for k in range(len(ranks)):
                i = (start + k) % len(ranks)
                rank = ranks[i]
                n = self.unfinished[rank]
                if n < self._limit[rank] and (key is None or (n, -self._acked_at[rank]) < key):
                    best, key = i, (n, -self._acked_at[rank])
            if best is not None or wait():
                i = start if best is None else best
                self._next[(pe, port)] = (i + 1) % len(ranks)
                return ranks[i]
