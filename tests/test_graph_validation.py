"""A graph that cannot run is a GraphError (a UsageError) that says what is wrong."""

from __future__ import annotations

import re

import pytest

from hpcflow import GenericPE, GraphError, IterativePE, ProducerPE, UsageError, WorkflowGraph, run
from hpcflow.pe import GROUPING


class Source(ProducerPE):
    def _process(self, inputs):
        return 1


class Double(IterativePE):
    def _process(self, data):
        return 2 * data


def test_graph_error_is_a_usage_error():
    assert issubclass(GraphError, UsageError)


def test_unknown_output_port_names_the_pe_and_its_ports():
    with pytest.raises(GraphError, match=r"PE Source has no output port 'out' \(ports: 'output'\)"):
        WorkflowGraph().connect(Source(), "out", Double(), "input")


def test_unknown_input_port_names_the_pe_and_its_ports():
    with pytest.raises(GraphError, match=r"PE Double has no input port 'in' \(ports: 'input'\)"):
        WorkflowGraph().connect(Source(), "output", Double(), "in")


def test_a_pe_without_inputs_lists_none():
    with pytest.raises(GraphError, match=r"PE Source has no input port 'input' \(ports: none\)"):
        WorkflowGraph().connect(Double(), "output", Source(), "input")


def test_connect_takes_pes():
    with pytest.raises(GraphError, match="connect\\(\\) takes PEs"):
        WorkflowGraph().connect("Source", "output", Double(), "input")


def test_cycle_is_shown_in_the_message():
    graph = WorkflowGraph()
    a, b, c = Double(), Double(), Double()
    graph.connect(Source(), "output", a, "input")
    graph.connect(a, "output", b, "input")
    graph.connect(b, "output", c, "input")
    graph.connect(c, "output", a, "input")
    with pytest.raises(GraphError, match="cycle: Double -> Double1 -> Double2 -> Double"):
        graph.validate()
    with pytest.raises(GraphError, match="cycle"):
        run(graph)


def test_the_cycle_shown_is_the_cycle_not_what_hangs_off_it():
    graph = WorkflowGraph()
    src, a, b, c, tail = Source(), Double(), Double(), Double(), Double()
    graph.connect(src, "output", a, "input")
    graph.connect(a, "output", b, "input")
    graph.connect(b, "output", c, "input")
    graph.connect(c, "output", b, "input")
    graph.connect(c, "output", tail, "input")
    with pytest.raises(GraphError, match="cycle: Double1 -> Double2 -> Double1$"):
        graph.validate()


def test_topological_order_keeps_the_order_pes_were_added():
    graph = WorkflowGraph()
    first, second = Source(), Source()
    left, right, join = Double(), Double(), Double()
    graph.add(first)
    graph.add(second)
    graph.connect(first, "output", left, "input")
    graph.connect(first, "output", right, "input")
    graph.connect(second, "output", join, "input")
    graph.connect(right, "output", join, "input")
    graph.connect(left, "output", join, "input")
    assert graph.topological_order() == ["Source", "Source1", "Double", "Double1", "Double2"]
    assert graph.roots() == ["Source", "Source1"]


def test_a_self_loop_is_a_cycle():
    graph = WorkflowGraph()
    a = Double()
    graph.connect(a, "output", a, "input")
    with pytest.raises(GraphError, match="cycle: Double -> Double"):
        graph.validate()


def test_a_pe_in_two_graphs_is_refused():
    pe = Double()
    WorkflowGraph().connect(Source(), "output", pe, "input")
    with pytest.raises(GraphError, match="PE Double is already used in another WorkflowGraph"):
        WorkflowGraph().connect(Source(), "output", pe, "input")


def test_a_grouping_on_an_undeclared_port_is_refused():
    class Count(GenericPE):
        def __init__(self):
            super().__init__()
            self._add_input("input")

    count = Count()
    count.inputconnections["inptu"] = {GROUPING: [0]}  # meant: inputconnections["input"][GROUPING]
    graph = WorkflowGraph()
    graph.connect(Source(), "output", count, "input")
    with pytest.raises(GraphError, match=r"PE Count: input port 'inptu' was never declared.*_add_input\('inptu'"):
        graph.validate()


@pytest.mark.parametrize(
    "grouping, message",
    [
        ([], "empty group-by grouping on input Count.input"),
        (2.5, "unknown grouping 2.5 on input Count.input"),
        ({"by": 0}, "unknown grouping {'by': 0} on input Count.input"),
    ],
)
def test_a_malformed_grouping_is_refused(grouping, message):
    class Count(GenericPE):
        def __init__(self):
            super().__init__()
            self._add_input("input", grouping=grouping)

    graph = WorkflowGraph()
    graph.connect(Source(), "output", Count(), "input")
    with pytest.raises(GraphError, match=re.escape(message)):
        graph.validate()


def test_names_are_made_unique_in_the_order_pes_are_added():
    graph = WorkflowGraph()
    pes = [Double() for _ in range(3)]
    graph.connect(Source(), "output", pes[0], "input")
    graph.connect(pes[0], "output", pes[1], "input")
    graph.connect(pes[1], "output", pes[2], "input")
    assert [pe.name for pe in pes] == ["Double", "Double1", "Double2"]
    assert graph.names() == ["Source", "Double", "Double1", "Double2"]
    assert graph.get("Double1") is pes[1]


def test_duplicate_names_after_manual_renaming_are_refused():
    graph = WorkflowGraph()
    a, b = Double(), Double()
    graph.connect(Source(), "output", a, "input")
    graph.connect(a, "output", b, "input")
    b.name = "Double"
    with pytest.raises(GraphError, match="two PEs are named 'Double'"):
        graph.validate()


def test_an_empty_graph_is_refused():
    with pytest.raises(GraphError, match="no PEs"):
        WorkflowGraph().validate()
    with pytest.raises(GraphError, match="no PEs"):
        run(WorkflowGraph())


def test_add_refuses_what_is_not_a_pe():
    with pytest.raises(GraphError, match="is not a PE"):
        WorkflowGraph().add(object())


def test_get_of_an_unknown_name_lists_the_pes():
    graph = WorkflowGraph()
    graph.connect(Source(), "output", Double(), "input")
    with pytest.raises(GraphError, match="no PE named 'Dubble' in the graph \\(PEs: Source, Double\\)"):
        graph.get("Dubble")


def test_connecting_the_same_ports_twice_adds_two_streams_as_in_dispel4py():
    graph = WorkflowGraph()
    src, dbl = Source(), Double()
    graph.connect(src, "output", dbl, "input")
    graph.connect(src, "output", dbl, "input")
    assert len(graph.edges) == 2
    assert run(graph, inputs=2).output(dbl) == [2, 2, 2, 2]


def test_reading_the_graph():
    graph = WorkflowGraph()
    src, a, b, join = Source(), Double(), Double(), Double()
    graph.connect(src, "output", a, "input")
    graph.connect(src, "output", b, "input")
    graph.connect(a, "output", join, "input")
    graph.connect(b, "output", join, "input")
    assert graph.topological_order() == ["Source", "Double", "Double1", "Double2"]
    assert graph.roots() == ["Source"]
    assert graph.successors("Source") == ["Double", "Double1"]
    assert graph.predecessors("Double2") == ["Double", "Double1"]
    assert graph.unconnected_outputs() == [("Double2", "output")]
