"""dispel4py-style corpus workflows on the `mpi` mapping, as the ranks of one MPI job
(`mpiexec -n 4 python -m pytest --with-mpi tests/mpi`): graphs of at most four PE
instances, composites included, against results computed here."""

from __future__ import annotations

from collections import Counter

import pytest

from hpcflow import CompositePE, WorkflowGraph, create_iterative_chain, run
from tests.dispel4py_corpus import pipeline, twice
from tests.dispel4py_corpus.iterative_chain import addTwo, subtract
from tests.dispel4py_corpus.pes import NumberProducer, ReadLines
from tests.dispel4py_corpus.wordcount_composite import count_words

pytestmark = [pytest.mark.mpi(min_size=4), pytest.mark.timeout(120)]


def rank() -> int:
    from mpi4py import MPI

    return MPI.COMM_WORLD.Get_rank()


def test_pipeline_and_doubled_connection():
    result = run(pipeline.graph, 5, "mpi")
    if rank() == 0:
        assert result.outputs == {pipeline.last.id: {"output": [1, 2, 3, 4, 5]}}
    result = run(twice.graph, 3, "mpi")
    if rank() == 0:
        assert sorted(result.output(twice.result)) == [1, 1, 2, 2, 3, 3]


def test_chain_composite():
    producer = NumberProducer()
    chain = create_iterative_chain([addTwo, (subtract, {"n": 1})])
    graph = WorkflowGraph()
    graph.connect(producer, "output", chain, "input")
    result = run(graph, {producer: 4}, "mpi")
    if rank() == 0:
        assert sorted(result.output(chain)) == [i + 1 for i in range(1, 5)]


def test_word_count_composite():
    lines = ReadLines()
    counter = CompositePE(count_words, {"instances": 2})
    graph = WorkflowGraph()
    graph.connect(lines, "output", counter, "lines")
    text = ["a b a", "c b a"]
    result = run(graph, {lines: [{"input": t} for t in text]}, "mpi")
    if rank() == 0:
        assert dict(map(tuple, result.output(counter, "counts"))) == Counter(" ".join(text).split())


def test_undeclared_port_and_local_function():
    from tests.dispel4py_corpus import local_code

    result = run(local_code.graph, {local_code.producer: 4}, "mpi")
    if rank() == 0:
        scaled = [3, 6, 9, 12]
        assert sorted(result.outputs["Reporter"]["output"]) == scaled
        assert sorted(result.outputs["Reporter"]["square"]) == [x * x for x in scaled]
