"""The dispel4py-style corpus (tests/dispel4py_corpus) on every shared-memory mapping:
each workflow's whole result (every unconnected output, keyed by `pe.id` as dispel4py
keys its results) equals what the test computes on its own from the inputs, in plain
Python. The dyn_* mappings refuse the stateful ones, naming the PE."""

from __future__ import annotations

import string
from collections import Counter

import pytest
from graphs import canonical, run_fitting

from hpcflow import UsageError, run
from tests.dispel4py_corpus import (
    aggregates,
    composites,
    groupings,
    iterative_chain,
    multi_producer,
    pipeline,
    sieve,
    split_merge,
    teecopy,
    timing,
    twice,
    unconnected,
    wordcount_composite,
    wordcount_running,
)

pytestmark = pytest.mark.timeout(300)

MAPPINGS = ["simple", "multi", "dyn_multi", "dyn_auto_multi", "hybrid_multi", "hybrid_auto_multi"]
N = 6  # iterations for every producer
TEXT = ["The cat sat.", "The dog sat on the cat!", "Isn't it the dog's mat?"]
LINES = [{"input": line} for line in TEXT]


def numbers(n=N):
    return list(range(1, n + 1))


def is_prime(n):
    return n > 1 and all(n % d for d in range(2, int(n**0.5) + 1))


def sieve_expected():
    primes = [n for n in range(2, sieve.LIMIT) if is_prime(n)][: sieve.STAGES]
    survivors = [n for n in range(2, sieve.LIMIT) if n not in primes and all(n % p for p in primes)]
    return primes, survivors


def clean_words(text):
    words = []
    for line in text:
        cleaned = "".join(c for c in line.lower() if c not in string.punctuation or c == "'")
        words.extend(cleaned.split())
    return words


def running_counts(words):
    seen: Counter = Counter()
    out = []
    for w in words:
        seen[w] += 1
        out.append([w, seen[w]])
    return out


def expected_results():
    """{case: (module, inputs, {pe id: {port: items}}, stateful)}, computed from the inputs."""
    primes, survivors = sieve_expected()
    chain_end = iterative_chain.composite.outputmappings["output"][0]
    count_end = wordcount_composite.counter.outputmappings["counts"][0]
    n_sum = sum(numbers())
    return {
        "pipeline": (pipeline, N, {pipeline.last.id: {"output": numbers()}}, False),
        "teecopy": (
            teecopy,
            N,
            {teecopy.left.id: {"output": numbers()}, teecopy.right.id: {"output": numbers()}},
            False,
        ),
        "split_merge": (split_merge, N, {split_merge.merge.id: {"output": [str(i) for i in numbers()] * 2}}, False),
        "multi_producer": (
            multi_producer,
            N,
            {multi_producer.both.id: {"output": numbers() + list(range(100, 104)) * N}},
            False,
        ),
        "composites": (
            composites,
            N,
            {composites.result.id: {"output": [(2 * i + 1) * 10 - 3 for i in numbers()]}},
            False,
        ),
        "iterative_chain": (
            iterative_chain,
            N,
            {chain_end.id: {"output": [(i + 2) * 4 / 2 - 1 for i in numbers()]}},
            False,
        ),
        "unconnected": (
            unconnected,
            N,
            {
                unconnected.first_pipeline_end.id: {"output": numbers()},
                unconnected.split.id: {"odd": [i for i in numbers() if i % 2]},
            },
            False,
        ),
        "twice": (twice, N, {twice.result.id: {"output": [i for i in numbers() for _ in (1, 2)]}}, False),
        "timing": (timing, N, {timing.timed.id: {"output": numbers()}}, False),
        "wordcount_running": (
            wordcount_running,
            {wordcount_running.lines: [{"input": line} for line in TEXT]},
            {wordcount_running.count.id: {"output": running_counts(" ".join(TEXT).split())}},
            True,
        ),
        "wordcount_composite": (
            wordcount_composite,
            {"ReadLines": LINES},
            {count_end.id: {"output": [[w, n] for w, n in Counter(clean_words(TEXT)).items()]}},
            True,
        ),
        "sieve": (
            sieve,
            1,
            {sieve.primes.id: {"output": primes}, sieve.prev.id: {"output": survivors}},
            True,
        ),
        "aggregates": (
            aggregates,
            N,
            {"CountReduce": {"output": [[N]]}, "SumItems1": {"output": [[n_sum]]}, "MaxItems1": {"output": [[N]]}},
            True,
        ),
        "groupings": (
            groupings,
            N,
            {groupings.gather.id: {"output": numbers()}, groupings.copies.id: {"output": numbers() * 2}},
            True,
        ),
    }


CASES = expected_results()


def check(case, mapping, processes=3, **options):
    module, inputs, expected, stateful = CASES[case]
    if stateful and mapping.startswith("dyn_"):
        with pytest.raises(UsageError, match=r"stateful .*use hybrid_"):
            run(module.graph, inputs, mapping, processes, **options)
        return
    result = run_fitting(module.graph, inputs, mapping, processes, **options)
    assert canonical(result.outputs) == canonical(expected)
    assert result.metrics.status == "ok"


@pytest.mark.parametrize("mapping", MAPPINGS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_corpus_workflow_gives_the_independent_result(case, mapping):
    check(case, mapping)


def test_the_ported_word_count_counts_as_dispel4py_on_every_mapping():
    """The word count with a create_iterative_chain and a CompositePE: one [word, total]
    per word, the totals of collections.Counter, on every mapping that runs it."""
    want = Counter(clean_words(TEXT))
    assert want["the"] == 4 and want["isn't"] == 1 and want["dog's"] == 1
    for mapping in MAPPINGS:
        if mapping.startswith("dyn_"):
            continue
        result = run(wordcount_composite.graph, {"ReadLines": LINES}, mapping, 8)
        got = result.output(wordcount_composite.counter, "counts")  # the composite's own port name
        assert len(got) == len(want), mapping
        assert {w: n for w, n in got} == dict(want), mapping


def test_composite_pes_run_under_their_own_names():
    """A flattened graph keeps every PE's name: they are the keys of outputs and metrics."""
    result = run(composites.graph, 3, "simple")
    assert list(result.metrics.items) == ["NumberProducer", "Scale", "Offset", "Scale1", "Offset1", "Identity"]
    assert result.metrics.items["Scale1"] == 3


@pytest.mark.parametrize("mapping", ["simple", "multi"])
def test_the_timing_wrapper_logs_the_mean_processing_time(capfd, mapping):
    """Where the timed PE has an end (pinned instances; a dynamic pool's PEs have none)."""
    run(timing.graph, 3, mapping, 3)
    out = capfd.readouterr().out
    assert f"{timing.timed.id} (rank 0): Average processing time: " in out
