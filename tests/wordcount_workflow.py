"""A stateful word count for the checkpoint and resume tests (`hpcflow run
tests/wordcount_workflow.py -p lines=600`).

Source writes `lines` lines of `words` words each (line i drawn from its own seeded
generator, so `corpus()` gives the same lines without running anything); Split breaks a
line into words (stateless) and reports its length; Count groups by word (`instances`
stateful instances), sleeps `latency` seconds a word, reports every `milestone`-th
occurrence of a word while it runs and every word's count at its end, and forwards each
word to Total (global grouping, stateful), which reports the number of words and of
distinct words at its end.

Every kind of output a checkpoint must keep exactly once is here: outputs of a stateless
PE written while the run goes (`lengths`), outputs of stateful instances written while it
goes (`milestones`), and outputs of postprocess() that depend on all the state
(`counts`, `total`). `expected_outputs()` computes them from the corpus alone.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from pathlib import Path

from hpcflow import GenericPE, ProducerPE, WorkflowGraph

VOCABULARY = [f"{a}{b}" for a in ("al", "be", "ka", "do", "mi", "su") for b in ("n", "r", "t", "x", "p")]


def line(seed: int, i: int, words: int) -> str:
    """Line i of the corpus: Zipf-like draws from the vocabulary, the same in every process."""
    rng = random.Random(f"{seed}:{i}")
    weights = [1 / (rank + 1) for rank in range(len(VOCABULARY))]
    return " ".join(rng.choices(VOCABULARY, weights, k=words))


def corpus(lines: int, words: int, seed: int) -> list[str]:
    return [line(seed, i, words) for i in range(lines)]


class Lines(ProducerPE):
    """One line a call: (line number, text)."""

    def __init__(self, words: int, seed: int):
        super().__init__()
        self.words = words
        self.seed = seed
        self.next = 0

    def _process(self, inputs):
        i = self.next
        self.next += 1
        return (i, line(self.seed, i, self.words))


class Split(GenericPE):
    def __init__(self):
        super().__init__()
        self._add_input("input")
        self._add_output("output")
        self._add_output("lengths")

    def process(self, inputs):
        number, text = inputs["input"]
        words = text.split()
        for word in words:
            self.write("output", (word, number))
        self.write("lengths", (number, len(words)))


class Count(GenericPE):
    """Counts by word; the state a checkpoint must carry is `counts`."""

    def __init__(self, instances: int, latency: float, milestone: int):
        super().__init__(numprocesses=instances)
        self._add_input("input", grouping=[0])
        self._add_output("output")
        self._add_output("milestones")
        self._add_output("counts")
        self.latency = latency
        self.milestone = milestone
        self.counts: dict[str, int] = {}

    def process(self, inputs):
        word = inputs["input"][0]
        if self.latency:
            time.sleep(self.latency)
        n = self.counts.get(word, 0) + 1
        self.counts[word] = n
        if n % self.milestone == 0:
            self.write("milestones", (word, n))
        self.write("output", word)

    def postprocess(self):
        for word, n in sorted(self.counts.items()):
            self.write("counts", (word, n))


class Total(GenericPE):
    def __init__(self):
        super().__init__()
        self._add_input("input", grouping="global")
        self._add_output("output")
        self.words = 0
        self.distinct: set[str] = set()

    def process(self, inputs):
        self.words += 1
        self.distinct.add(inputs["input"])

    def postprocess(self):
        self.write("output", {"words": self.words, "distinct": len(self.distinct)})


def build(
    lines: int = 600, words: int = 6, instances: int = 3, latency: float = 0.004, milestone: int = 20, seed: int = 0
):
    """The graph and the source's number of calls (one line a call)."""
    graph = WorkflowGraph()
    source, split, count, total = Lines(words, seed), Split(), Count(instances, latency, milestone), Total()
    graph.connect(source, "output", split, "input")
    graph.connect(split, "output", count, "input")
    graph.connect(count, "output", total, "input")
    return graph, {source: lines}


def expected_outputs(lines: int = 600, words: int = 6, milestone: int = 20, seed: int = 0) -> Counter:
    """Every line outputs.jsonl must hold, as a Counter of `key(pe, port, data)`, computed
    from the corpus with collections.Counter, not by running anything."""
    text = corpus(lines, words, seed)
    counts = Counter(word for one in text for word in one.split())
    out = Counter(key("Split", "lengths", (i, len(one.split()))) for i, one in enumerate(text))
    for word, n in counts.items():
        out[key("Count", "counts", (word, n))] += 1
        out.update(key("Count", "milestones", (word, k)) for k in range(milestone, n + 1, milestone))
    out[key("Total", "output", {"words": lines * words, "distinct": len(counts)})] += 1
    return out


def key(pe: str, port: str, data) -> str:
    """One output in a canonical JSON form: tuples as lists, dict keys sorted."""
    return json.dumps([pe, port, data], sort_keys=True)


def outputs_of(path: Path) -> Counter:
    """The lines of an outputs.jsonl file in the form of `expected_outputs()`."""
    rows = [json.loads(one) for one in path.read_text().splitlines()]
    return Counter(key(row["pe"], row["port"], row["data"]) for row in rows)
