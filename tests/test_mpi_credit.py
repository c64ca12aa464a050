"""The `mpi` mapping's demand-driven shuffle (engines/mpi_credit.py), without MPI: which
instance a sender picks, given what the instances acknowledged."""

from __future__ import annotations

import pytest

from hpcflow import GenericPE, IterativePE, ProducerPE, WorkflowGraph
from hpcflow.engines.mpi_credit import Credits, acknowledges
from hpcflow.plan import STATIC, make_plan


class Source(ProducerPE):
    def _process(self, inputs):
        return 1


class Stage(IterativePE):
    def _process(self, x):
        return x


class ByKey(GenericPE):
    def __init__(self):
        super().__init__()
        self._add_input("input", grouping=[0])
        self.numprocesses = 3

    def process(self, inputs):
        return None


def credits_of(graph: WorkflowGraph, processes: int, sender: str, instance: int = 0):
    plan = make_plan(graph, STATIC, processes)
    rank_of = {slot: rank for rank, slot in enumerate(plan.pinned)}
    return plan, rank_of, Credits(graph, plan, rank_of, sender, instance, tick_s=0.01, batch_items=256)


def chain(n: int = 2) -> tuple[WorkflowGraph, str, str]:
    graph = WorkflowGraph()
    source, stages = Source(), [Stage() for _ in range(n)]
    previous = source
    for stage in stages:
        graph.connect(previous, "output", stage, "input")
        previous = stage
    return graph, source.name, stages[0].name


def never_wait() -> bool:
    raise AssertionError("waited with credit left")


def test_first_items_go_to_different_instances_then_wait_for_an_acknowledgement():
    graph, source, stage = chain(1)
    plan, rank_of, credits = credits_of(graph, 4, source)
    ranks = [credits.pick(stage, "input", never_wait) for _ in range(3)]
    assert sorted(ranks) == [rank_of[(stage, i)] for i in range(3)]
    for rank in ranks:
        credits.sent(rank)
    waits = []

    def acknowledge_instance_1() -> bool:  # no credit left: the sender waits until one comes
        waits.append(1)
        credits.acknowledged(rank_of[(stage, 1)], 1, 0.02)
        return False

    assert credits.pick(stage, "input", acknowledge_instance_1) == rank_of[(stage, 1)]
    assert waits == [1]


def test_the_instance_acknowledged_sooner_gets_more_items():
    graph, source, stage = chain(1)
    plan, rank_of, credits = credits_of(graph, 3, source)
    fast, slow = rank_of[(stage, 0)], rank_of[(stage, 1)]
    given = {fast: 0, slow: 0}

    def fast_one_is_done() -> bool:
        credits.acknowledged(fast, credits.unfinished[fast], 0.02)
        return False

    for _ in range(20):  # the slow instance never finishes: after its credit, all go to the fast one
        rank = credits.pick(stage, "input", fast_one_is_done)
        credits.sent(rank)
        given[rank] += 1
    assert given[slow] <= 2 and given[fast] >= 18


def test_a_stopped_run_gets_a_rank_without_credit():
    graph, source, stage = chain(1)
    plan, rank_of, credits = credits_of(graph, 3, source)
    for _ in range(2):
        credits.sent(credits.pick(stage, "input", never_wait))
    assert credits.pick(stage, "input", lambda: True) in {rank_of[(stage, i)] for i in range(2)}


def test_cheap_items_open_the_credit_and_slow_ones_share_it_among_senders():
    graph, source, stage = chain(2)
    plan, rank_of, credits = credits_of(graph, 5, source)  # Source, 2 x stage, 2 x the next
    first = rank_of[(stage, 0)]
    credits.acknowledged(first, 0, 1e-6)
    for _ in range(1000):  # microseconds an item: the credit never binds
        credits.sent(credits.pick(stage, "input", never_wait))
    assert credits.unfinished[first] == 999
    next_stage = [n for n in plan.order if n not in (source, stage)][0]
    _, _, upstream = credits_of(graph, 5, stage, 0)  # 2 senders share each next instance's queue
    target = rank_of[(next_stage, 0)]
    upstream.acknowledged(target, 0, 0.02)
    assert upstream._limit[target] == 1


def test_only_shuffles_to_several_instances_are_split():
    graph = WorkflowGraph()
    source, by_key = Source(), ByKey()
    graph.connect(source, "output", by_key, "input")
    plan, _, credits = credits_of(graph, 4, source.name)
    assert not acknowledges(graph, plan, by_key.name)
    assert not credits.splits(by_key.name, "input")
    graph, source, stage = chain(1)
    plan, _, credits = credits_of(graph, 2, source)  # one instance: nothing to choose
    assert not acknowledges(graph, plan, stage)
    assert not credits.splits(stage, "input")


@pytest.mark.parametrize("instance", [0, 1])
def test_ties_start_where_the_staggered_round_robin_would(instance):
    graph, source, stage = chain(2)
    plan, rank_of, credits = credits_of(graph, 5, stage, instance)
    next_stage = [n for n in plan.order if n not in (source, stage)][0]
    assert credits.pick(next_stage, "input", never_wait) == rank_of[(next_stage, instance)]
