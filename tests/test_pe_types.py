"""Every PE type and the ways a PE emits: dispel4py's API, run on the `simple` mapping."""

from __future__ import annotations

import logging

import pytest

from hpcflow import (
    ConsumerPE,
    GenericPE,
    GraphError,
    IterativePE,
    PEError,
    ProducerPE,
    SimpleFunctionPE,
    UsageError,
    WorkflowGraph,
    create_iterative_chain,
    run,
)


class Counter(ProducerPE):
    """Emits 1, 2, 3, ...: state kept between calls."""

    def __init__(self):
        super().__init__()
        self.n = 0

    def _process(self, inputs):
        self.n += 1
        return self.n


class Double(IterativePE):
    def _process(self, data):
        return 2 * data


def test_producer_given_n_is_called_n_times_in_order_keeping_state():
    graph = WorkflowGraph()
    counter = graph.add(Counter())
    result = run(graph, inputs={counter: 5})
    assert result.output(counter) == [1, 2, 3, 4, 5]
    assert result.metrics.items == {"Counter": 5}


def test_producer_receives_the_dicts_of_a_list_feed_in_order():
    class Echo(ProducerPE):
        def _process(self, inputs):
            return inputs["x"]

    graph = WorkflowGraph()
    echo = graph.add(Echo())
    assert run(graph, inputs={echo: [{"x": "a"}, {"x": "b"}, {"x": "c"}]}).output(echo) == ["a", "b", "c"]


def test_iterative_pe_emits_one_item_per_input_and_none_filters():
    class KeepEven(IterativePE):
        def _process(self, data):
            return data if data % 2 == 0 else None

    graph = WorkflowGraph()
    counter, double, even = Counter(), Double(), KeepEven()
    graph.connect(counter, "output", even, "input")
    graph.connect(even, "output", double, "input")
    result = run(graph, inputs=6)
    assert result.output(double) == [4, 8, 12]
    assert result.metrics.items == {"Counter": 6, "KeepEven": 6, "Double": 3}


def test_consumer_pe_receives_every_item_and_has_no_output(tmp_path):
    sink = tmp_path / "consumed.txt"

    class Append(ConsumerPE):
        def _process(self, data):
            with open(sink, "a") as f:
                f.write(f"{data}\n")

    graph = WorkflowGraph()
    consumer = Append()
    graph.connect(Counter(), "output", consumer, "input")
    result = run(graph, inputs=4)
    assert sink.read_text().split() == ["1", "2", "3", "4"]
    assert consumer.outputconnections == {}
    assert result.outputs == {}


def test_write_emits_many_items_per_call():
    class Repeat(IterativePE):
        def _process(self, data):
            for _ in range(data):
                self.write("output", data)

    graph = WorkflowGraph()
    repeat = Repeat()
    graph.connect(Counter(), "output", repeat, "input")
    assert run(graph, inputs=3).output(repeat) == [1, 2, 2, 3, 3, 3]


def test_generic_pe_with_two_input_and_two_output_ports():
    class Split(GenericPE):
        """Numbers from `left` and `right`, written to `even` or `odd` with their port."""

        def __init__(self):
            super().__init__()
            self._add_input("left")
            self._add_input("right")
            self._add_output("even")
            self._add_output("odd")

        def process(self, inputs):
            ((port, value),) = inputs.items()
            return {"even" if value % 2 == 0 else "odd": (port, value)}

    graph = WorkflowGraph()
    left, right, split = Counter(), Counter(), Split()
    graph.connect(left, "output", split, "left")
    graph.connect(right, "output", split, "right")
    result = run(graph, inputs={left: 3, right: 2})
    assert sorted(result.output(split, "even")) == [("left", 2), ("right", 2)]
    assert sorted(result.output(split, "odd")) == [("left", 1), ("left", 3), ("right", 1)]


def test_process_may_both_write_and_return_a_dict():
    class Both(IterativePE):
        def _process(self, data):
            self.write("output", -data)
            return data

    graph = WorkflowGraph()
    both = Both()
    graph.connect(Counter(), "output", both, "input")
    assert run(graph, inputs=2).output(both) == [-1, 1, -2, 2]


class Sum(GenericPE):
    """A global aggregate that emits its total in postprocess()."""

    def __init__(self):
        super().__init__()
        self._add_input("input", grouping="global")
        self._add_output("output")
        self.total = 0

    def process(self, inputs):
        self.total += inputs["input"]

    def postprocess(self):
        self.write("output", self.total)


def test_postprocess_output_flows_downstream():
    graph = WorkflowGraph()
    total, double = Sum(), Double()
    graph.connect(Counter(), "output", total, "input")
    graph.connect(total, "output", double, "input")
    result = run(graph, inputs=4)
    assert result.output(double) == [20]
    assert result.metrics.items["Double"] == 1


def test_second_aggregate_sees_the_first_ones_postprocess_output_before_its_own_postprocess():
    class Collect(GenericPE):
        def __init__(self):
            super().__init__()
            self._add_input("input", grouping="global")
            self._add_output("output")
            self.seen = []

        def process(self, inputs):
            self.seen.append(inputs["input"])

        def postprocess(self):
            self.write("output", list(self.seen))

    graph = WorkflowGraph()
    first, second = Sum(), Collect()
    graph.connect(Counter(), "output", first, "input")
    graph.connect(first, "output", second, "input")
    assert run(graph, inputs=3).output(second) == [[6]]


def test_preprocess_runs_once_before_any_data():
    class Offset(IterativePE):
        def __init__(self):
            super().__init__()
            self.offset = None
            self.calls = 0

        def preprocess(self):
            self.calls += 1
            self.offset = 100

        def _process(self, data):
            return (self.calls, data + self.offset)

    graph = WorkflowGraph()
    offset = Offset()
    graph.connect(Counter(), "output", offset, "input")
    assert run(graph, inputs=2).output(offset) == [(1, 101), (1, 102)]


class WritesTypo(IterativePE):
    def _process(self, data):
        self.write("outptu", data)


class ReturnsTypo(IterativePE):
    def process(self, inputs):
        return {"outptu": inputs["input"]}


@pytest.mark.parametrize("pe_class", [WritesTypo, ReturnsTypo])
def test_writing_to_an_undeclared_port_makes_it_an_output_as_in_dispel4py(pe_class, caplog):
    graph = WorkflowGraph()
    graph.connect(Counter(), "output", pe_class(), "input")
    with caplog.at_level(logging.INFO, logger=f"hpcflow.pe.{pe_class.__name__}"):
        result = run(graph, inputs=2)
    assert result.outputs[pe_class.__name__] == {"output": [], "outptu": [1, 2]}
    assert f"PE {pe_class.__name__} wrote to output port 'outptu', which it never declared" in caplog.text


def test_process_returning_a_non_dict_is_a_pe_error_that_says_what_to_return():
    class ReturnsList(GenericPE):
        def __init__(self):
            super().__init__()
            self._add_input("input")
            self._add_output("output")

        def process(self, inputs):
            return [inputs["input"]]

    graph = WorkflowGraph()
    graph.connect(Counter(), "output", ReturnsList(), "input")
    with pytest.raises(PEError, match=r"ReturnsList.*returned a list; return a dict"):
        run(graph, inputs=1)


def test_write_outside_a_run_is_a_usage_error():
    with pytest.raises(UsageError, match="outside a run"):
        Double().write("output", 1)


def test_ports_of_the_base_types():
    assert (list(IterativePE().inputconnections), list(IterativePE().outputconnections)) == (["input"], ["output"])
    assert (list(ProducerPE().inputconnections), list(ProducerPE().outputconnections)) == ([], ["output"])
    assert (list(ConsumerPE().inputconnections), list(ConsumerPE().outputconnections)) == (["input"], [])


def test_dispel4py_attributes_rank_id_and_log():
    pe = Double()
    assert (pe.name, pe.id, pe.rank) == ("Double", "Double", 0)
    pe.log("a message")  # a logger call, never a print


def test_simple_function_pe_is_named_after_its_function_and_passes_params():
    def scale(data, factor=1, shift=0):
        return data * factor + shift

    pe = SimpleFunctionPE(scale, {"factor": 10, "shift": 1})
    assert pe.name == "PE_scale"
    assert SimpleFunctionPE().name == "SimpleFunctionPE"
    graph = WorkflowGraph()
    graph.connect(Counter(), "output", pe, "input")
    assert run(graph, inputs=3).output(pe) == [11, 21, 31]


def inc(data, by=1):
    return data + by


def dbl(data):
    return 2 * data


def test_create_iterative_chain_names_params_and_mappings_as_dispel4py():
    chain = create_iterative_chain([inc, (inc, {"by": 10}), dbl])
    assert chain.names() == ["PE_inc", "PE_inc1", "PE_dbl"]
    first, last = chain.get("PE_inc"), chain.get("PE_dbl")
    assert chain.inputmappings == {"input": (first, "input")}
    assert chain.outputmappings == {"output": (last, "output")}
    assert [(e.src, e.dst) for e in chain.edges] == [("PE_inc", "PE_inc1"), ("PE_inc1", "PE_dbl")]
    assert chain.get("PE_inc1").params == {"by": 10}
    assert chain.roots() == ["PE_inc"]
    result = run(chain, inputs={"PE_inc": [{"input": 1}, {"input": 2}]})
    assert result.output(last) == [24, 26]


def test_create_iterative_chain_prefix_suffix_and_class():
    class Traced(SimpleFunctionPE):
        def _process(self, data):
            return ("traced", super()._process(data))

    chain = create_iterative_chain([dbl], FunctionPE_class=Traced, name_prefix="step_", name_suffix="_x")
    (pe,) = chain.pes
    assert isinstance(pe, Traced) and pe.name == "step_dbl_x"
    assert run(chain, inputs={pe: [{"input": 4}]}).output(pe) == [("traced", 8)]


def test_create_iterative_chain_of_nothing_is_a_graph_error():
    with pytest.raises(GraphError, match="at least one function"):
        create_iterative_chain([])
