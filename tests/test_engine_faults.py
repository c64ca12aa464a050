"""Faults in the shared-memory engine: a killed worker, a failing PE, a lost pinned
instance. A run never hangs (pytest-timeout), never loses or duplicates an item."""

from __future__ import annotations

import pytest
from graphs import Add, Count, FailOn, KillOnce, canonical, chain

from hpcflow import PEError, run
from hpcflow.errors import RunAborted

pytestmark = pytest.mark.timeout(120)


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


def test_static_instance_loss_ends_run_with_clear_error(tmp_path):
    graph, inputs = kill_graph(tmp_path / "killed")
    with pytest.raises(RunAborted, match=r"PE KillOnce\[0\] died \(signal 9\)"):
        run(graph, inputs, "multi", 4)


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
