"""Every shared-memory mapping gives the outputs (as multisets) and the per-PE item
counts of `simple`, on every graph shape, at 2, 8 and 64 processes."""

from __future__ import annotations

import pytest
from graphs import ALL_SHAPES, STATEFUL, STATELESS, canonical, run_fitting

from hpcflow import UsageError, run

MAPPINGS = ["multi", "dyn_multi", "dyn_auto_multi", "hybrid_multi", "hybrid_auto_multi"]


CASES = [
    (shape, mapping, processes)
    for shape in sorted(ALL_SHAPES)
    for mapping in MAPPINGS
    if not (mapping.startswith("dyn_") and shape in STATEFUL)  # refused: tested below
    for processes in (2, 8, 64)
]


@pytest.mark.parametrize("shape,mapping,processes", CASES)
def test_mapping_equals_simple(shape, mapping, processes):
    graph, inputs = ALL_SHAPES[shape]()
    expected = run(graph, inputs, "simple")
    got = run_fitting(graph, inputs, mapping, processes)
    assert canonical(got.outputs) == canonical(expected.outputs)
    assert got.metrics.items == expected.metrics.items
    assert got.metrics.status == "ok"


@pytest.mark.parametrize("shape", sorted(STATEFUL))
def test_dyn_multi_refuses_stateful_graph(shape):
    graph, inputs = STATEFUL[shape]()
    with pytest.raises(UsageError, match=r"stateful.*use hybrid_multi"):
        run(graph, inputs, "dyn_multi", 4)


def test_every_shape_produces_something():
    """Guards the comparison above against shapes whose outputs are trivially empty."""
    for name, build in {**STATELESS, **STATEFUL}.items():
        graph, inputs = build()
        result = run(graph, inputs, "simple")
        assert sum(result.metrics.items.values()) > 0, name
