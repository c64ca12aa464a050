"""Processing elements, with dispel4py's API so that workflows port by changing imports.

A PE declares input and output ports, turns one input item into any number of output
items (`process` returning a dict and/or calling `write`), and may keep state between
items. The engine that runs a PE installs its output sink (`_emit`); a PE never knows
which mapping it runs in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .errors import UsageError

INPUT_NAME = "input"
OUTPUT_NAME = "output"
NAME = "name"
TYPE = "type"  # dispel4py's tuple type of a port: accepted, unused
GROUPING = "grouping"

Emit = Callable[[str, Any], None]


class GenericPE:
    """A processing element: ports, `preprocess`, `process`, `write`, `postprocess`."""

    numprocesses = 1
    stateful = False

    def __init__(self) -> None:
        self.name = type(self).__name__
        self.inputconnections: dict[str, dict[str, Any]] = {}
        self.outputconnections: dict[str, dict[str, Any]] = {}
        self.instance = 0
        self._emit: Emit | None = None
        self._graph_id: int | None = None

    # -- ports ---------------------------------------------------------------
    def _add_input(self, name: str, grouping: Any = None, tuple_type: Any = None) -> None:
        """Declare an input port; `grouping` is None/"shuffle", a list of indices or keys,
        a key, a callable, "global" or "all"."""
        self.inputconnections[name] = {NAME: name}
        if grouping is not None:
            self.inputconnections[name][GROUPING] = grouping

    def _add_output(self, name: str, tuple_type: Any = None) -> None:
        self.outputconnections[name] = {NAME: name}

    # -- lifecycle -----------------------------------------------------------
    def preprocess(self) -> None:
        """Called once per instance before any data."""

    def process(self, inputs: dict[str, Any]) -> dict[str, Any] | None:
        """Turn `{input_port: item}` into `{output_port: item}` (or None)."""
        return None

    def postprocess(self) -> None:
        """Called once per instance after its last input; may `write()`."""

    def write(self, name: str, data: Any) -> None:
        """Emit `data` on output port `name` (any number of times per input)."""
        if name not in self.outputconnections:
            raise UsageError(f"PE {self.name} wrote to unknown output port {name!r}")
        if self._emit is None:
            raise UsageError(f"PE {self.name} wrote outside a run")
        self._emit(name, data)

    # -- dispel4py compatibility ----------------------------------------------
    @property
    def rank(self) -> int:
        return self.instance

    @property
    def id(self) -> str:
        return self.name

    def log(self, msg: str) -> None:
        logging.getLogger(f"hpcflow.pe.{self.name}").info("%s[%d]: %s", self.name, self.instance, msg)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_emit"] = None
        return state


class IterativePE(GenericPE):
    """One input `input`, one output `output`: override `_process(data)`."""

    INPUT_NAME = INPUT_NAME
    OUTPUT_NAME = OUTPUT_NAME

    def __init__(self) -> None:
        super().__init__()
        self._add_input(INPUT_NAME)
        self._add_output(OUTPUT_NAME)

    def process(self, inputs: dict[str, Any]) -> dict[str, Any] | None:
        result = self._process(inputs[INPUT_NAME])
        if result is not None:
            return {OUTPUT_NAME: result}
        return None

    def _process(self, data: Any) -> Any:
        return None


class ProducerPE(GenericPE):
    """No inputs, one output `output`: override `_process(inputs)`."""

    OUTPUT_NAME = OUTPUT_NAME

    def __init__(self) -> None:
        super().__init__()
        self._add_output(OUTPUT_NAME)

    def process(self, inputs: dict[str, Any]) -> dict[str, Any] | None:
        result = self._process(inputs)
        if result is not None:
            return {OUTPUT_NAME: result}
        return None

    def _process(self, inputs: Any) -> Any:
        return None


class ConsumerPE(GenericPE):
    """One input `input`, no outputs: override `_process(data)`."""

    INPUT_NAME = INPUT_NAME

    def __init__(self) -> None:
        super().__init__()
        self._add_input(INPUT_NAME)

    def process(self, inputs: dict[str, Any]) -> None:
        self._process(inputs[INPUT_NAME])
        return None

    def _process(self, data: Any) -> None:
        return None


class SimpleFunctionPE(IterativePE):
    """An IterativePE that applies `compute_fn(data, **params)`."""

    def __init__(self, compute_fn: Callable[..., Any] | None = None, params: dict | None = None):
        super().__init__()
        self.compute_fn = compute_fn
        self.params = dict(params or {})
        if compute_fn is not None:
            self.name = "PE_" + compute_fn.__name__

    def _process(self, data: Any) -> Any:
        return self.compute_fn(data, **self.params)


def overrides_postprocess(pe: GenericPE) -> bool:
    return type(pe).postprocess is not GenericPE.postprocess


def explicit_numprocesses(pe: GenericPE) -> int | None:
    """`numprocesses` if the user set it on the instance or a subclass, else None."""
    if "numprocesses" in vars(pe):
        return int(pe.numprocesses)
    for cls in type(pe).__mro__:
        if cls is GenericPE:
            return None
        if "numprocesses" in vars(cls):
            return int(cls.numprocesses)
    return None
