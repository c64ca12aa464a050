"""Large items (a 50 MB numpy array) pass through a 3-stage pipeline on every multi-process
mapping: pickled, chunked and passed through the coordinator like any other."""

from __future__ import annotations

import pytest
from graphs import BigArray, Bump, Digest, chain

from hpcflow import run

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("no_leftover_processes")]

MB = 50


@pytest.mark.parametrize("mapping", ["multi", "dyn_multi", "dyn_auto_multi", "hybrid_multi", "hybrid_auto_multi"])
def test_a_50_mb_array_passes_through_three_stages(mapping):
    src = BigArray(MB)
    graph = chain(src, Bump(), Bump(), Digest())
    result = run(graph, {src: 1}, mapping, 4)
    assert result.output("Digest") == [(MB * 2**20 // 8, 3.0, 1.0)]
    assert result.metrics.items == {"BigArray": 1, "Bump": 1, "Bump1": 1, "Digest": 1}
