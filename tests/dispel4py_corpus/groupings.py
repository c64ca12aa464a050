"""dispel4py's grouping examples in one graph: a global grouping (all to one) after a
stage of three instances, and an `all` grouping (one to all) on two instances."""

from hpcflow import WorkflowGraph
from tests.dispel4py_corpus.pes import Identity, NumberProducer

producer = NumberProducer()
spread = Identity()
spread.numprocesses = 3
gather = Identity()
gather.inputconnections["input"]["grouping"] = "global"
copies = Identity()
copies.numprocesses = 2
copies.inputconnections["input"]["grouping"] = "all"
graph = WorkflowGraph()
graph.connect(producer, "output", spread, "input")
graph.connect(spread, "output", gather, "input")
graph.connect(producer, "output", copies, "input")
