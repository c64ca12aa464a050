"""dispel4py's composite with parameters connecting the same ports twice: every item
goes down both connections."""

from hpcflow import CompositePE, WorkflowGraph
from tests.dispel4py_corpus.pes import Identity, NumberProducer

first, second = Identity(), Identity()


def create_graph(graph, connections):
    for _ in range(connections):
        graph.connect(first, "output", second, "input")


composite = CompositePE(create_graph, {"connections": 2})
composite._map_input("comp_input", first, "input")
composite._map_output("comp_output", second, "output")
producer = NumberProducer()
result = Identity()
graph = WorkflowGraph()
graph.connect(producer, "output", composite, "comp_input")
graph.connect(composite, "comp_output", result, "input")
