"""Two habits of dispel4py code found in public workflows: a PE that writes to an output
port it never declared (dispel4py's `simple` collects those items as an output of that
port), and a SimpleFunctionPE holding a function defined inside the function that builds
the graph (a closure: plain pickle cannot ship it to another process's interpreter)."""

from hpcflow import GenericPE, SimpleFunctionPE, WorkflowGraph
from tests.dispel4py_corpus.pes import NumberProducer

FACTOR = 3


class Reporter(GenericPE):
    """Declares only its input, and writes every item to 'output' and its square to 'square'."""

    def __init__(self):
        GenericPE.__init__(self)
        self._add_input("input")

    def _process(self, inputs):
        value = inputs["input"]
        self.write("output", value)
        return {"square": value * value}


def build(factor):
    def scale(x):
        return x * factor

    graph = WorkflowGraph()
    producer, scaler, reporter = NumberProducer(), SimpleFunctionPE(scale), Reporter()
    graph.connect(producer, "output", scaler, "input")
    graph.connect(scaler, "output", reporter, "input")
    return graph, producer, reporter


graph, producer, reporter = build(FACTOR)
