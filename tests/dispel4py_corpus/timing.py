"""dispel4py's delayed_pipeline: a PE wrapped in ProcessTimingPE, which logs its mean
processing time when it finishes."""

from hpcflow import ProcessTimingPE, WorkflowGraph
from tests.dispel4py_corpus.pes import Identity, NumberProducer

producer = NumberProducer()
first = Identity()
timed = ProcessTimingPE(Identity())
graph = WorkflowGraph()
graph.connect(producer, "output", first, "input")
graph.connect(first, "output", timed, "input")
