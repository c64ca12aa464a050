"""Two producers feeding one input: a counter and a producer writing a range per call."""

from hpcflow import WorkflowGraph
from tests.dispel4py_corpus.pes import Identity, NumberProducer, RangeProducer

numbers = NumberProducer()
ranges = RangeProducer(100, 104)
both = Identity()
graph = WorkflowGraph()
graph.connect(numbers, "output", both, "input")
graph.connect(ranges, "output", both, "input")
