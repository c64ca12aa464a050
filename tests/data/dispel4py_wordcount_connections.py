"""dispel4py's word count in the older style (dispel4py's testing_PEs.WordCounter): ports
written into `inputconnections`/`outputconnections`, the grouping set on the instance after
it is created, outputs returned as dicts from process(). Ported by changing the imports only.

The hpcflow import lines below replace, line for line:

    from dispel4py.core import GenericPE, NAME, TYPE, GROUPING
    from dispel4py.workflow_graph import WorkflowGraph
"""
# ruff: noqa: I001

from hpcflow.pe import GenericPE, NAME, TYPE, GROUPING
from hpcflow import WorkflowGraph

SENTENCES = [
    "the quick brown fox",
    "jumps over the lazy dog",
    "the dog sleeps",
]


class SentenceProducer(GenericPE):
    def __init__(self):
        GenericPE.__init__(self)
        self.outputconnections = {"output": {NAME: "output", TYPE: ["sentence"]}}
        self.counter = 0

    def process(self, inputs=None):
        sentence = SENTENCES[self.counter % len(SENTENCES)]
        self.counter += 1
        for word in sentence.split():
            self.write("output", [word])


class WordCounter(GenericPE):
    def __init__(self):
        GenericPE.__init__(self)
        self.inputconnections["input"] = {NAME: "input"}
        out1 = {}
        out1[NAME] = "output"
        out1[TYPE] = ["word", "count"]
        self.outputconnections["output"] = out1
        self.mywords = {}

    def process(self, inputs):
        word = inputs["input"][0]
        try:
            self.mywords[word] += 1
        except KeyError:
            self.mywords[word] = 1
        return {"output": [word, self.mywords[word]]}


words = SentenceProducer()
counter = WordCounter()
counter.inputconnections["input"][GROUPING] = [0]
counter.numprocesses = 3
graph = WorkflowGraph()
graph.connect(words, "output", counter, "input")
