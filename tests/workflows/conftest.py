"""Fixtures for the workflow tests: outputs compared as multisets (mappings may reorder
items, never change them)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable

import pytest


def _multiset(outputs: dict[str, dict[str, list]]) -> Counter:
    return Counter(
        json.dumps([pe, port, item], sort_keys=True)
        for pe, ports in outputs.items()
        for port, items in ports.items()
        for item in items
    )


@pytest.fixture
def multiset() -> Callable[[dict], Counter]:
    """`multiset(result.outputs)`: every (pe, port, item) of a run, order-free."""
    return _multiset
