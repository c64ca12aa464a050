"""Split and merge: two producer outputs through two branches into one two-input PE."""

from hpcflow import WorkflowGraph
from tests.dispel4py_corpus.pes import Identity, IdentityWriter, Merge, NumberProducer

producer = NumberProducer(2)
left, right, merge = Identity(), IdentityWriter(), Merge()
graph = WorkflowGraph()
graph.connect(producer, "output0", left, "input")
graph.connect(producer, "output1", right, "input")
graph.connect(left, "output", merge, "input0")
graph.connect(right, "output", merge, "input1")
