"""dispel4py's sieve of Eratosthenes: a chain of stages, each keeping the first number it
sees as its prime; the primes are collected, the last stage's survivors left unconnected."""

from hpcflow import WorkflowGraph
from tests.dispel4py_corpus.pes import Collect, Divides, RangeProducer

STAGES = 6
LIMIT = 50

producer = RangeProducer(2, LIMIT)
primes = Collect()
graph = WorkflowGraph()
prev = producer
for _ in range(STAGES):
    stage = Divides()
    graph.connect(prev, "output", stage, "input")
    graph.connect(stage, "prime", primes, "input")
    prev = stage
