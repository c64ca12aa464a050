"""What `run()` returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .metrics import Metrics
from .pe import OUTPUT_NAME, GenericPE


@dataclass
class RunResult:
    outputs: dict[str, dict[str, list]]  # {pe_name: {port: [items]}} of unconnected ports
    metrics: Metrics
    errors: list[dict[str, Any]] = field(default_factory=list)  # items skipped (on_error=skip)

    def output(self, pe: GenericPE | str, port: str = OUTPUT_NAME) -> list:
        """Items written to `port` of `pe` (a PE or its name), which must be unconnected."""
        name = pe.name if isinstance(pe, GenericPE) else pe
        return list(self.outputs.get(name, {}).get(port, []))
