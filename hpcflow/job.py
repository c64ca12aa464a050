"""What an engine is given (Job) and what it gives back (Outcome)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import HpcflowError
from .graph import WorkflowGraph
from .inputs import Feed
from .mappings import MappingSpec
from .options import Options
from .plan import Plan


@dataclass
class Job:
    graph: WorkflowGraph
    plan: Plan
    feeds: dict[str, Feed]
    mapping: MappingSpec
    options: Options


@dataclass
class Outcome:
    outputs: dict[str, dict[str, list]]
    items: dict[str, int]
    runtime_s: float
    process_time_s: float
    cpu_time_s: float
    timeline: list[list[float]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)  # items skipped under on_error=skip
    extra: dict[str, Any] = field(default_factory=dict)
    failure: HpcflowError | None = None  # why the run stopped early, if it did


def add_output(outputs: dict[str, dict[str, list]], pe: str, port: str, data: Any) -> None:
    outputs.setdefault(pe, {}).setdefault(port, []).append(data)
