"""dispel4py's word_count: lines split into words, counted by a PE grouped by word with
three instances, which writes [word, count so far] for every word it sees."""

from hpcflow import WorkflowGraph
from tests.dispel4py_corpus.pes import ReadLines, RunningCount, SplitWords

lines = ReadLines()
split = SplitWords()
count = RunningCount()
count.numprocesses = 3
graph = WorkflowGraph()
graph.connect(lines, "output", split, "input")
graph.connect(split, "output", count, "input")
