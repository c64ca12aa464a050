"""on_error: fail (default), skip (record the item and go on), retry:N[,skip] (run the item
again; a failed attempt's outputs never reach downstream)."""

from __future__ import annotations

import pytest

from hpcflow import GenericPE, IterativePE, PEError, ProducerPE, UsageError, WorkflowGraph, run
from hpcflow.invoke import ErrorPolicy


class Numbers(ProducerPE):
    def __init__(self):
        super().__init__()
        self.n = 0

    def _process(self, inputs):
        self.n += 1
        return self.n


class FailsOnOdd(IterativePE):
    """Writes a partial output, then fails on odd numbers; passes even ones."""

    def _process(self, data):
        self.write("output", ("partial", data))
        if data % 2:
            raise ValueError(f"odd {data}")
        return ("done", data)


class FlakyOnce(IterativePE):
    """Fails the first attempt of every item after writing a partial output."""

    def __init__(self):
        super().__init__()
        self.attempts: dict[int, int] = {}

    def _process(self, data):
        self.attempts[data] = self.attempts.get(data, 0) + 1
        self.write("output", ("partial", data))
        if self.attempts[data] == 1:
            raise ConnectionError(f"flaky {data}")
        return ("done", data, self.attempts[data])


def graph_of(pe):
    graph = WorkflowGraph()
    graph.connect(Numbers(), "output", pe, "input")
    return graph


@pytest.mark.parametrize(
    "spec, policy",
    [
        (None, ErrorPolicy("fail")),
        ("fail", ErrorPolicy("fail")),
        ("skip", ErrorPolicy("skip")),
        ("retry:3", ErrorPolicy("retry", 3, "fail")),
        ("retry:2,skip", ErrorPolicy("retry", 2, "skip")),
        (" retry:1, skip ", ErrorPolicy("retry", 1, "skip")),
    ],
)
def test_parse(spec, policy):
    assert ErrorPolicy.parse(spec) == policy


@pytest.mark.parametrize("spec", ["ignore", "retry", "retry:0", "retry:x", "retry:2,ignore", "skip:2"])
def test_parse_refuses(spec):
    with pytest.raises(UsageError, match="use fail, skip, retry:N or retry:N,skip"):
        ErrorPolicy.parse(spec)


def test_fail_stops_at_the_first_failure():
    pe = FailsOnOdd()
    with pytest.raises(PEError, match="odd 1"):
        run(graph_of(pe), inputs=4)


def test_skip_records_the_item_and_error_and_drops_its_outputs():
    pe = FailsOnOdd()
    result = run(graph_of(pe), inputs=4, on_error="skip")
    assert result.output(pe) == [("partial", 2), ("done", 2), ("partial", 4), ("done", 4)]
    assert [(e["pe"], e["instance"], e["item"], e["error"], e["attempts"]) for e in result.errors] == [
        ("FailsOnOdd", 0, "{'input': 1}", "ValueError: odd 1", 1),
        ("FailsOnOdd", 0, "{'input': 3}", "ValueError: odd 3", 1),
    ]
    assert all("Traceback" in e["traceback"] for e in result.errors)
    assert result.metrics.errors == 2 and result.metrics.status == "ok"
    assert result.metrics.items["FailsOnOdd"] == 4


def test_retry_runs_the_item_again_without_duplicating_a_failed_attempts_outputs():
    pe = FlakyOnce()
    result = run(graph_of(pe), inputs=3, on_error="retry:2")
    assert result.output(pe) == [
        ("partial", 1),
        ("done", 1, 2),
        ("partial", 2),
        ("done", 2, 2),
        ("partial", 3),
        ("done", 3, 2),
    ]
    assert result.errors == [] and result.metrics.items["FlakyOnce"] == 3


def test_retry_then_fail():
    with pytest.raises(PEError, match="PE FailsOnOdd\\[0\\] failed on item \\{'input': 1\\}: ValueError: odd 1"):
        run(graph_of(FailsOnOdd()), inputs=2, on_error="retry:2")


def test_retry_then_skip_records_the_attempts():
    pe = FailsOnOdd()
    result = run(graph_of(pe), inputs=2, on_error="retry:2,skip")
    assert result.output(pe) == [("partial", 2), ("done", 2)]
    assert [(e["item"], e["attempts"]) for e in result.errors] == [("{'input': 1}", 3)]


def test_skipped_items_outputs_never_reach_downstream():
    class Collect(GenericPE):
        def __init__(self):
            super().__init__()
            self._add_input("input", grouping="global")
            self._add_output("output")
            self.seen = []

        def process(self, inputs):
            self.seen.append(inputs["input"])

        def postprocess(self):
            self.write("output", self.seen)

    graph = WorkflowGraph()
    fails, collect = FailsOnOdd(), Collect()
    graph.connect(Numbers(), "output", fails, "input")
    graph.connect(fails, "output", collect, "input")
    result = run(graph, inputs=3, on_error="skip")
    assert result.output(collect) == [[("partial", 2), ("done", 2)]]


@pytest.mark.parametrize("on_error", ["fail", "skip", "retry:1"])
def test_an_output_that_cannot_be_routed_fails_the_run_under_every_policy(on_error):
    class Words(ProducerPE):
        def _process(self, inputs):
            return {"wrod": "a"}

    class Count(GenericPE):
        def __init__(self):
            super().__init__()
            self._add_input("input", grouping="word")

        def process(self, inputs):
            pass

    graph = WorkflowGraph()
    graph.connect(Words(), "output", Count(), "input")
    with pytest.raises(PEError) as info:
        run(graph, inputs=1, on_error=on_error)
    assert info.value.pe == "Words"
    assert "group-by ['word'] key of this item for Count.input: KeyError: 'word'" in str(info.value)


# -- the multi-process mappings --------------------------------------------------------

PARALLEL = ["multi", "dyn_multi", "dyn_auto_multi", "hybrid_multi", "hybrid_auto_multi"]


class Tally(GenericPE):
    """A global collector downstream: a duplicated or lost output would change its tally."""

    def __init__(self):
        super().__init__()
        self._add_input("input", grouping="global")
        self._add_output("output")
        self.seen: dict[str, int] = {}

    def process(self, inputs):
        key = repr(inputs["input"])
        self.seen[key] = self.seen.get(key, 0) + 1

    def postprocess(self):
        self.write("output", sorted(self.seen.items()))


class Pass(IterativePE):
    def _process(self, data):
        return data


def retry_graph(pe, stateful):
    graph = WorkflowGraph()
    graph.connect(Numbers(), "output", pe, "input")
    graph.connect(pe, "output", Tally() if stateful else Pass(), "input")
    return graph


@pytest.mark.parametrize("mapping", PARALLEL)
def test_retry_on_a_parallel_mapping_duplicates_no_output(mapping):
    stateful = not mapping.startswith("dyn_")
    expected = run(retry_graph(FlakyOnce(), stateful), inputs=30, on_error="retry:2")
    result = run(retry_graph(FlakyOnce(), stateful), 30, mapping, 4, on_error="retry:2")
    last = "Tally" if stateful else "Pass"
    assert sorted(map(repr, result.output(last))) == sorted(map(repr, expected.output(last)))
    assert result.metrics.items == expected.metrics.items == {"Numbers": 30, "FlakyOnce": 30, last: 60}
    assert result.errors == []


@pytest.mark.parametrize("mapping", PARALLEL)
def test_retry_then_skip_on_a_parallel_mapping_records_each_item_once(mapping):
    stateful = not mapping.startswith("dyn_")
    result = run(retry_graph(FailsOnOdd(), stateful), 30, mapping, 4, on_error="retry:2,skip")
    expected = [("partial", x) for x in range(2, 31, 2)] + [("done", x) for x in range(2, 31, 2)]
    if stateful:
        (tally,) = result.output("Tally")
        assert tally == sorted((repr(x), 1) for x in expected)
    else:
        assert sorted(result.output("Pass")) == sorted(expected)
    assert sorted((e["item"], e["attempts"]) for e in result.errors) == sorted(
        (f"{{'input': {x}}}", 3) for x in range(1, 31, 2)
    )
    assert result.metrics.errors == 15 and result.metrics.status == "ok"


class FailsAt(IterativePE):
    def _process(self, data):
        if data == 10:
            raise ValueError("bad item 10")
        return data


@pytest.mark.parametrize("mapping", ["simple", "multi", "dyn_multi", "hybrid_multi"])
def test_the_item_a_run_failed_on_is_counted_with_those_before_it(mapping):
    """One instance of each PE (2 processes): items reach FailsAt in order, so it ran items
    1 to 10, the failed one included, whatever batch they came in (on dyn_multi and
    hybrid_multi the idle root runs pool tasks too, so the other process may have run later ones)."""
    numbers = Numbers()
    graph = WorkflowGraph()
    graph.connect(numbers, "output", FailsAt(), "input")
    with pytest.raises(PEError, match="bad item 10") as info:
        run(graph, {numbers: 30}, mapping, 2)
    ran = info.value.result.metrics.items["FailsAt"]
    if mapping in ("dyn_multi", "hybrid_multi"):  # the idle root runs pool tasks too: items past 10 may have run
        assert 10 <= ran <= 30
    else:
        assert ran == 10
