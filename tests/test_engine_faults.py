"""Faults in the shared-memory engine: a killed worker, a failing PE, a lost pinned
instance. A run never hangs (pytest-timeout), never loses or duplicates an item."""

from __future__ import annotations

import pickle

import pytest
from conftest import child_processes
from graphs import (
    Add,
    Count,
    CountFailInPostprocess,
    CountKilledAt,
    CountPerKey,
    ExitInPreprocess,
    ExitOn,
    FailInPostprocess,
    FailInPreprocess,
    FailOn,
    GlobalSum,
    KeyBy,
    KillInHelper,
    KillOnce,
    KillOnceByKey,
    WriteInPreprocess,
    WriteLambda,
    WriteOpenFile,
    canonical,
    chain,
)

from hpcflow import PEError, run
from hpcflow.errors import RunAborted

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("no_leftover_processes")]

PARALLEL = ["multi", "dyn_multi", "dyn_auto_multi", "hybrid_multi", "hybrid_auto_multi"]
POOLED = ["dyn_multi", "dyn_auto_multi", "hybrid_multi", "hybrid_auto_multi"]


def kill_graph(marker, n=60, sleep=0.002):
    src = Count()
    return chain(src, Add(1), KillOnce(marker, at=20, sleep=sleep), Add(100)), {src: n}


@pytest.mark.parametrize("mapping", ["dyn_multi", "dyn_auto_multi", "hybrid_multi", "hybrid_auto_multi"])
def test_pool_worker_sigkill_loses_and_duplicates_nothing(tmp_path, mapping):
    marker = tmp_path / "killed"
    graph, inputs = kill_graph(marker)
    marker.touch()  # the in-process reference run must not kill the test
    expected = run(graph, inputs, "simple")
    marker.unlink()
    result = run(graph, inputs, mapping, 4)
    assert marker.exists(), "the worker was not killed"
    assert canonical(result.outputs) == canonical(expected.outputs)
    assert result.metrics.workers_replaced == 1


def test_a_killed_static_instance_takes_the_run_back_to_its_start_with_the_exact_result(tmp_path):
    """multi pins every instance: one that dies takes the run back to its last checkpoint
    (none here: the start), and the outputs made since are not kept twice."""
    marker = tmp_path / "killed"
    graph, inputs = kill_graph(marker)
    marker.touch()
    expected = run(graph, inputs, "simple")
    marker.unlink()
    result = run(graph, inputs, "multi", 4)
    assert marker.exists()  # the instance was killed
    assert sorted(result.output("Add1")) == sorted(expected.output("Add1"))
    assert result.metrics.extra["recoveries"] == 1


@pytest.mark.parametrize("mapping", ["simple", "multi", "dyn_multi", "dyn_auto_multi", "hybrid_multi"])
def test_failing_pe_names_pe_instance_and_item(mapping):
    src = Count()
    graph = chain(src, Add(0), FailOn(at=13), Add(1))
    with pytest.raises(PEError) as info:
        run(graph, {src: 40}, mapping, 4)
    err = info.value
    assert err.pe == "FailOn" and err.instance == 0
    assert "13" in err.item and "ValueError: bad item 13" in str(err)
    assert err.result.metrics.status == "failed"
    assert err.result.metrics.items["Count"] >= 1


@pytest.mark.parametrize("mapping", ["multi", "dyn_multi", "hybrid_multi"])
def test_on_error_skip_records_item_and_goes_on(mapping):
    src = Count()
    graph = chain(src, FailOn(at=13), Add(1))
    result = run(graph, {src: 30}, mapping, 4, on_error="skip")
    assert sorted(result.output("Add")) == [x + 1 for x in range(1, 31) if x != 13]
    assert [e["pe"] for e in result.errors] == ["FailOn"]
    assert "bad item 13" in result.errors[0]["error"]


# -- a pool worker killed mid-run, stateful PEs downstream ------------------------------


def kill_then_aggregate(markers, n=80):
    """Three stages that each SIGKILL their worker once, then a group-by count and a global total."""
    src = Count()
    stages = [
        KillOnce(markers / "a", at=20, sleep=0.001),
        KillOnce(markers / "b", at=70),
        KillOnce(markers / "c", at=220),
    ]
    return chain(src, Add(1), *stages, KeyBy(), CountPerKey(), GlobalSum()), {src: n}


@pytest.mark.parametrize("mapping", ["hybrid_multi", "hybrid_auto_multi"])
def test_pool_workers_killed_before_a_group_by_and_a_global_lose_and_duplicate_nothing(tmp_path, mapping):
    for name in "abc":  # the in-process reference run must not kill the test
        (tmp_path / name).touch()
    graph, inputs = kill_then_aggregate(tmp_path)
    expected = run(graph, inputs, "simple")
    for name in "abc":
        (tmp_path / name).unlink()
    result = run(graph, inputs, mapping, 6, help_pool=False)  # every kill lands in a pool worker
    assert all((tmp_path / name).exists() for name in "abc"), "a worker was not killed"
    assert canonical(result.outputs) == canonical(expected.outputs)
    assert result.metrics.items == expected.metrics.items
    assert result.metrics.workers_replaced == 3
    (total,) = result.output("GlobalSum")
    assert total["n"] == 7  # one count per key came through, none twice


@pytest.mark.parametrize("mapping", ["dyn_multi", "dyn_auto_multi"])
def test_several_pool_workers_killed_in_turn_lose_and_duplicate_nothing(tmp_path, mapping):
    src = Count()
    stages = [KillOnce(tmp_path / "a", at=10), KillOnce(tmp_path / "b", at=60), KillOnce(tmp_path / "c", at=200)]
    graph = chain(src, *stages, Add(1))
    result = run(graph, {src: 80}, mapping, 4, help_pool=False)  # every kill lands in a pool worker
    assert sorted(result.output("Add")) == [8 * x + 1 for x in range(1, 81)]
    assert result.metrics.workers_replaced == 3


# -- a pinned instance killed: the run stops at once, naming it ---------------------------


@pytest.mark.parametrize("mapping", ["hybrid_multi", "hybrid_auto_multi"])
def test_a_killed_pinned_stateful_instance_ends_the_run_naming_it(mapping):
    src = Count()
    graph = chain(src, Add(0), KeyBy(), KillOnceByKey(at=30), GlobalSum())
    with pytest.raises(RunAborted, match=r"the process of PE KillOnceByKey\[[0-2]\] died \(signal 9\)") as info:
        run(graph, {src: 100}, mapping, 6)
    assert "\n" not in str(info.value)
    assert info.value.result.metrics.status == "failed"
    assert child_processes() == []


@pytest.mark.parametrize("mapping", ["dyn_multi", "dyn_auto_multi"])
def test_a_killed_producer_ends_the_run_naming_it(mapping):
    """A producer is pinned in every mapping (it is called in order): its position in
    the feed dies with it."""
    src = CountKilledAt(at=10)
    with pytest.raises(RunAborted, match=r"the process of PE CountKilledAt\[0\] died \(signal 9\)"):
        run(chain(src, Add(1)), {src: 50}, mapping, 3)


def test_a_pool_task_killing_a_pinned_process_ends_the_run():
    """The producer's process runs pool tasks once it has nothing of its own to do; one
    that kills it ends the run as any death of a pinned instance does."""
    src = Count()
    with pytest.raises(RunAborted, match=r"the process of PE Count\[0\] died \(signal 9\)"):
        run(chain(src, KillInHelper(0.01)), {src: 30}, "dyn_multi", 2)
    assert child_processes() == []


def test_help_pool_false_keeps_pinned_processes_to_their_own_pe():
    src = Count()
    result = run(chain(src, KillInHelper(0.001)), {src: 30}, "dyn_multi", 2, help_pool=False)
    assert sorted(result.output("KillInHelper")) == list(range(1, 31))


# -- preprocess() and postprocess() that raise ----------------------------------------------


@pytest.mark.parametrize("mapping", ["simple", *PARALLEL])
def test_preprocess_raising_names_the_pe_and_preprocess(mapping):
    src = Count()
    with pytest.raises(PEError) as info:
        run(chain(src, Add(1), FailInPreprocess(), Add(2)), {src: 10}, mapping, 4)
    assert (info.value.pe, info.value.item) == ("FailInPreprocess", "<preprocess>")
    assert str(info.value) == "PE FailInPreprocess[0] failed on item <preprocess>: RuntimeError: no calibration file"
    assert child_processes() == []


@pytest.mark.parametrize("mapping", ["simple", "multi", "hybrid_multi", "hybrid_auto_multi"])
def test_postprocess_raising_names_the_pe_and_postprocess(mapping):
    src = Count()
    with pytest.raises(PEError) as info:
        run(chain(src, Add(1), FailInPostprocess()), {src: 10}, mapping, 4)
    assert (info.value.pe, info.value.instance, info.value.item) == ("FailInPostprocess", 0, "<postprocess>")
    assert "RuntimeError: cannot write the summary" in str(info.value)


@pytest.mark.parametrize("mapping", ["simple", *PARALLEL])
def test_a_producers_postprocess_raising_names_it_on_every_mapping(mapping):
    """The one postprocess() a pure dyn_* mapping runs: a root's (roots are pinned)."""
    src = CountFailInPostprocess()
    with pytest.raises(PEError) as info:
        run(chain(src, Add(1)), {src: 10}, mapping, 4)
    assert (info.value.pe, info.value.item) == ("CountFailInPostprocess", "<postprocess>")
    assert info.value.result.metrics.status == "failed"


@pytest.mark.parametrize("mapping", ["simple", *PARALLEL])
def test_writing_in_preprocess_is_refused_on_every_mapping(mapping):
    """preprocess() runs once per process hosting the PE (every pool worker), so what it
    wrote would be copied or lost depending on the mapping and its process count."""
    src = Count()
    with pytest.raises(PEError) as info:
        run(chain(src, WriteInPreprocess(), Add(1)), {src: 3}, mapping, 4)
    assert (info.value.pe, info.value.item) == ("WriteInPreprocess", "<preprocess>")
    assert "wrote to 'output' in preprocess()" in str(info.value)
    assert "write in process() or postprocess()" in str(info.value)


# -- outputs that cannot be pickled ---------------------------------------------------------


@pytest.mark.parametrize("mapping", PARALLEL)
@pytest.mark.parametrize("writer, downstream", [(WriteLambda, True), (WriteOpenFile, False)])
def test_an_output_that_cannot_be_pickled_is_an_error_naming_the_pe(mapping, writer, downstream):
    src, bad = Count(), writer()
    graph = chain(src, Add(1), bad, Add(2)) if downstream else chain(src, Add(1), bad)
    with pytest.raises(PEError) as info:
        run(graph, {src: 10}, mapping, 5)
    err = info.value
    assert (err.pe, err.item) == (writer.__name__, "<sending outputs>")
    assert "an item written to port 'output' cannot be pickled" in str(err) and "\n" not in str(err)
    assert err.result.metrics.status == "failed"


# -- a PE that leaves its process -----------------------------------------------------------


@pytest.mark.parametrize("mapping", ["simple", *PARALLEL])
def test_sys_exit_in_a_pe_is_a_failure_of_that_pe(mapping):
    """Not the end of the caller's interpreter (simple) nor of a worker (the others)."""
    src = Count()
    with pytest.raises(PEError) as info:
        run(chain(src, Add(0), ExitOn("sys.exit", at=7), Add(1)), {src: 20}, mapping, 4)
    err = info.value
    assert (err.pe, err.instance, err.item) == ("ExitOn", 0, "{'input': 7}")
    assert "SystemExit: the PE called sys.exit(3)" in str(err)


@pytest.mark.parametrize("mapping", ["multi", "hybrid_multi"])
def test_sys_exit_follows_the_error_policy(mapping):
    src = Count()
    result = run(chain(src, ExitOn("sys.exit", at=7), Add(1)), {src: 10}, mapping, 4, on_error="retry:1,skip")
    assert sorted(result.output("Add")) == [x + 1 for x in range(1, 11) if x != 7]
    assert [(e["pe"], e["attempts"]) for e in result.errors] == [("ExitOn", 2)]


@pytest.mark.parametrize("mapping", POOLED)
@pytest.mark.parametrize("code", [0, 3])
def test_os_exit_in_a_pool_worker_is_retried_once_then_a_clear_error(mapping, code):
    """A worker that vanishes mid-task (even with exit code 0) is a lost worker, not a
    finished one: its chunk is replayed once on a new worker, then the run stops."""
    src = Count()
    died = rf"item\(s\) for PE ExitOn was running in 2 workers that died \(last: exit code {code}\)"
    with pytest.raises(RunAborted, match=died):
        run(chain(src, Add(0), ExitOn("os._exit", at=7, code=code), Add(1)), {src: 20}, mapping, 4, help_pool=False)


@pytest.mark.parametrize("code", [0, 3])
def test_os_exit_in_a_static_instance_ends_the_run_naming_it(code):
    src = Count()
    with pytest.raises(RunAborted, match=rf"the process of PE ExitOn\[0\] died \(exit code {code}\)"):
        run(chain(src, Add(0), ExitOn("os._exit", at=7, code=code), Add(1)), {src: 20}, "multi", 4)


@pytest.mark.parametrize("mapping", POOLED)
def test_pool_workers_dying_in_preprocess_are_not_replaced_forever(mapping):
    """A pool worker prepares a PE when it first runs it, so dying there is dying in a
    task of that PE: replayed once on a new worker, then a clear error naming the PE."""
    src = Count()
    with pytest.raises(
        RunAborted, match=r"PE ExitInPreprocess was running in 2 workers that died \(last: exit code 7\)"
    ):
        run(chain(src, Add(0), ExitInPreprocess()), {src: 5}, mapping, 3, help_pool=False)


def test_a_static_instance_dying_in_preprocess_ends_the_run_naming_it():
    src = Count()
    with pytest.raises(RunAborted, match=r"PE ExitInPreprocess\[0\] died \(exit code 7\)"):
        run(chain(src, ExitInPreprocess()), {src: 5}, "multi", 2)


def test_run_aborted_keeps_its_traceback_out_of_its_message():
    """A worker's own fault is one line for the user; the traceback is for --debug and the log."""
    err = pickle.loads(pickle.dumps(RunAborted("worker running X[0] failed: KeyError: 'k'", tb="Traceback...")))
    assert (str(err), err.tb, err.exit_code) == ("worker running X[0] failed: KeyError: 'k'", "Traceback...", 1)


@pytest.mark.parametrize("mapping", ["multi", "dyn_multi", "hybrid_auto_multi"])
def test_stall_watchdog_names_the_pe_holding_work(mapping):
    src = Count()
    graph = chain(src, Add(1), Add(0, sleep=60), Add(2))  # one task far longer than the watchdog allows
    # 5 s, not 1: on a loaded machine a start-up slower than the watchdog would name another PE
    with pytest.raises(RunAborted, match=r"no task finished for 5 s \(stall_timeout\): .*PE Add1 holds"):
        run(graph, {src: 3}, mapping, 4, stall_timeout=5)
