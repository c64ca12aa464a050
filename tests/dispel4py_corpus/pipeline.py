"""A pipeline: producer -> three copies, the last output unconnected."""

from hpcflow import WorkflowGraph
from tests.dispel4py_corpus.pes import Identity, IdentityWriter, NumberProducer

producer = NumberProducer()
first, second, last = Identity(), IdentityWriter(), Identity()
graph = WorkflowGraph()
graph.connect(producer, "output", first, "input")
graph.connect(first, "output", second, "input")
graph.connect(second, "output", last, "input")
