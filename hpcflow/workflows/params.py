"""What a workflow's parameters take: each declared next to the workflow's `build()` as
`PARAMS = {"latency": Param(float, "seconds each stage sleeps per item", unit="seconds", least=0)}`.

`-p key=value` arrives as a YAML scalar (`3`, `0.5`, `true`, text); a declared parameter
is checked before `build()` runs, so a wrong value is one line naming the parameter and
what it takes (`-p latency=fast: latency takes a number of seconds >= 0`), never an error
from deep inside the workflow. `hpcflow workflows` prints the same declarations, with the
defaults read from `build()`'s signature (one source for each fact). A workflow without
`PARAMS` is called as it is, its errors turned into a line naming `build()`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError


@dataclass(frozen=True)
class Param:
    """One parameter: its type (int, float, bool or str), what it means, its unit (for a
    text: what it names, as `path`), the least value of a number, the values a text may
    be. Its default is `build()`'s; a default of None means "not given" and may be set to null."""

    type: type
    meaning: str
    unit: str = ""
    least: float | None = None
    choices: tuple[str, ...] = ()

    def takes(self) -> str:
        """`a number of seconds >= 0`, `a whole number >= 1`, `true or false`, `one of fixed, beta`."""
        if self.choices:
            return f"one of {', '.join(self.choices)}"
        if self.type is bool:
            return "true or false"
        if self.type is str:
            return f"a {self.unit}" if self.unit else "text"
        kind = "a whole number" if self.type is int else "a number"
        kind += f" of {self.unit}" if self.unit else ""
        return kind + (f" >= {self.least:g}" if self.least is not None else "")

    def check(self, name: str, value: Any, optional: bool, given_as: str = "-p ") -> Any:
        """`value` as the parameter's type, or UsageError naming the parameter as it was given."""
        if value is None and optional:
            return None
        ok = self._convert(value)
        if ok is _WRONG:
            raise UsageError(f"{given_as}{name}={shown(value)}: {name} takes {self.takes()}")
        return ok

    def _convert(self, value: Any) -> Any:
        if self.type is bool:
            return value if isinstance(value, bool) else _WRONG
        if self.type is str:
            if isinstance(value, (dict, list, bool)) or value is None:
                return _WRONG
            text = str(value)  # a YAML number given for a name or a path: its text
            return text if not self.choices or text in self.choices else _WRONG
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return _WRONG
        if self.type is int:
            if isinstance(value, float):
                return _WRONG
        else:
            value = float(value)
        if self.least is not None and value < self.least:
            return _WRONG
        return value


_WRONG = object()


def shown(value: Any) -> str:
    """A value as it is written after `-p key=`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def defaults(build: Callable[..., Any]) -> dict[str, Any]:
    """The defaults of `build()`'s parameters (run_dir is hpcflow's, not the user's)."""
    return {
        p.name: p.default
        for p in inspect.signature(build).parameters.values()
        if p.name != "run_dir" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }


def check_params(
    declared: dict[str, Param], build: Callable[..., Any], params: dict[str, Any], given_as: str = "-p "
) -> dict[str, Any]:
    """The given parameters checked against their declarations (unknown names are the
    caller's to refuse); a parameter whose default is None may be set to null."""
    unset = defaults(build)
    return {
        key: declared[key].check(key, value, unset.get(key, 0) is None, given_as) if key in declared else value
        for key, value in params.items()
    }
