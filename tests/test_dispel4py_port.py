"""A dispel4py workflow ported by changing its imports only gives exact results, from the
API and from the command line."""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from hpcflow import run
from hpcflow.workflows import load_workflow

DATA = Path(__file__).parent / "data"
CLASSIC = DATA / "dispel4py_wordcount.py"
CONNECTIONS = DATA / "dispel4py_wordcount_connections.py"

# The three sentences the producers cycle through, counted by hand.
COUNTS_OF_3 = {"the": 3, "quick": 1, "brown": 1, "fox": 1, "jumps": 1, "over": 1, "lazy": 1, "dog": 2, "sleeps": 1}
COUNTS_OF_5 = {"the": 5, "quick": 2, "brown": 2, "fox": 2, "jumps": 2, "over": 2, "lazy": 2, "dog": 3, "sleeps": 1}


@pytest.mark.parametrize("path", [CLASSIC, CONNECTIONS])
def test_only_the_imports_differ_from_dispel4py(path):
    """Every hpcflow line is an import, and the docstring names the dispel4py import that
    each one replaces, with the same names."""
    source = path.read_text()
    tree = ast.parse(source)
    ours = [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module.startswith("hpcflow")]
    ours_lines = {n.lineno for n in ours}
    body_lines = source.splitlines()[tree.body[0].end_lineno :]  # after the docstring
    offset = tree.body[0].end_lineno + 1
    other = [line for i, line in enumerate(body_lines, offset) if "hpcflow" in line and i not in ours_lines]
    assert other == []
    replaced = re.findall(r"^\s+from (dispel4py\.\w+) import (.+)$", ast.get_docstring(tree), re.M)
    assert len(replaced) == len(ours)
    assert [sorted(n.strip() for n in names.split(",")) for _, names in replaced] == [
        sorted(a.name for a in n.names) for n in ours
    ]
    assert {module for module, _ in replaced} <= {"dispel4py.core", "dispel4py.base", "dispel4py.workflow_graph"}


def test_classic_word_count_gives_exact_counts():
    wf = load_workflow(str(CLASSIC))
    count = wf.graph.get("CountWords")
    assert wf.graph.names() == ["SentenceProducer", "SplitWords", "CountWords"]
    result = run(wf.graph, inputs=3)
    counts = dict(result.output(count))
    assert counts == COUNTS_OF_3
    assert len(result.output(count)) == len(counts)  # one (word, count) per word
    assert result.metrics.items == {"SentenceProducer": 3, "SplitWords": 3, "CountWords": 12}


def test_classic_word_count_with_inputs_for_the_producer_by_name():
    wf = load_workflow(str(CLASSIC))
    result = run(wf.graph, inputs={"SentenceProducer": 5})
    assert dict(result.output("CountWords")) == COUNTS_OF_5


def test_connections_style_word_count_gives_exact_running_counts():
    wf = load_workflow(str(CONNECTIONS))
    counter = wf.graph.get("WordCounter")
    assert counter.inputconnections["input"]["grouping"] == [0]
    result = run(wf.graph, inputs=5)
    running = result.output(counter)
    assert sorted(map(tuple, running)) == sorted((w, k) for w, n in COUNTS_OF_5.items() for k in range(1, n + 1))
    final: dict[str, int] = {}
    for word, n in running:
        final[word] = max(final.get(word, 0), n)
    assert final == COUNTS_OF_5


def test_the_graph_module_runs_through_the_cli(cli, tmp_path):
    out = cli("run", str(CLASSIC), "--inputs", "3", "--run-dir", str(tmp_path / "run"), "-q")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == str(tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "outputs.jsonl").read_text().splitlines()]
    assert {(r["pe"], r["port"]) for r in rows} == {("CountWords", "output")}
    assert {r["data"][0]: r["data"][1] for r in rows} == COUNTS_OF_3
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["workflow"] == "dispel4py_wordcount" and metrics["items"]["CountWords"] == 12


def test_the_connections_style_module_runs_through_the_cli(cli, tmp_path):
    out = cli("run", str(CONNECTIONS), "--inputs", "5", "--run-dir", str(tmp_path / "run"), "-q")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line)["data"] for line in (tmp_path / "run" / "outputs.jsonl").read_text().splitlines()]
    assert Counter(word for word, _ in rows) == Counter(COUNTS_OF_5)
