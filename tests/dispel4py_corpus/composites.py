"""A composite of composites: a CompositePE built by a function with parameters, inside a
CompositePE, inside a plain WorkflowGraph given input and output mappings."""

from hpcflow import CompositePE, WorkflowGraph
from tests.dispel4py_corpus.pes import Identity, NumberProducer, Offset, Scale


def scale_then_offset(graph, factor, offset):
    scale, shift = Scale(factor), Offset(offset)
    graph.connect(scale, "output", shift, "input")
    graph._map_input("in", scale, "input")
    graph._map_output("out", shift, "output")


inner = CompositePE(scale_then_offset, {"factor": 2, "offset": 1})
middle = CompositePE()
times_ten = Scale(10)
middle.connect(inner, "out", times_ten, "input")
middle._map_input("input", inner, "in")
middle._map_output("output", times_ten, "output")

outer = WorkflowGraph()
minus_three = Offset(-3)
outer.connect(middle, "output", minus_three, "input")
outer.inputmappings = {"input": (middle, "input")}
outer.outputmappings = {"output": (minus_three, "output")}

producer = NumberProducer()
result = Identity()
graph = WorkflowGraph()
graph.connect(producer, "output", outer, "input")
graph.connect(outer, "output", result, "input")
