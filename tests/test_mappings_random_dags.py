"""Property: on random DAGs (groupings, port counts, fan-out and fan-in, filters, several
writes per item, postprocess() aggregates, numprocesses on stateful PEs) every
shared-memory mapping gives `simple`'s outputs (as multisets) and per-PE item counts, at
random process counts, and leaves no process behind. A pure dyn_* mapping refuses a
stateful DAG instead.

The examples are derandomized, so a run is reproducible; HPCFLOW_PROPERTY_EXAMPLES
raises their number for a longer local search.
"""

from __future__ import annotations

import os
import re

import pytest
from conftest import child_processes
from dag_strategies import build, dags
from graphs import canonical
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hpcflow import UsageError, run
from hpcflow.api import prepare

pytestmark = pytest.mark.timeout(300)

EXAMPLES = int(os.environ.get("HPCFLOW_PROPERTY_EXAMPLES", "30"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def fewest_processes(graph, inputs, mapping: str) -> int:
    """The processes the plan needs at least (it says so when given too few)."""
    try:
        prepare(graph, inputs, mapping, 1)
    except UsageError as exc:
        return int(re.search(r"needs at least (\d+) processes", str(exc)).group(1))
    return 1


def check_equals_simple(spec, mapping: str, extra: int) -> None:
    """`extra` processes beyond the fewest the plan needs: the static and hybrid
    placements differ with them (instances of stateless PEs, pool size)."""
    graph, inputs = build(spec)
    expected = run(graph, inputs, "simple")
    graph, inputs = build(spec)
    got = run(graph, inputs, mapping, fewest_processes(graph, inputs, mapping) + extra)
    assert canonical(got.outputs) == canonical(expected.outputs)
    assert got.metrics.items == expected.metrics.items
    assert (got.metrics.status, got.errors) == ("ok", [])
    assert child_processes() == []


@pytest.mark.parametrize("mapping", ["multi", "hybrid_multi", "hybrid_auto_multi"])
@SETTINGS
@given(spec=dags(), extra=st.integers(0, 3))
def test_random_dag_equals_simple(mapping, spec, extra):
    check_equals_simple(spec, mapping, extra)


@pytest.mark.parametrize("mapping", ["dyn_multi", "dyn_auto_multi"])
@SETTINGS
@given(spec=dags(stateless=True), extra=st.integers(0, 3))
def test_random_stateless_dag_equals_simple_on_dynamic_mappings(mapping, spec, extra):
    check_equals_simple(spec, mapping, extra)


@settings(max_examples=4 * EXAMPLES, deadline=None, derandomize=True, database=None)
@given(spec=dags(), mapping=st.sampled_from(["dyn_multi", "dyn_auto_multi"]))
def test_dynamic_mappings_refuse_random_stateful_dags(spec, mapping):
    assume(spec.stateful)
    graph, inputs = build(spec)
    with pytest.raises(UsageError, match=r"stateful .* cannot run; use hybrid_") as info:
        run(graph, inputs, mapping, 64)
    assert "\n" not in str(info.value)
    assert child_processes() == []
