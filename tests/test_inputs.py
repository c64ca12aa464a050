"""Run inputs, as in dispel4py: an int for every root, or {pe_or_name: int | list of dicts}."""

from __future__ import annotations

import pytest

from hpcflow import GraphError, IterativePE, ProducerPE, UsageError, WorkflowGraph, run
from hpcflow.inputs import feed_length, iter_feed, normalize_inputs


class Source(ProducerPE):
    def _process(self, inputs):
        return inputs.get("x", 0)


class Stage(IterativePE):
    def _process(self, data):
        return data


@pytest.fixture
def two_roots():
    graph = WorkflowGraph()
    a, b, stage = Source(), Source(), Stage()
    graph.connect(a, "output", stage, "input")
    graph.connect(b, "output", stage, "input")
    return graph, a, b, stage


def test_an_int_is_the_iterations_of_every_root(two_roots):
    graph, *_ = two_roots
    assert normalize_inputs(graph, 3) == {"Source": 3, "Source1": 3}


def test_none_is_one_iteration(two_roots):
    graph, *_ = two_roots
    assert normalize_inputs(graph, None) == {"Source": 1, "Source1": 1}


def test_a_dict_by_pe_or_name(two_roots):
    graph, a, b, _ = two_roots
    assert normalize_inputs(graph, {a: 2, "Source1": 0}) == {"Source": 2, "Source1": 0}


def test_a_list_of_dicts_is_fed_in_order(two_roots):
    graph, a, b, stage = two_roots
    feeds = normalize_inputs(graph, {a: [{"x": 1}, {"x": 2}], b: ({"x": 3},)})
    assert feeds == {"Source": [{"x": 1}, {"x": 2}], "Source1": [{"x": 3}]}
    assert list(iter_feed(feeds["Source"])) == [{"x": 1}, {"x": 2}]
    assert list(iter_feed(2)) == [{}, {}]
    assert (feed_length(2), feed_length(feeds["Source"])) == (2, 2)
    assert sorted(run(graph, inputs={a: [{"x": 1}, {"x": 2}], b: [{"x": 3}]}).output(stage)) == [1, 2, 3]


@pytest.mark.parametrize(
    "inputs, message",
    [
        ("3", "inputs must be an int or a dict {pe: int | list of dicts}, got str"),
        ([1, 2], "inputs must be an int or a dict {pe: int | list of dicts}, got list"),
        (True, "inputs must be an int or a dict {pe: int | list of dicts}, got bool"),
        (-1, "inputs for PE Source must not be negative, got -1"),
        ({"Source": 1.5, "Source1": 1}, "inputs for PE Source must be an int or a list of dicts, got 1.5"),
        ({"Source": [1, 2], "Source1": 1}, "inputs for PE Source must be dicts {port: data}, got 1"),
        ({"Source": 1}, "no inputs for root PE(s) Source1; give each an int or a list of dicts"),
        ({"Source": 1, "Source1": 1, "Stage": 1}, "inputs name PE Stage, which a stream feeds"),
    ],
)
def test_bad_inputs_are_usage_errors(two_roots, inputs, message):
    graph, *_ = two_roots
    with pytest.raises(UsageError) as info:
        normalize_inputs(graph, inputs)
    assert message in str(info.value)


def test_inputs_for_a_pe_of_another_graph_or_an_unknown_name(two_roots):
    graph, *_ = two_roots
    with pytest.raises(GraphError, match="no PE named 'Sauce'"):
        normalize_inputs(graph, {"Sauce": 1})
    with pytest.raises(GraphError, match="PE Source is not in this graph"):
        normalize_inputs(graph, {Source(): 1})


def test_run_checks_the_inputs_before_running(two_roots):
    graph, *_ = two_roots
    with pytest.raises(UsageError, match="no inputs for root PE"):
        run(graph, inputs={"Source": 1})
