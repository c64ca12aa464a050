"""Run inputs, as in dispel4py: an int (iterations for every producer) or
`{pe_or_name: int | list[dict]}`, normalised to one feed per root PE."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .errors import UsageError
from .graph import WorkflowGraph

Feed = int | list  # n calls of process({}), or the dicts fed to process in order


def normalize_inputs(graph: WorkflowGraph, inputs: Any) -> dict[str, Feed]:
    roots = graph.roots()
    if inputs is None:
        inputs = 1
    if isinstance(inputs, bool) or not isinstance(inputs, (int, dict)):
        raise UsageError(f"inputs must be an int or a dict {{pe: int | list of dicts}}, got {type(inputs).__name__}")
    if isinstance(inputs, int):
        return {r: _feed(r, inputs) for r in roots}
    feeds: dict[str, Feed] = {}
    for key, value in inputs.items():
        name = graph.get(key).name
        if name not in roots:
            raise UsageError(
                f"inputs name PE {name}, which a stream feeds; give inputs to a root PE ({', '.join(roots)})"
            )
        feeds[name] = _feed(name, value)
    missing = [r for r in roots if r not in feeds]
    if missing:
        raise UsageError(f"no inputs for root PE(s) {', '.join(missing)}; give each an int or a list of dicts")
    return feeds


def _feed(name: str, value: Any) -> Feed:
    if isinstance(value, bool) or not isinstance(value, (int, list, tuple)):
        raise UsageError(f"inputs for PE {name} must be an int or a list of dicts, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise UsageError(f"inputs for PE {name} must not be negative, got {value}")
        return value
    for item in value:
        if not isinstance(item, dict):
            raise UsageError(f"inputs for PE {name} must be dicts {{port: data}}, got {item!r}")
    return list(value)


def feed_length(feed: Feed) -> int:
    return feed if isinstance(feed, int) else len(feed)


def iter_feed(feed: Feed) -> Iterator[dict[str, Any]]:
    """The `inputs` dicts to call a root PE's process() with, in order."""
    if isinstance(feed, int):
        for _ in range(feed):
            yield {}
    else:
        for item in feed:
            yield dict(item)
