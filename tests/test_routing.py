"""Routing: where an item written on (pe, port) goes, the one implementation every mapping uses."""

from __future__ import annotations

import pytest

from hpcflow import GenericPE, GraphError, IterativePE, ProducerPE, WorkflowGraph
from hpcflow.grouping import ALL, GLOBAL, GROUP_BY, SHUFFLE, Grouping, parse_grouping, stable_hash
from hpcflow.plan import DYNAMIC, HYBRID, SEQUENTIAL, STATIC, make_plan
from hpcflow.routing import Destination, Router


class Source(ProducerPE):
    pass


class Sink(GenericPE):
    def __init__(self, grouping=None, instances=None):
        super().__init__()
        self._add_input("input", grouping=grouping)
        self._add_output("output")
        if instances is not None:
            self.numprocesses = instances


def router_for(*sinks, kind=STATIC, processes=16, mapping="multi"):
    """A Router for Source -> each sink (one output port, fanned out)."""
    graph = WorkflowGraph()
    source = Source()
    for sink in sinks:
        graph.connect(source, "output", sink, "input")
    return Router(graph, make_plan(graph, kind, processes, mapping))


def instances_of(router, items, pe="Source"):
    return [router.route(pe, "output", item)[0].instance for item in items]


def test_fan_out_reaches_every_branch():
    router = router_for(Sink(), Sink(), Sink())
    assert router.route("Source", "output", "x") == [
        Destination("Sink", "input", 0),
        Destination("Sink1", "input", 0),
        Destination("Sink2", "input", 0),
    ]


def test_an_unconnected_port_has_no_destination():
    router = router_for(Sink())
    assert router.route("Sink", "output", "x") == []
    assert not router.is_connected("Sink", "output") and router.is_connected("Source", "output")


def test_shuffle_round_robins_over_the_instances():
    router = router_for(Sink(instances=3))
    assert instances_of(router, range(7)) == [0, 1, 2, 0, 1, 2, 0]


def test_shuffle_round_robin_is_counted_per_stream():
    router = router_for(Sink(instances=2), Sink(instances=3))
    routes = [[d.instance for d in router.route("Source", "output", i)] for i in range(4)]
    assert routes == [[0, 0], [1, 1], [0, 2], [1, 0]]


def test_each_sending_instance_starts_its_round_robin_at_its_own_number():
    """n upstream instances send their first items to n different instances (a pinned
    worker or rank sets its PE's instance on its own copy of the graph)."""
    graph = WorkflowGraph()
    source, middle, sink = Source(), Sink(instances=3), Sink(instances=4)
    graph.connect(source, "output", middle, "input")
    graph.connect(middle, "output", sink, "input")
    plan = make_plan(graph, STATIC, 16, "multi")
    firsts = []
    for instance in range(3):
        middle.instance = instance
        router = Router(graph, plan)
        firsts.append([router.route(middle.name, "output", i)[0].instance for i in range(5)])
    assert firsts == [[0, 1, 2, 3, 0], [1, 2, 3, 0, 1], [2, 3, 0, 1, 2]]


def test_group_by_index_list_sends_a_key_to_one_instance():
    router = router_for(Sink(grouping=[0], instances=4))
    items = [(f"w{i % 25}", i) for i in range(200)]
    chosen = instances_of(router, items)
    by_key: dict[str, set[int]] = {}
    for (key, _), instance in zip(items, chosen, strict=True):
        by_key.setdefault(key, set()).add(instance)
    assert all(len(s) == 1 for s in by_key.values())
    assert set(chosen) == {0, 1, 2, 3}
    assert all(instance == stable_hash(key) % 4 for (key, _), instance in zip(items, chosen, strict=True))


def test_group_by_several_indices_keys_on_the_tuple():
    router = router_for(Sink(grouping=[0, 2], instances=5))
    for item in [("a", 1, "b"), ("a", 99, "b"), ("c", 1, "d")]:
        assert instances_of(router, [item]) == [stable_hash((item[0], item[2])) % 5]


def test_group_by_dict_key():
    router = router_for(Sink(grouping="word", instances=3))
    items = [{"word": w, "n": n} for n, w in enumerate(["a", "b", "c", "a", "b", "a"])]
    assert instances_of(router, items) == [stable_hash(item["word"]) % 3 for item in items]


def test_group_by_callable():
    router = router_for(Sink(grouping=lambda item: item % 10, instances=3))
    chosen = instances_of(router, [3, 13, 23, 4])
    assert chosen[0] == chosen[1] == chosen[2] == stable_hash(3) % 3
    assert chosen[3] == stable_hash(4) % 3


def test_global_goes_to_instance_zero():
    sink = Sink(grouping="global")
    graph = WorkflowGraph()
    graph.connect(Source(), "output", sink, "input")
    router = Router(graph, make_plan(graph, STATIC, 4, "multi"))
    assert instances_of(router, range(5)) == [0] * 5


def test_all_copies_to_every_instance():
    router = router_for(Sink(grouping="all", instances=3))
    assert router.route("Source", "output", "x") == [Destination("Sink", "input", i) for i in range(3)]


def test_pool_run_destinations_have_no_instance():
    router = router_for(Sink(), Sink(), kind=DYNAMIC, processes=4, mapping="dyn_multi")
    assert router.route("Source", "output", "x") == [
        Destination("Sink", "input", None),
        Destination("Sink1", "input", None),
    ]


def test_hybrid_routes_to_pinned_instances_and_to_the_pool():
    router = router_for(Sink(), Sink(grouping=[0], instances=2), kind=HYBRID, processes=4, mapping="hybrid_multi")
    (to_pool, to_pinned) = router.route("Source", "output", ("k", 1))
    assert to_pool == Destination("Sink", "input", None)
    assert to_pinned == Destination("Sink1", "input", stable_hash("k") % 2)


@pytest.mark.parametrize(
    "grouping, item, cause",
    [
        ([0], 5, "TypeError"),
        ([3], (1, 2), "IndexError"),
        ("word", {"wurd": 1}, "KeyError"),
        (lambda item: item.missing, 1, "AttributeError"),
        ([0], (object(),), "TypeError: group-by key"),
    ],
)
def test_a_key_that_cannot_be_taken_names_the_destination(grouping, item, cause):
    router = router_for(Sink(), Sink(grouping=grouping, instances=2))
    with pytest.raises(ValueError, match=f"key of this item for Sink1.input: {cause}"):
        router.route("Source", "output", item)


def test_the_key_is_taken_even_for_a_single_instance():
    router = router_for(Sink(grouping=[0]), kind=SEQUENTIAL)
    with pytest.raises(ValueError, match="for Sink.input"):
        router.route("Source", "output", 7)


@pytest.mark.parametrize(
    "spec, grouping",
    [
        (None, Grouping(SHUFFLE)),
        ("shuffle", Grouping(SHUFFLE)),
        ("global", Grouping(GLOBAL)),
        ("all", Grouping(ALL)),
        ([0], Grouping(GROUP_BY, (0,))),
        ((0, 1), Grouping(GROUP_BY, (0, 1))),
        ("word", Grouping(GROUP_BY, ("word",))),
        (2, Grouping(GROUP_BY, (2,))),
        (len, Grouping(GROUP_BY, len)),
    ],
)
def test_parse_grouping(spec, grouping):
    assert parse_grouping(spec) == grouping
    assert grouping.stateful == (grouping.kind != SHUFFLE)


def test_parse_grouping_errors_say_where():
    with pytest.raises(GraphError, match="unknown grouping 1.5 on input A.in"):
        parse_grouping(1.5, "on input A.in")


def test_describe():
    assert [parse_grouping(s).describe() for s in (None, "global", "all", [0, 1], "word", len)] == [
        "shuffle",
        "global",
        "all",
        "group-by [0, 1]",
        "group-by ['word']",
        "group-by len",
    ]


def test_a_pinned_pe_feeding_another_routes_by_its_own_name():
    class Pass(IterativePE):
        def _process(self, data):
            return data

    graph = WorkflowGraph()
    source, pas, sink = Source(), Pass(), Sink(grouping=[0], instances=2)
    graph.connect(source, "output", pas, "input")
    graph.connect(pas, "output", sink, "input")
    router = Router(graph, make_plan(graph, STATIC, 4, "multi"))
    assert router.route("Pass", "output", ("k",)) == [Destination("Sink", "input", stable_hash("k") % 2)]
    assert router.route("Source", "output", ("k",)) == [Destination("Pass", "input", 0)]
