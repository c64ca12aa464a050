"""A tee: one producer output connected to two consumers, each gets every item."""

from hpcflow import WorkflowGraph
from tests.dispel4py_corpus.pes import Identity, NumberProducer

producer = NumberProducer()
left, right = Identity(), Identity()
graph = WorkflowGraph()
graph.connect(producer, "output", left, "input")
graph.connect(producer, "output", right, "input")
