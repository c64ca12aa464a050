"""The plan: instances per PE, placement, which PEs are stateful; a pure function of graph,
mapping kind and processes."""

from __future__ import annotations

import pytest

from hpcflow import GenericPE, IterativePE, ProducerPE, UsageError, WorkflowGraph
from hpcflow.plan import DYNAMIC, HYBRID, SEQUENTIAL, STATIC, make_plan, own_pool, stateful_pes


class Source(ProducerPE):
    def _process(self, inputs):
        return 1


class Stage(IterativePE):
    def _process(self, data):
        return data


class GroupBy(GenericPE):
    def __init__(self, grouping=(0,)):
        super().__init__()
        self._add_input("input", grouping=list(grouping) if isinstance(grouping, tuple) else grouping)
        self._add_output("output")


class Aggregate(Stage):
    """Stateless input, but postprocess() emits state."""

    def postprocess(self):
        self.write("output", 0)


def chain(*pes):
    graph = WorkflowGraph()
    for a, b in zip(pes[:-1], pes[1:], strict=True):
        graph.connect(a, "output", b, "input")
    return graph


# -- static ----------------------------------------------------------------------


def test_static_producers_get_one_process_and_the_others_share_the_rest_evenly():
    graph = chain(Source(), Stage(), Stage(), Stage())
    plan = make_plan(graph, STATIC, 8, "multi")
    assert plan.instances == {"Source": 1, "Stage": 3, "Stage1": 2, "Stage2": 2}
    assert plan.pinned == (
        ("Source", 0),
        ("Stage", 0),
        ("Stage", 1),
        ("Stage", 2),
        ("Stage1", 0),
        ("Stage1", 1),
        ("Stage2", 0),
        ("Stage2", 1),
    )
    assert plan.pool == 0 and plan.roots == ("Source",)


def test_static_a_producer_asking_for_more_processes_still_gets_one():
    source = Source()
    source.numprocesses = 4
    plan = make_plan(chain(source, Stage()), STATIC, 6, "multi")
    assert plan.instances == {"Source": 1, "Stage": 5}


def test_static_keeps_explicit_numprocesses_of_instance_and_class():
    class Pair(Stage):
        numprocesses = 2

    fixed = Stage()
    fixed.numprocesses = 3
    graph = chain(Source(), fixed, Pair(), Stage())
    plan = make_plan(graph, STATIC, 10, "multi")
    assert plan.instances == {"Source": 1, "Stage": 3, "Pair": 2, "Stage1": 4}


def test_static_global_input_gets_one_instance():
    graph = chain(Source(), Stage(), GroupBy("global"))
    assert make_plan(graph, STATIC, 6, "multi").instances == {"Source": 1, "Stage": 4, "GroupBy": 1}


@pytest.mark.parametrize("grouping", [(0,), "all"])
def test_static_gives_a_stateful_pe_without_numprocesses_one_instance_as_every_mapping_does(grouping):
    """Sharing out the spare processes would split its state (per-instance aggregates of
    a postprocess(), copies of every item for "all") and change its outputs."""
    explicit = GroupBy(grouping)
    explicit.numprocesses = 2
    graph = chain(Source(), Stage(), Aggregate(), GroupBy(grouping), explicit)
    for kind in (SEQUENTIAL, STATIC, HYBRID):
        instances = make_plan(graph, kind, 12, "x").instances
        assert (instances["Aggregate"], instances["GroupBy"], instances["GroupBy1"]) == (1, 1, 2)
    assert make_plan(graph, STATIC, 12, "multi").instances["Stage"] == 12 - 5


def test_static_with_too_few_processes_says_how_many_are_needed():
    pair = Stage()
    pair.numprocesses = 2
    graph = chain(Source(), pair, Stage(), Stage())
    with pytest.raises(UsageError, match=r"mapping multi needs at least 5 processes .* got 4"):
        make_plan(graph, STATIC, 4, "multi")
    assert sum(make_plan(graph, STATIC, 5, "multi").instances.values()) == 5


def test_numprocesses_below_one_is_refused():
    stage = Stage()
    stage.numprocesses = 0
    with pytest.raises(UsageError, match="PE Stage has numprocesses=0"):
        make_plan(chain(Source(), stage), STATIC, 4, "multi")


def test_processes_below_one_is_refused():
    with pytest.raises(UsageError, match="processes must be at least 1, got 0"):
        make_plan(chain(Source(), Stage()), STATIC, 0, "multi")


def test_sequential_runs_one_instance_of_everything_in_one_process():
    plan = make_plan(chain(Source(), Stage(), GroupBy()), SEQUENTIAL, 16)
    assert plan.processes == 1
    assert plan.instances == {"Source": 1, "Stage": 1, "GroupBy": 1}


def test_the_plan_is_a_pure_function():
    graph = chain(Source(), Stage(), GroupBy())
    assert make_plan(graph, STATIC, 7, "multi") == make_plan(graph, STATIC, 7, "multi")


def test_the_plan_validates_the_graph():
    with pytest.raises(UsageError, match="no PEs"):
        make_plan(WorkflowGraph(), STATIC, 4)


# -- stateful detection ------------------------------------------------------------


def test_stateful_detection():
    flagged = Stage()
    flagged.stateful = True
    graph = chain(Source(), Stage(), flagged, GroupBy(), GroupBy("global"), GroupBy("all"), Aggregate())
    graph.connect(GroupBy("shuffle"), "output", Stage(), "input")
    assert stateful_pes(graph) == {"Stage1", "GroupBy", "GroupBy1", "GroupBy2", "Aggregate"}


def test_group_by_key_name_and_callable_are_stateful():
    graph = chain(Source(), GroupBy("word"), GroupBy(len))
    assert stateful_pes(graph) == {"GroupBy", "GroupBy1"}


# -- dynamic and hybrid ------------------------------------------------------------


@pytest.mark.parametrize(
    "mapping, suggestion",
    [("dyn_multi", "hybrid_multi"), ("dyn_auto_redis", "hybrid_auto_redis"), ("dyn_redis", "hybrid_redis")],
)
def test_dynamic_refuses_stateful_pes_naming_them_and_suggesting_hybrid(mapping, suggestion):
    graph = chain(Source(), Stage(), GroupBy(), Aggregate())
    with pytest.raises(UsageError) as info:
        make_plan(graph, DYNAMIC, 8, mapping)
    message = str(info.value)
    assert "PEs GroupBy, Aggregate are stateful" in message
    assert f"mapping {mapping} cannot run" in message and f"use {suggestion}" in message


def test_dynamic_refusal_of_one_pe():
    with pytest.raises(UsageError, match="^PE GroupBy is stateful"):
        make_plan(chain(Source(), GroupBy()), DYNAMIC, 4, "dyn_multi")


def test_dynamic_pins_each_producer_and_pools_everything_else():
    """A producer is called in order by one instance (it may keep state), so it gets a
    process of its own, even when marked stateful; the rest is the pool's."""
    source = Source()
    source.stateful = True
    plan = make_plan(chain(source, Stage(), Stage()), DYNAMIC, 4, "dyn_multi")
    assert plan.pinned == (("Source", 0),) and plan.pool == 3
    assert plan.instances == {"Source": 1, "Stage": 1, "Stage1": 1}


def test_hybrid_pins_every_stateful_instance_and_pools_the_rest():
    count = GroupBy()
    count.numprocesses = 3
    graph = chain(Source(), Stage(), count, GroupBy("global"))
    plan = make_plan(graph, HYBRID, 8, "hybrid_multi")
    assert plan.pinned == (("Source", 0), ("GroupBy", 0), ("GroupBy", 1), ("GroupBy", 2), ("GroupBy1", 0))
    assert plan.pool == 3
    assert plan.instances == {"Source": 1, "Stage": 1, "GroupBy": 3, "GroupBy1": 1}
    assert plan.is_pinned("GroupBy") and not plan.is_pinned("Stage")


def test_hybrid_needs_the_producers_and_stateful_instances_plus_one_worker():
    count = GroupBy()
    count.numprocesses = 2
    graph = chain(Source(), Stage(), count, Aggregate())
    with pytest.raises(UsageError, match=r"mapping hybrid_multi needs at least 5 processes .*3 stateful.* got 4"):
        make_plan(graph, HYBRID, 4, "hybrid_multi")
    assert make_plan(graph, HYBRID, 5, "hybrid_multi").pool == 1


@pytest.mark.parametrize("joining, own", [(0, 5), (3, 2), (4, 1), (9, 1)])
def test_the_pool_counts_the_workers_that_join_from_other_nodes_and_one_stays_here(joining, own):
    """`submit --nodes 3 --cpus 6`: the plan has 6 processes (a producer and a pool of 5);
    4 of the pool join from the 2 further nodes, 2 CPUs each, so the first node starts
    the producer and 1 pool worker: 2 processes on its 2 CPUs. However many join, one
    pool worker stays with the run."""
    g = chain(Source(), Stage())
    plan = make_plan(g, DYNAMIC, 6)
    assert (len(plan.pinned), plan.pool) == (1, 5)
    assert own_pool(plan, joining) == own
    static = make_plan(g, STATIC, 6)
    assert own_pool(static, joining) == 0  # no pool to join
