"""The `simple` mapping, the reference semantics: outputs, metrics, failures, repeatability."""

from __future__ import annotations

import json

import pytest

import hpcflow
from hpcflow import GenericPE, IterativePE, PEError, ProducerPE, UsageError, WorkflowGraph, run


class Numbers(ProducerPE):
    def __init__(self):
        super().__init__()
        self.n = 0

    def _process(self, inputs):
        self.n += 1
        return self.n


class Square(IterativePE):
    def _process(self, data):
        return data * data


class Total(GenericPE):
    def __init__(self):
        super().__init__()
        self._add_input("input", grouping="global")
        self._add_output("output")
        self._add_output("count")
        self.total = 0
        self.count = 0

    def process(self, inputs):
        self.total += inputs["input"]
        self.count += 1

    def postprocess(self):
        self.write("output", self.total)


def squares_graph():
    graph = WorkflowGraph()
    numbers, square, total = Numbers(), Square(), Total()
    graph.connect(numbers, "output", square, "input")
    graph.connect(square, "output", total, "input")
    return graph, numbers, square, total


def test_outputs_of_every_unconnected_port():
    graph, numbers, square, total = squares_graph()
    result = run(graph, inputs={numbers: 100}, mapping="simple")
    assert result.output(total) == [338350]
    assert result.outputs == {"Total": {"output": [338350], "count": []}}  # written to or not
    assert result.output("Total", "count") == []


def test_output_of_a_name_or_port_that_is_not_an_unconnected_output_is_an_error():
    graph, numbers, square, total = squares_graph()
    result = run(graph, inputs=2)
    with pytest.raises(UsageError, match=r"Totl.output is not an unconnected output .*Total.output, Total.count"):
        result.output("Totl")
    with pytest.raises(UsageError, match="Square.output is not an unconnected output"):
        result.output(square)  # connected: its items went downstream


def test_output_takes_the_callers_pe_after_its_name_was_made_unique():
    graph = WorkflowGraph()
    numbers, first, second = Numbers(), Square(), Square()
    graph.connect(numbers, "output", first, "input")
    graph.connect(numbers, "output", second, "input")
    assert second.name == "Square1"
    result = run(graph, inputs=3)
    assert result.output(second) == result.output(first) == [1, 4, 9]


def test_metrics_fields():
    graph, numbers, _, _ = squares_graph()
    result = run(graph, inputs={numbers: 10}, workflow="squares", params={"n": 10})
    m = result.metrics
    assert (m.workflow, m.params, m.mapping, m.processes) == ("squares", {"n": 10}, "simple", 1)
    assert m.items == {"Numbers": 10, "Square": 10, "Total": 10}
    assert m.runtime_s > 0 and m.process_time_s == m.runtime_s and m.cpu_time_s >= 0
    assert m.timeline[0] == [0.0, 1, 0] and m.timeline[-1][0] == pytest.approx(m.runtime_s, abs=1e-5)
    assert all(len(sample) == 3 for sample in m.timeline)
    assert m.host and m.allocation["cpus"] >= 1 and m.allocation["scheduler"] == "local"
    assert m.hpcflow_version == hpcflow.__version__
    assert (m.status, m.errors) == ("ok", 0)
    fields = ("workflow", "params", "mapping", "processes", "runtime_s", "process_time_s", "cpu_time_s")
    fields += ("items", "timeline", "host", "allocation", "hpcflow_version")
    d = json.loads(json.dumps(m.to_dict()))
    assert {k: d[k] for k in fields} == {k: getattr(m, k) for k in fields}


def test_metrics_out_writes_the_json(tmp_path):
    graph, _, _, _ = squares_graph()
    path = tmp_path / "m.json"
    result = run(graph, inputs=3, metrics_out=str(path), extra_metrics={"work_s": 1.5})
    written = json.loads(path.read_text())
    assert written["items"] == {"Numbers": 3, "Square": 3, "Total": 3}
    assert written["work_s"] == result.metrics.work_s == 1.5


def test_processes_none_uses_the_allocation_and_simple_runs_in_one():
    graph, _, _, total = squares_graph()
    result = run(graph, inputs=3, processes=None)
    assert result.output(total) == [14]
    assert result.metrics.processes == 1


def test_running_the_same_graph_twice_gives_the_same_result_and_leaves_the_pes_alone():
    graph, numbers, square, total = squares_graph()
    first = run(graph, inputs=5)
    second = run(graph, inputs=5)
    assert first.outputs == second.outputs == {"Total": {"output": [55], "count": []}}
    assert (numbers.n, total.total, total.count) == (0, 0, 0)
    assert numbers._emit is None


def test_every_root_is_fed():
    graph = WorkflowGraph()
    a, b, total = Numbers(), Numbers(), Total()
    graph.connect(a, "output", total, "input")
    graph.connect(b, "output", total, "input")
    assert run(graph, inputs={a: 3, b: 4}).output(total) == [6 + 10]


def test_roots_are_fed_one_after_the_other_in_the_order_they_were_added():
    class Tag(IterativePE):
        def _process(self, data):
            return data

    graph = WorkflowGraph()
    a, b, tag = Numbers(), Numbers(), Tag()
    graph.connect(b, "output", tag, "input")
    graph.connect(a, "output", tag, "input")
    b.name, a.name = "B", "A"
    assert run(graph, inputs={"A": 2, "B": 3}).output(tag) == [1, 2, 3, 1, 2]  # B's 3 items, then A's 2


class Fragile(IterativePE):
    def _process(self, data):
        if data == 3:
            raise ValueError("three is bad")
        return data


def test_a_failing_pe_is_a_pe_error_with_the_partial_result():
    graph = WorkflowGraph()
    numbers, fragile = Numbers(), Fragile()
    graph.connect(numbers, "output", fragile, "input")
    with pytest.raises(PEError) as info:
        run(graph, inputs=5)
    err = info.value
    assert (err.pe, err.instance, err.item) == ("Fragile", 0, "{'input': 3}")
    assert err.error == "ValueError: three is bad"
    assert "Traceback" in err.tb and "three is bad" in err.tb
    assert str(err) == "PE Fragile[0] failed on item {'input': 3}: ValueError: three is bad"
    assert err.result.output(fragile) == [1, 2]
    assert err.result.metrics.status == "failed"
    assert err.result.metrics.items == {"Numbers": 3, "Fragile": 3}


def test_a_failing_pe_still_writes_metrics_out(tmp_path):
    graph = WorkflowGraph()
    graph.connect(Numbers(), "output", Fragile(), "input")
    with pytest.raises(PEError):
        run(graph, inputs=5, metrics_out=str(tmp_path / "m.json"))
    assert json.loads((tmp_path / "m.json").read_text())["status"] == "failed"


@pytest.mark.parametrize("stage", ["preprocess", "postprocess"])
def test_a_failing_preprocess_or_postprocess_is_named(stage):
    class Broken(IterativePE):
        def _process(self, data):
            return data

    setattr(Broken, stage, lambda self: 1 / 0)
    graph = WorkflowGraph()
    graph.connect(Numbers(), "output", Broken(), "input")
    with pytest.raises(PEError, match=f"PE Broken\\[0\\] failed on item <{stage}>: ZeroDivisionError"):
        run(graph, inputs=2)


def test_a_long_item_is_shortened_in_the_error():
    class Fails(IterativePE):
        def _process(self, data):
            raise RuntimeError("no")

    class Big(ProducerPE):
        def _process(self, inputs):
            return "x" * 10_000

    graph = WorkflowGraph()
    graph.connect(Big(), "output", Fails(), "input")
    with pytest.raises(PEError) as info:
        run(graph, inputs=1)
    assert len(info.value.item) < 200


def test_collect_false_gathers_nothing():
    graph, _, _, total = squares_graph()
    assert run(graph, inputs=3, collect=False).output(total) == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mapping": "nope"}, "unknown mapping 'nope'; choose one of: simple"),
        ({"colour": "red"}, "unknown run option(s) colour"),
        ({"on_error": "ignore"}, "unknown on_error 'ignore'"),
        ({"start_method": "clone"}, "unknown start_method 'clone'"),
        ({"max_queued": 0}, "max_queued must be at least 1"),
    ],
)
def test_bad_run_arguments_are_usage_errors(kwargs, message):
    graph, _, _, _ = squares_graph()
    with pytest.raises(UsageError) as info:
        run(graph, inputs=1, **kwargs)
    assert message in str(info.value)
