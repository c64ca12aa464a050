"""Unconnected outputs: two separate pipelines, and a BasePE with two named outputs of
which only one is connected."""

from hpcflow import WorkflowGraph
from tests.dispel4py_corpus.pes import Discard, Identity, NumberProducer, Split


def pipeline(graph, stages):
    prev = NumberProducer()
    for _ in range(stages):
        stage = Identity()
        graph.connect(prev, "output", stage, "input")
        prev = stage
    return prev


graph = WorkflowGraph()
first_pipeline_end = pipeline(graph, 2)
last = pipeline(graph, 1)
split = Split()
graph.connect(last, "output", split, "input")
graph.connect(split, "even", Discard(), "input")
