"""A word count ported from dispel4py: lines cleaned by a create_iterative_chain
composite, then counted by a CompositePE (split, then a total per word grouped by word
on three instances, written in _postprocess)."""

import string

from hpcflow import CompositePE, WorkflowGraph, create_iterative_chain
from tests.dispel4py_corpus.pes import ReadLines, SplitWords, TotalCount


def lower(line):
    return line.lower()


def strip_punctuation(line, keep):
    return "".join(c for c in line if c not in string.punctuation or c in keep)


def count_words(graph, instances):
    split = SplitWords()
    total = TotalCount()
    total.numprocesses = instances
    graph.connect(split, "output", total, "input")
    graph._map_input("lines", split, "input")
    graph._map_output("counts", total, "output")


clean = create_iterative_chain([lower, (strip_punctuation, {"keep": "'"})])
counter = CompositePE(count_words, {"instances": 3})
lines = ReadLines()
graph = WorkflowGraph()
graph.connect(lines, "output", clean, "input")
graph.connect(clean, "output", counter, "lines")
