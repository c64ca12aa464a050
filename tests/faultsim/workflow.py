"""The fault schedules' workflow: small, stateful in three ways, with a known answer
(`hpcflow run tests/faultsim/workflow.py -p lines=120`).

    Lines -> Split -> Count (group-by word, 2 instances) -> Total (global)
                   -> Initials (group-by first letter, 2 instances)
                   -> lengths (unconnected)

Split is stateless and writes while the run goes; Count writes a milestone every
`milestone`-th occurrence of a word while it runs and every count at its end; Total and
Initials write only at their end, from all of their state. So a lost, doubled or
half-restored state, a lost or doubled task and a lost or doubled output each change
the outputs. With `stateful=0` the graph is its stateless part (Lines -> Split -> Upper)
for the dyn_* mappings. `expected_outputs()` computes the outputs from the corpus alone.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from pathlib import Path

from hpcflow import GenericPE, ProducerPE, WorkflowGraph

VOCABULARY = [f"{a}{b}" for a in ("al", "be", "ka", "do", "mi", "su", "te") for b in ("n", "r", "x", "p")]


def line(seed: int, i: int, words: int) -> str:
    rng = random.Random(f"faultsim:{seed}:{i}")
    weights = [1 / (rank + 1) for rank in range(len(VOCABULARY))]
    return " ".join(rng.choices(VOCABULARY, weights, k=words))


class Lines(ProducerPE):
    def __init__(self, words: int, seed: int):
        super().__init__()
        self.words, self.seed, self.next = words, seed, 0

    def _process(self, inputs):
        i = self.next
        self.next += 1
        return (i, line(self.seed, i, self.words))


class Split(GenericPE):
    def __init__(self):
        super().__init__()
        self._add_input("input")
        for port in ("output", "initials", "lengths"):
            self._add_output(port)

    def process(self, inputs):
        number, text = inputs["input"]
        words = text.split()
        for word in words:
            self.write("output", (word, number))
            self.write("initials", (word[0], number))
        self.write("lengths", (number, len(words)))


class Upper(GenericPE):
    """The stateless graph's second stage."""

    def __init__(self, latency: float):
        super().__init__()
        self._add_input("input")
        self._add_output("output")
        self.latency = latency

    def process(self, inputs):
        word, number = inputs["input"]
        if self.latency:
            time.sleep(self.latency)
        self.write("output", (word.upper(), number))


class Count(GenericPE):
    def __init__(self, instances: int, latency: float, milestone: int):
        super().__init__(numprocesses=instances)
        self._add_input("input", grouping=[0])
        for port in ("output", "milestones", "counts"):
            self._add_output(port)
        self.latency, self.milestone = latency, milestone
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


class Initials(GenericPE):
    """Per first letter: how many words, and the sum of their line numbers (an order-free
    fingerprint of exactly which items it saw)."""

    def __init__(self):
        super().__init__(numprocesses=2)
        self._add_input("input", grouping=[0])
        self._add_output("output")
        self.seen: dict[str, list[int]] = {}

    def process(self, inputs):
        letter, number = inputs["input"]
        tally = self.seen.setdefault(letter, [0, 0])
        tally[0] += 1
        tally[1] += number

    def postprocess(self):
        for letter, (n, total) in sorted(self.seen.items()):
            self.write("output", (letter, n, total))


def build(
    lines: int = 120,
    words: int = 5,
    instances: int = 2,
    latency: float = 0.003,
    milestone: int = 15,
    seed: int = 0,
    stateful: int = 1,
):
    graph = WorkflowGraph()
    source, split = Lines(words, seed), Split()
    graph.connect(source, "output", split, "input")
    if stateful:
        count, total, initials = Count(instances, latency, milestone), Total(), Initials()
        graph.connect(split, "output", count, "input")
        graph.connect(count, "output", total, "input")
        graph.connect(split, "initials", initials, "input")
    else:
        graph.connect(split, "output", Upper(latency), "input")
    return graph, {source: lines}


def expected_outputs(
    lines: int = 120, words: int = 5, milestone: int = 15, seed: int = 0, stateful: int = 1, **_
) -> Counter:
    """Every row outputs.jsonl must hold, as a Counter of `key(pe, port, data)`, from the
    corpus alone."""
    text = [line(seed, i, words).split() for i in range(lines)]
    out = Counter(key("Split", "lengths", (i, len(ws))) for i, ws in enumerate(text))
    if not stateful:
        out.update(key("Split", "initials", (w[0], i)) for i, ws in enumerate(text) for w in ws)
        out.update(key("Upper", "output", (w.upper(), i)) for i, ws in enumerate(text) for w in ws)
        return out
    counts = Counter(w for ws in text for w in ws)
    for word, n in counts.items():
        out[key("Count", "counts", (word, n))] += 1
        out.update(key("Count", "milestones", (word, k)) for k in range(milestone, n + 1, milestone))
    out[key("Total", "output", {"words": lines * words, "distinct": len(counts)})] += 1
    initials: dict[str, list[int]] = {}
    for i, ws in enumerate(text):
        for w in ws:
            tally = initials.setdefault(w[0], [0, 0])
            tally[0] += 1
            tally[1] += i
    out.update(key("Initials", "output", (letter, n, s)) for letter, (n, s) in initials.items())
    return out


def key(pe: str, port: str, data) -> str:
    return json.dumps([pe, port, data], sort_keys=True)


def outputs_of(path: Path) -> Counter:
    """outputs.jsonl as `expected_outputs()` (a torn line raises ValueError)."""
    rows = [json.loads(one) for one in path.read_text().splitlines()]
    return Counter(key(row["pe"], row["port"], row["data"]) for row in rows)


def simple_outputs(**params) -> Counter:
    """The same rows from a run of `simple` in this process (the reference mapping)."""
    from hpcflow import run

    graph, inputs = build(**params)
    result = run(graph, inputs=inputs, mapping="simple")
    return Counter(
        key(pe, port, item) for pe, ports in result.outputs.items() for port, items in ports.items() for item in items
    )
