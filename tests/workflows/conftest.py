"""Fixtures for the workflow tests: parallel mappings that skip until they are registered,
and outputs compared as multisets (mappings may reorder items, never change them)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable

import pytest

from hpcflow.mappings import MAPPINGS


@pytest.fixture
def require_mapping() -> Callable[[str], str]:
    """`require_mapping(name)` returns `name`, or skips the test while this branch has no
    such mapping (the engines land in another branch; the skip goes when they merge)."""

    def check(name: str) -> str:
        if name not in MAPPINGS:
            pytest.skip(f"mapping {name} is not registered yet")
        return name

    return check


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
