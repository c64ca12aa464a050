"""dispel4py's API, element by element, with dispel4py's meaning (read from dispel4py's
core.py, base.py, workflow_graph.py and new/processor.py): the `_process` /
`_preprocess` / `_postprocess` hooks, composites, the names a ported module imports,
`numprocesses`, `id`, port types, `log`, `add()`, `rank`, `graph.graph`, `draw`."""

from __future__ import annotations

import pytest
from graphs import chain

from hpcflow import (
    DESCRIPTION,
    GROUPING,
    META,
    NAME,
    TYPE,
    WRITER,
    BasePE,
    CompositePE,
    ConsumerPE,
    GenericPE,
    GraphError,
    IterativePE,
    SimpleFunctionPE,
    UsageError,
    WorkflowGraph,
    WorkflowNode,
    create_iterative_chain,
    draw,
    run,
)
from hpcflow.plan import STATIC, make_plan, stateful_pes
from tests.dispel4py_corpus.pes import Identity, NumberProducer, RunningCount


class Tagged(GenericPE):
    """Only dispel4py's hooks: `_preprocess` sets up, `_process` returns a dict,
    `_postprocess` writes at the end."""

    def __init__(self):
        GenericPE.__init__(self)
        self._add_input("input")
        self._add_output("output")
        self._add_output("summary")

    def _preprocess(self):
        self.tag = "seen"
        self.total = 0

    def _process(self, inputs):
        self.total += inputs["input"]
        return {"output": (self.tag, inputs["input"])}

    def _postprocess(self):
        self.write("summary", self.total)


# -- the hooks ---------------------------------------------------------------------------


def test_default_process_calls_process_hook_and_lifecycle_calls_the_other_hooks():
    prod, tagged = NumberProducer(), Tagged()
    result = run(chain(prod, tagged), {prod: 4})
    assert result.output(tagged) == [("seen", i) for i in range(1, 5)]
    assert result.output(tagged, "summary") == [10]


def test_postprocess_hook_makes_a_pe_stateful():
    graph = chain(NumberProducer(), Tagged())
    assert stateful_pes(graph) == {"Tagged"}
    with pytest.raises(UsageError, match="PE Tagged is stateful"):
        run(graph, 2, "dyn_multi", 3)


class NoLogic(GenericPE):
    def __init__(self):
        GenericPE.__init__(self)
        self._add_input("input")
        self._add_output("output")


class OnlyAtTheEnd(NoLogic):
    def postprocess(self):
        self.write("output", "done")


@pytest.mark.parametrize("mapping", ["simple", "multi", "hybrid_multi"])
def test_a_pe_that_can_never_produce_anything_is_an_error_before_the_run(mapping):
    with pytest.raises(GraphError, match=r"^PE NoLogic overrides neither process\(\) nor _process\(\)"):
        run(chain(NumberProducer(), NoLogic()), 3, mapping, 3)


@pytest.mark.parametrize(
    "pe,why",
    [
        (IterativePE(), "PE IterativePE overrides neither"),
        (ConsumerPE(), "PE ConsumerPE overrides neither"),
        (SimpleFunctionPE(), "PE SimpleFunctionPE is a SimpleFunctionPE without a compute_fn"),
    ],
)
def test_the_library_pes_alone_have_no_logic(pe, why):
    with pytest.raises(GraphError, match=why):
        run(chain(NumberProducer(), pe), 1)


def test_a_pe_with_logic_only_at_the_end_or_set_on_the_instance_runs():
    end = OnlyAtTheEnd()
    assert run(chain(NumberProducer(), end), 2).output(end) == ["done"]
    patched = NoLogic()
    patched._process = lambda inputs: {"output": inputs["input"] * 10}
    assert run(chain(NumberProducer(), patched), 2).output(patched) == [10, 20]


# -- composites ------------------------------------------------------------------------


def two_stage(graph, first_name):
    first, second = Identity(), Identity()
    first.name = first_name
    graph.connect(first, "output", second, "input")
    graph._map_input("in", first, "input")
    graph._map_output("out", second, "output")


def test_a_composite_connects_like_a_pe_and_its_output_is_found_by_its_port():
    prod = NumberProducer()
    comp = CompositePE(two_stage, {"first_name": "Head"})
    graph = WorkflowGraph()
    graph.connect(prod, "output", comp, "in")
    result = run(graph, {prod: 3}, "multi", 4)
    assert sorted(result.output(comp, "out")) == [1, 2, 3]
    assert list(result.outputs) == ["Identity"]  # the inner PE's name, as dispel4py's id
    assert list(result.metrics.items) == ["NumberProducer", "Head", "Identity"]


def test_flatten_in_place_as_dispel4py_tests_do():
    prod, cons = NumberProducer(), Identity()
    comp = CompositePE(two_stage, {"first_name": "Head"})
    graph = WorkflowGraph()
    graph.connect(prod, "output", comp, "in")
    graph.connect(comp, "out", cons, "input")
    assert [type(n.getContainedObject()).__name__ for n in graph.graph.nodes()] == [
        "NumberProducer",
        "CompositePE",
        "Identity",
    ]
    graph.flatten()
    assert graph.names() == ["NumberProducer", "Head", "Identity", "Identity1"]
    assert [n.getContainedObject() for n in graph.graph.nodes()] == graph.pes
    assert run(graph, {prod: 3}).outputs == {cons.id: {"output": [1, 2, 3]}}


def test_names_are_unique_across_composites_when_added():
    a = create_iterative_chain([abs])
    b = create_iterative_chain([abs])
    prod = NumberProducer()
    graph = WorkflowGraph()
    graph.connect(prod, "output", a, "input")
    graph.connect(prod, "output", b, "input")
    names = [a.outputmappings["output"][0].id, b.outputmappings["output"][0].id]
    assert names == ["PE_abs", "PE_abs1"]
    assert run(graph, {prod: 2}).outputs == {"PE_abs": {"output": [1, 2]}, "PE_abs1": {"output": [1, 2]}}


def test_create_iterative_chain_returns_a_composite_graph():
    def add(a, b):
        return a + b

    def is_odd(a):
        return a % 2 == 1

    chain = create_iterative_chain([(add, {"b": 1}), is_odd], name_prefix="F_", name_suffix="_x")
    assert isinstance(chain, WorkflowGraph)
    assert chain.names() == ["F_add_x", "F_is_odd_x"]
    assert chain.inputmappings["input"][0].name == "F_add_x"
    prod = NumberProducer()
    graph = WorkflowGraph()
    graph.connect(prod, "output", chain, "input")
    assert run(graph, {prod: 2}).output(chain) == [False, True]


def test_composite_mistakes_are_graph_errors_naming_the_composite():
    comp = CompositePE(two_stage, {"first_name": "Head"})
    graph = WorkflowGraph()
    graph.connect(NumberProducer(), "output", comp, "inptu")
    with pytest.raises(GraphError, match=r"composite CompositePE has no input 'inptu' \(its inputs: 'in'\)"):
        run(graph, 1)
    with pytest.raises(GraphError, match="already used in another WorkflowGraph"):
        WorkflowGraph().add(comp)
    with pytest.raises(GraphError, match="cannot contain itself"):
        comp.add(graph)


# -- names a ported module imports --------------------------------------------------------


def test_connection_keys_and_base_pe():
    assert (NAME, TYPE, GROUPING, DESCRIPTION, META, WRITER) == ("name", "type", "grouping", "descr", "meta", "writer")
    base = BasePE(num_inputs=3, num_outputs=2)
    assert list(base.inputconnections) == ["input0", "input1", "input2"]
    assert list(base.outputconnections) == ["output0", "output1"]
    named = BasePE(inputs=["a", "b"], outputs=["x"])
    assert named.inputconnections == {"a": {NAME: "a"}, "b": {NAME: "b"}}


def test_port_types_are_kept_and_propagated():
    prod, cons = NumberProducer(), Identity()
    cons._add_input("input", grouping=[0], tuple_type=["integer"])
    assert cons.inputconnections["input"] == {NAME: "input", GROUPING: [0], TYPE: ["integer"]}
    assert prod.getOutputTypes() == {"output": ["number"]}
    with pytest.raises(GraphError, match="PE Identity: no output type defined for 'output'"):
        cons.getOutputTypes()

    class Typed(Identity):
        def setInputTypes(self, types):  # noqa: N802 (dispel4py's name)
            self.outputconnections["output"][TYPE] = types["input"]

    typed = Typed()
    graph = chain(prod, typed)
    graph.propagate_types()
    assert typed.getOutputTypes() == {"output": ["number"]}


def test_add_returns_the_node_which_reads_as_its_pe():
    graph = WorkflowGraph()
    pe = NumberProducer()
    node = graph.add(pe)
    assert isinstance(node, WorkflowNode) and node.getContainedObject() is pe
    assert node.nodeType == WorkflowNode.WORKFLOW_NODE_PE and node.name == "NumberProducer"
    assert graph.add(pe) is node
    cons = Identity()
    graph.connect(node, "output", cons, "input")  # a node is accepted wherever a PE is
    assert run(graph, {node: 2}).output(cons) == [1, 2]


def test_graph_view_has_dispel4py_edge_attributes():
    prod, cons = NumberProducer(), Identity()
    graph = chain(prod, cons)
    nodes = graph.graph.nodes()
    assert [n.getContainedObject() for n in nodes] == [prod, cons]
    (u, v, attrs) = graph.graph.edges(data=True)[0]
    assert attrs["DIRECTION"] == (prod, cons)
    assert (attrs["FROM_CONNECTION"], attrs["TO_CONNECTION"]) == ("output", "input")
    assert graph.graph[graph.objToNode[cons]][graph.objToNode[prod]] == attrs
    cons.id = "A"
    assert graph.getContainedObjects() == [cons, prod]  # sorted by id


def test_draw_shows_composites_as_clusters_even_before_they_can_run():
    comp = create_iterative_chain([abs, round])
    inner = WorkflowGraph()
    prod = NumberProducer()
    inner.connect(prod, "output", comp, "input")
    inner.inputmappings = {"input": (prod, "input")}  # a port the PE does not have: drawn anyway
    root = WorkflowGraph()
    root.connect(NumberProducer(), "output", inner, "input")
    dot = draw(root)
    assert dot.count("subgraph cluster_") == 2
    assert '"PE_abs" -> "PE_round" [label="output -> input"];' in dot
    assert '"NumberProducer1" -> "PE_abs" [label="output -> input"];' in dot  # inside the cluster
    assert '"NumberProducer" -> "NumberProducer1" [label="output -> input"];' in dot  # into it


# -- semantics --------------------------------------------------------------------------


def test_numprocesses_keyword_fixes_the_instances():
    counter = RunningCount()
    fixed = Identity()
    GenericPE.__init__(fixed, numprocesses=2)  # as a subclass passing it on would
    fixed._add_input("input")
    fixed._add_output("output")
    graph = chain(NumberProducer(), fixed)
    plan = make_plan(graph, STATIC, 8, "multi")
    assert plan.instances["Identity"] == 2
    assert "numprocesses" not in vars(counter)  # not given: the mapping decides


def test_id_is_the_name_outputs_are_keyed_by_and_is_assignable():
    prod, cons = NumberProducer(), Identity()
    cons.id = "Printer"
    graph = chain(prod, cons)
    assert cons.name == "Printer"
    results = run(graph, {prod.id: 3}).outputs
    assert results == {cons.id: {"output": [1, 2, 3]}}


class Ranked(IterativePE):
    def __init__(self):
        IterativePE.__init__(self)
        self._add_input("input", grouping=[0])

    def _process(self, data):
        self.log(f"got {data}")
        return [data[0], self.rank]


def test_rank_is_the_instance_and_log_prints_as_dispel4py(capfd):
    prod = NumberProducer()
    pair = SimpleFunctionPE(lambda n: [n % 3], {})
    ranked = Ranked()
    ranked.numprocesses = 3
    graph = WorkflowGraph()
    graph.connect(prod, "output", pair, "input")
    graph.connect(pair, "output", ranked, "input")
    got = run(graph, {prod: 6}, "simple").output(ranked)
    ranks = {key: {rank for k, rank in got if k == key} for key in (0, 1, 2)}
    assert all(len(r) == 1 and r <= {0, 1, 2} for r in ranks.values())  # each key on one instance
    out = capfd.readouterr().out.splitlines()
    assert sorted(out) == sorted(f"Ranked (rank {rank}): got [{key}]" for key, rank in got)


def test_log_goes_to_run_log_too(in_process, tmp_path):
    (tmp_path / "logs.py").write_text(
        "from hpcflow import IterativePE, WorkflowGraph\n"
        "from tests.dispel4py_corpus.pes import NumberProducer\n"
        "class Say(IterativePE):\n"
        "    def _process(self, data):\n"
        "        self.log('hello %s' % data)\n"
        "        return data\n"
        "graph = WorkflowGraph()\n"
        "graph.connect(NumberProducer(), 'output', Say(), 'input')\n"
    )
    code, out, err = in_process("run", "logs.py", "--inputs", "2", "--run-dir", "r", "-q")
    assert code == 0, err
    assert "Say (rank 0): hello 1\nSay (rank 0): hello 2\n" in out
    log = (tmp_path / "r" / "run.log").read_text()
    assert "Say[0]: hello 1" in log and "Say[0]: hello 2" in log


class Appends(IterativePE):
    """Changes its input in place, as PEs do."""

    def __init__(self):
        IterativePE.__init__(self)

    def _process(self, data):
        data.append("mine")
        return data


class AsList(IterativePE):
    def __init__(self):
        IterativePE.__init__(self)

    def _process(self, data):
        return [data]


@pytest.mark.parametrize("mapping", ["simple", "multi", "dyn_multi"])
def test_each_branch_of_a_tee_gets_its_own_copy(mapping):
    prod, as_list, changer, reader = NumberProducer(), AsList(), Appends(), Identity()
    graph = chain(prod, as_list, changer)
    graph.connect(as_list, "output", reader, "input")
    result = run(graph, {prod: 3}, mapping, 5)
    assert sorted(result.output(reader)) == [[1], [2], [3]]
    assert sorted(result.output(changer)) == [[1, "mine"], [2, "mine"], [3, "mine"]]
