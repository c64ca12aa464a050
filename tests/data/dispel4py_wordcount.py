"""dispel4py's classic word count, ported to hpcflow by changing the imports only.

The hpcflow import lines below replace, line for line:

    from dispel4py.core import GenericPE
    from dispel4py.base import IterativePE, ProducerPE
    from dispel4py.workflow_graph import WorkflowGraph

Everything else is dispel4py code as written for dispel4py (the noqa line keeps ruff from
reordering the imports). Run it with
`python -m hpcflow run tests/data/dispel4py_wordcount.py --inputs 3`.
"""
# ruff: noqa: I001

from collections import defaultdict

from hpcflow import GenericPE
from hpcflow import IterativePE, ProducerPE
from hpcflow import WorkflowGraph

SENTENCES = [
    "the quick brown fox",
    "jumps over the lazy dog",
    "the dog sleeps",
]


class SentenceProducer(ProducerPE):
    def __init__(self):
        ProducerPE.__init__(self)
        self.counter = 0

    def _process(self, inputs):
        sentence = SENTENCES[self.counter % len(SENTENCES)]
        self.counter += 1
        return sentence


class SplitWords(IterativePE):
    def __init__(self):
        IterativePE.__init__(self)

    def _process(self, data):
        for word in data.split():
            self.write("output", (word, 1))


class CountWords(GenericPE):
    def __init__(self):
        GenericPE.__init__(self)
        self._add_input("input", grouping=[0])
        self._add_output("output")
        self.count = defaultdict(int)

    def process(self, inputs):
        word, count = inputs["input"]
        self.count[word] += count

    def postprocess(self):
        for word, count in self.count.items():
            self.write("output", (word, count))


producer = SentenceProducer()
split = SplitWords()
count = CountWords()
count.numprocesses = 3

graph = WorkflowGraph()
graph.connect(producer, "output", split, "input")
graph.connect(split, "output", count, "input")
