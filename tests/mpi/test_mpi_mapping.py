"""The `mpi` mapping under mpiexec: `mpiexec -n 4 python -m pytest --with-mpi tests/mpi`.

Every rank runs every test, and every test calls run() on every rank, in the same order:
run() is collective. Assertions that only rank 0 can make (outputs) are made on rank 0;
everything else on all ranks.
"""

from __future__ import annotations

import pytest

from hpcflow import ConsumerPE, GenericPE, IterativePE, PEError, ProducerPE, UsageError, WorkflowGraph, run
from hpcflow.workflows.pipeline import CountByKey, Total

pytestmark = [pytest.mark.mpi(min_size=4), pytest.mark.timeout(120)]


def rank() -> int:
    from mpi4py import MPI

    return MPI.COMM_WORLD.Get_rank()


def same_outputs(a: dict, b: dict) -> bool:
    """Outputs as multisets: the order across instances may differ."""

    def norm(outputs: dict) -> dict:
        return {(pe, port): sorted(map(repr, items)) for pe, ports in outputs.items() for port, items in ports.items()}

    return norm(a) == norm(b)


class Numbers(ProducerPE):
    def __init__(self):
        super().__init__()
        self.n = 0

    def _process(self, inputs):
        self.n += 1
        return self.n


class Double(IterativePE):
    def _process(self, x):
        return 2 * x


class Square(IterativePE):
    def _process(self, x):
        return x * x


class Negate(IterativePE):
    def _process(self, x):
        return -x


class KeyedNumbers(Numbers):
    def _process(self, inputs):
        n = super()._process(inputs)
        return (n % 7, n)


class HoldAll(GenericPE):
    """Emits nothing while items arrive, everything in postprocess()."""

    def __init__(self):
        super().__init__()
        self._add_input("input", grouping="global")
        self._add_output("output")
        self.held: list[int] = []

    def process(self, inputs):
        self.held.append(inputs["input"])

    def postprocess(self):
        for x in sorted(self.held):
            self.write("output", x)


class FailOn(IterativePE):
    def __init__(self, bad: int):
        super().__init__()
        self.bad = bad

    def _process(self, x):
        if x == self.bad:
            raise ValueError(f"no {x}")
        return x


class FailInPostprocess(ConsumerPE):
    def postprocess(self):
        raise RuntimeError("cannot finish")


def linear() -> WorkflowGraph:
    graph = WorkflowGraph()
    numbers, double, square = Numbers(), Double(), Square()
    graph.connect(numbers, "output", double, "input")
    graph.connect(double, "output", square, "input")
    return graph


def fan_out() -> WorkflowGraph:
    graph = WorkflowGraph()
    numbers = Numbers()
    graph.connect(numbers, "output", Double(), "input")
    graph.connect(numbers, "output", Negate(), "input")
    return graph


def grouped() -> WorkflowGraph:
    graph = WorkflowGraph()
    count, total = CountByKey(), Total()
    graph.connect(KeyedNumbers(), "output", count, "input")
    graph.connect(count, "output", total, "input")
    return graph


def held() -> WorkflowGraph:
    graph = WorkflowGraph()
    hold, square = HoldAll(), Square()
    graph.connect(Numbers(), "output", hold, "input")
    graph.connect(hold, "output", square, "input")
    return graph


@pytest.mark.parametrize("build", [linear, fan_out, grouped, held], ids=lambda f: f.__name__)
def test_outputs_equal_simple(build):
    result = run(build(), 300, mapping="mpi")
    expected = run(build(), 300, mapping="simple")
    assert result.metrics.items == expected.metrics.items
    if rank() == 0:
        assert same_outputs(result.outputs, expected.outputs)
        assert result.outputs
    else:
        assert not any(items for ports in result.outputs.values() for items in ports.values())


def test_postprocess_output_reaches_the_sink():
    result = run(held(), 200, mapping="mpi")
    assert result.metrics.items["Square"] == 200  # every item Square got came from postprocess()
    if rank() == 0:
        assert sorted(result.output("Square")) == [x * x for x in range(1, 201)]


def test_group_by_and_global_aggregate():
    result = run(grouped(), 700, mapping="mpi")
    if rank() == 0:
        [total] = result.output("Total")
        assert total == {"total": 700, "keys": {k: 100 for k in range(7)}}


def test_every_rank_gets_the_same_metrics():
    from mpi4py import MPI

    result = run(linear(), 100, mapping="mpi")
    m = result.metrics
    everyone = MPI.COMM_WORLD.allgather((m.runtime_s, m.process_time_s, m.cpu_time_s, m.items))
    assert all(x == everyone[0] for x in everyone)
    assert m.processes == MPI.COMM_WORLD.Get_size()
    assert m.runtime_s > 0 and m.process_time_s >= m.runtime_s / 2
    assert m.mapping == "mpi"


def test_ranks_beyond_the_plan_idle():
    graph = WorkflowGraph()
    graph.connect(Numbers(), "output", HoldAll(), "input")  # 2 instances: the other ranks idle
    result = run(graph, {"Numbers": [{}] * 5}, mapping="mpi")
    assert result.metrics.idle_ranks == result.metrics.processes - 2
    if rank() == 0:
        assert result.output("HoldAll") == [1, 2, 3, 4, 5]


def test_pe_error_stops_every_rank_and_names_the_pe():
    graph = WorkflowGraph()
    numbers, fail = Numbers(), FailOn(13)
    graph.connect(numbers, "output", fail, "input")
    graph.connect(fail, "output", Square(), "input")
    with pytest.raises(PEError) as info:
        run(graph, 100_000, mapping="mpi")
    err = info.value
    assert err.pe == "FailOn" and err.instance is not None and "13" in err.item
    assert "ValueError: no 13" in str(err)
    assert err.result.metrics.status == "failed"
    assert err.result.metrics.items["Numbers"] < 100_000  # the producer was stopped, not run out


def test_error_in_postprocess_stops_the_run():
    graph = WorkflowGraph()
    graph.connect(Numbers(), "output", FailInPostprocess(), "input")
    with pytest.raises(PEError) as info:
        run(graph, 50, mapping="mpi")
    assert info.value.pe == "FailInPostprocess" and info.value.item == "<postprocess>"


class FailInPreprocess(IterativePE):
    def preprocess(self):
        raise OSError("no input file")

    def _process(self, x):
        return x


def test_error_in_preprocess_stops_the_run():
    graph = WorkflowGraph()
    graph.connect(Numbers(), "output", FailInPreprocess(), "input")
    with pytest.raises(PEError) as info:
        run(graph, 1000, mapping="mpi")
    assert info.value.pe == "FailInPreprocess" and info.value.item == "<preprocess>"


def test_skipped_items_are_reported_on_every_rank():
    graph = WorkflowGraph()
    graph.connect(Numbers(), "output", FailOn(7), "input")
    result = run(graph, 20, mapping="mpi", on_error="skip")
    assert [e["pe"] for e in result.errors] == ["FailOn"]
    if rank() == 0:
        assert sorted(result.output("FailOn")) == [x for x in range(1, 21) if x != 7]


def test_too_few_ranks_is_a_usage_error_on_every_rank_and_the_next_run_works():
    from mpi4py import MPI

    size = MPI.COMM_WORLD.Get_size()
    graph = WorkflowGraph()
    numbers = Numbers()
    for _ in range(size):
        pe = Double()
        pe.numprocesses = 1
        graph.connect(numbers, "output", pe, "input")
    with pytest.raises(UsageError, match=f"needs at least {size + 1} processes"):
        run(graph, 10, mapping="mpi")
    assert run(linear(), 10, mapping="mpi").metrics.items["Square"] == 10


def test_another_process_count_is_a_usage_error():
    from mpi4py import MPI

    with pytest.raises(UsageError, match="one process per MPI rank"):
        run(linear(), 10, mapping="mpi", processes=MPI.COMM_WORLD.Get_size() + 1)
