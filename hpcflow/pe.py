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

from .errors import GraphError, UsageError

INPUT_NAME = "input"
OUTPUT_NAME = "output"
NAME = "name"
TYPE = "type"  # dispel4py's tuple type of a port: kept in the port's dict, not checked
GROUPING = "grouping"
DESCRIPTION = "descr"  # dispel4py's other keys of a port's dict: kept if set, not used
META = "meta"
WRITER = "writer"

Emit = Callable[[str, Any], None]


class GenericPE:
    """A processing element: ports, `preprocess`, `process`, `write`, `postprocess`.

    As in dispel4py, the default `process(inputs)` returns `self._process(inputs)`, and
    `preprocess`/`postprocess` call the `_preprocess`/`_postprocess` hooks, so a PE may
    override either layer."""

    numprocesses = 1
    stateful = False

    def __init__(self, numprocesses: int | None = None) -> None:
        self.name = type(self).__name__
        self.inputconnections: dict[str, dict[str, Any]] = {}
        self.outputconnections: dict[str, dict[str, Any]] = {}
        self.instance = 0
        self._emit: Emit | None = None
        self._graph_id: int | None = None
        if numprocesses is not None:  # only an explicit count fixes the instances (see plan)
            self.numprocesses = numprocesses

    # -- ports ---------------------------------------------------------------
    def _add_input(self, name: str, grouping: Any = None, tuple_type: Any = None) -> None:
        """Declare an input port; `grouping` is None/"shuffle", a list of indices or keys,
        a key, a callable, "global" or "all"."""
        self.inputconnections[name] = {NAME: name}
        if grouping is not None:
            self.inputconnections[name][GROUPING] = grouping
        if tuple_type:
            self.inputconnections[name][TYPE] = tuple_type

    def _add_output(self, name: str, tuple_type: Any = None) -> None:
        self.outputconnections[name] = {NAME: name}
        if tuple_type:
            self.outputconnections[name][TYPE] = tuple_type

    # -- dispel4py's port types: declared, propagated, never checked ------------
    def setInputTypes(self, types: dict[str, Any]) -> None:  # noqa: N802 (dispel4py's name)
        """Told the types of the inputs by `WorkflowGraph.propagate_types()`; override to
        derive output types from them."""

    def getOutputTypes(self) -> dict[str, Any]:  # noqa: N802 (dispel4py's name)
        """The declared type of every output port; a port without one is an error, as in dispel4py."""
        types = {}
        for name, port in self.outputconnections.items():
            if TYPE not in port:
                raise GraphError(f"PE {self.name}: no output type defined for {name!r}")
            types[name] = port[TYPE]
        return types

    # -- lifecycle -----------------------------------------------------------
    def preprocess(self) -> None:
        """Called once per instance before any data; calls `_preprocess()`."""
        self._preprocess()

    def _preprocess(self) -> None:
        """dispel4py's hook for set-up before data."""

    def process(self, inputs: dict[str, Any]) -> dict[str, Any] | None:
        """Turn `{input_port: item}` into `{output_port: item}` (or None); by default
        `self._process(inputs)`, as in dispel4py."""
        return self._process(inputs)

    def _process(self, inputs: Any) -> Any:
        """dispel4py's hook: the logic of a PE that does not override `process()`."""
        return None

    def postprocess(self) -> None:
        """Called once per instance after its last input; may `write()`. Calls `_postprocess()`.

        Checkpoints keep what `__init__`, `preprocess()` and `process()` leave in the
        instance's attributes (pickled). A PE whose state does not pickle (an open file,
        a model) may define `snapshot() -> state` and `restore(state)`; a resumed
        instance runs `preprocess()` first, then `restore()` (see hpcflow.snapshot)."""
        self._postprocess()

    def _postprocess(self) -> None:
        """dispel4py's hook for what to do (and write) after the last input."""

    def write(self, name: str, data: Any) -> None:
        """Emit `data` on output port `name` (any number of times per input).

        A port the PE never declared is unconnected by definition: its items are collected
        like any unconnected output's, as dispel4py's `simple` does (said once in the log)."""
        if name not in self.outputconnections:
            self._undeclared_port(name)
        if self._emit is None:
            raise UsageError(f"PE {self.name} wrote outside a run")
        self._emit(name, data)

    def _undeclared_port(self, name: str) -> None:
        seen = self.__dict__.setdefault("_undeclared", set())
        if name not in seen:
            seen.add(name)
            logging.getLogger(f"hpcflow.pe.{self.name}").info(
                "PE %s wrote to output port %r, which it never declared: its items are collected as an "
                "unconnected output",
                self.name,
                name,
            )

    # -- dispel4py compatibility ----------------------------------------------
    @property
    def rank(self) -> int:
        """This instance's index among the PE's instances (dispel4py: the process rank)."""
        return self.instance

    @rank.setter
    def rank(self, value: int) -> None:
        self.instance = value

    @property
    def id(self) -> str:
        """The PE's name in its graph: the key of its outputs and metrics (dispel4py keys
        them by `id`, so `results[pe.id]` reads the same in both)."""
        return self.name

    @id.setter
    def id(self, value: str) -> None:
        self.name = value

    def log(self, msg: str) -> None:
        """Print `msg` as dispel4py does ("Name (rank 0): msg") and keep it in the run's log."""
        print(f"{self.name} (rank {self.instance}): {msg}", flush=True)
        logging.getLogger(f"hpcflow.pe.{self.name}").info("%s[%s]: %s", self.name, self.instance, msg)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_emit"] = None
        return state


class BasePE(GenericPE):
    """A PE with named ports given to the constructor, as dispel4py's: `inputs` and
    `outputs` are names; `num_inputs`/`num_outputs` add `input0`.. and `output0`.."""

    INPUT_NAME = INPUT_NAME
    OUTPUT_NAME = OUTPUT_NAME

    def __init__(
        self,
        inputs: list[str] | tuple[str, ...] = (),
        outputs: list[str] | tuple[str, ...] = (),
        num_inputs: int = 0,
        num_outputs: int = 0,
    ) -> None:
        super().__init__()
        for name in [f"{INPUT_NAME}{i}" for i in range(num_inputs)] + list(inputs):
            self._add_input(name)
        for name in [f"{OUTPUT_NAME}{i}" for i in range(num_outputs)] + list(outputs):
            self._add_output(name)


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


def _observed(pe: GenericPE) -> GenericPE:
    """The PE whose logic counts: a wrapper that only observes another PE (ProcessTimingPE)
    names it in `_wrapped`, and is judged by it."""
    return getattr(pe, "_wrapped", None) or pe


def overrides_postprocess(pe: GenericPE) -> bool:
    """True if the PE does something after its last input (`postprocess` or dispel4py's
    `_postprocess` hook): it keeps state until then."""
    cls = type(_observed(pe))
    return cls.postprocess is not GenericPE.postprocess or cls._postprocess is not GenericPE._postprocess


# The classes of this module whose `process`/`_process` are not a PE's own logic.
_LIBRARY = ("GenericPE", "BasePE", "IterativePE", "ProducerPE", "ConsumerPE")


def _own(pe: GenericPE, attr: str) -> bool:
    """True if `attr` comes from the PE's own code (its class or the instance), not a
    default of this module."""
    if attr in vars(pe):
        return True
    for cls in type(pe).__mro__:
        if attr in vars(cls):
            return not (cls.__module__ == __name__ and cls.__name__ in _LIBRARY)
    return False


def missing_logic(pe: GenericPE) -> str | None:
    """Why `pe` can never do anything, or None. A PE that overrides none of `process`,
    `_process`, `postprocess` and `_postprocess` would consume its inputs and write
    nothing: a run that "succeeds" with an empty result is worse than an error."""
    target = _observed(pe)
    if isinstance(target, SimpleFunctionPE) and target.compute_fn is None:
        if type(target)._process is SimpleFunctionPE._process and "_process" not in vars(target):
            return "is a SimpleFunctionPE without a compute_fn"
    if any(_own(target, attr) for attr in ("process", "_process")) or overrides_postprocess(target):
        return None
    return (
        f"overrides neither process() nor _process() (nor postprocess()), so it would never "
        f"produce anything; define {type(target).__name__}.process(self, inputs) or _process(...)"
    )


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
