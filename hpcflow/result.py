"""What `run()` returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .composite import resolve
from .errors import UsageError
from .graph import WorkflowGraph
from .graphview import node_object
from .metrics import Metrics
from .pe import OUTPUT_NAME, GenericPE


@dataclass
class RunResult:
    outputs: dict[str, dict[str, list]]  # {pe_name: {port: [items]}} of every unconnected port
    metrics: Metrics
    errors: list[dict[str, Any]] = field(default_factory=list)  # items skipped (on_error=skip)

    def output(self, pe: Any, port: str = OUTPUT_NAME) -> list:
        """Items written to `port` of `pe` (a PE, its name, the node `graph.add()` gave,
        or a composite and one of its mapped outputs), which must be unconnected.

        A name or port that is not an unconnected output is an error, not an empty list:
        a typo must not read as "the PE wrote nothing"."""
        pe = node_object(pe)
        if isinstance(pe, WorkflowGraph):
            pe, port = resolve(pe, port, output=True)
        name = pe.name if isinstance(pe, GenericPE) else pe
        try:
            return list(self.outputs[name][port])
        except KeyError:
            known = ", ".join(f"{p}.{q}" for p, ports in self.outputs.items() for q in ports) or "none"
            raise UsageError(f"{name}.{port} is not an unconnected output of this run (they are: {known})") from None
