"""dispel4py's pipeline_composite: create_iterative_chain of four functions, one with
parameters, fed by a producer; the chain's output is left unconnected."""

from hpcflow import WorkflowGraph, create_iterative_chain
from tests.dispel4py_corpus.pes import NumberProducer


def addTwo(data):
    return 2 + data


def multiplyByFour(data):
    return 4 * data


def divideByTwo(data):
    return data / 2


def subtract(data, n):
    return data - n


composite = create_iterative_chain([addTwo, multiplyByFour, divideByTwo, (subtract, {"n": 1})])
producer = NumberProducer()
graph = WorkflowGraph()
graph.connect(producer, "output", composite, "input")
