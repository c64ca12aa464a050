"""Reading the JSON files of a run directory (status.json, metrics.json, checkpoint/run.json)
as untrusted input: a file cut short, replaced by `[]`, or with a field of the wrong type
is one clear `UsageError` naming the file and the field, never a Python error later.

The shape a file must have is the type hints of a dataclass (`check_shape`), so the
reader and the writer share one description and cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

from .errors import UsageError


class DamagedFile(UsageError):
    """A run directory's JSON file that cannot be what hpcflow wrote there."""


def read_object(path: Path, what: str) -> dict[str, Any] | None:
    """The JSON object in `path` (None: there is no such file); DamagedFile for a file that
    cannot be read or does not hold an object. `what` says what the file is for."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise DamagedFile(f"{path} ({what}) cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise DamagedFile(f"{path} ({what}) is not valid JSON ({exc}): it is damaged or cut short") from None
    if not isinstance(value, dict):
        raise DamagedFile(f"{path} ({what}) holds {_kind(value)}, not a JSON object: it is damaged")
    return value


def check_shape(value: dict[str, Any], shape: type, path: Path, what: str, required: tuple[str, ...] = ()) -> None:
    """DamagedFile unless every field of `value` that the dataclass `shape` names has the
    type its hint says (fields it does not name are left alone), and `required` are there."""
    for name in required:
        if name not in value:
            raise DamagedFile(f"{path} ({what}) has no field {name!r}: it is damaged")
    problem = _mismatch(value, shape, "")
    if problem is not None:
        raise DamagedFile(f"{path} ({what}) is damaged: {problem}")


def _mismatch(value: Any, hint: Any, where: str) -> str | None:
    """Why `value` is not of type `hint` (None: it is). JSON's types only: str, int,
    float, bool, None, list[...], dict[str, ...], unions, and dataclasses as objects."""
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            return f"{where or 'the file'} is {_kind(value)}, not an object"
        hints = typing.get_type_hints(hint)
        for f in dataclasses.fields(hint):
            if f.name in value:
                problem = _mismatch(value[f.name], hints[f.name], f"{where}.{f.name}" if where else f.name)
                if problem is not None:
                    return problem
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        problems = [_mismatch(value, a, where) for a in args]
        return None if None in problems else f"{where} is {_kind(value)}, not {_name(hint)}"
    if hint is Any:
        return None
    if origin is list:
        if not isinstance(value, list):
            return f"{where} is {_kind(value)}, not a list"
        for i, item in enumerate(value):
            problem = _mismatch(item, args[0], f"{where}[{i}]") if args else None
            if problem is not None:
                return problem
        return None
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            return f"{where} is {_kind(value)}, not an object"
        for key, item in value.items():
            problem = _mismatch(item, args[1], f"{where}.{key}") if args else None
            if problem is not None:
                return problem
        return None
    if hint is type(None):
        return None if value is None else f"{where} is {_kind(value)}, not null"
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, hint)
    return None if ok else f"{where} is {_kind(value)}, not {_name(hint)}"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    names = {bool: "a boolean", str: "a string", int: "a number", float: "a number", list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def _name(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_name(a) for a in typing.get_args(hint))
    names = {str: "a string", int: "a whole number", float: "a number", bool: "a boolean", type(None): "null"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))
