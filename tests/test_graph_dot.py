"""graph.to_dot(): one box per PE, one arrow per stream labelled with its ports and grouping."""

from __future__ import annotations

from hpcflow import GenericPE, IterativePE, ProducerPE, WorkflowGraph


class Words(ProducerPE):
    def _process(self, inputs):
        return ("word", 1)


class Upper(IterativePE):
    def _process(self, data):
        return data


class Count(GenericPE):
    def __init__(self):
        super().__init__()
        self._add_input("input", grouping=[0])
        self._add_input("extra", grouping=lambda item: item[1])
        self._add_output("output")


class Total(GenericPE):
    def __init__(self):
        super().__init__()
        self._add_input("input", grouping="global")


def test_to_dot():
    graph = WorkflowGraph()
    words, upper, count, total = Words(), Upper(), Count(), Total()
    graph.connect(words, "output", upper, "input")
    graph.connect(upper, "output", count, "input")
    graph.connect(words, "output", count, "extra")
    graph.connect(count, "output", total, "input")
    assert graph.to_dot() == (
        "digraph workflow {\n"
        "  rankdir=LR;\n"
        "  node [shape=box];\n"
        '  "Words";\n'
        '  "Upper";\n'
        '  "Count";\n'
        '  "Total";\n'
        '  "Words" -> "Upper" [label="output -> input"];\n'
        '  "Upper" -> "Count" [label="output -> input (group-by [0])"];\n'
        '  "Words" -> "Count" [label="output -> extra (group-by <lambda>)"];\n'
        '  "Count" -> "Total" [label="output -> input (global)"];\n'
        "}\n"
    )


def test_to_dot_quotes_names():
    graph = WorkflowGraph()
    words = Words()
    words.name = 'say "hi"'
    graph.add(words)
    assert '  "say \\"hi\\"";\n' in graph.to_dot()
