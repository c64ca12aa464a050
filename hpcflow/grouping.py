"""Groupings of an input port, and the stable hash behind group-by.

Group-by must send a key to the same instance in every process, rank and host, so it
hashes a canonical byte encoding of the key with BLAKE2b; Python's `hash()` is salted
per process (PYTHONHASHSEED) and would scatter a key across instances.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import GraphError

SHUFFLE = "shuffle"
GROUP_BY = "group_by"
GLOBAL = "global"
ALL = "all"


@dataclass(frozen=True)
class Grouping:
    """How an edge picks the destination instance(s) of an item."""

    kind: str
    key: tuple | Callable[[Any], Any] | None = None

    @property
    def stateful(self) -> bool:
        return self.kind != SHUFFLE

    def key_of(self, data: Any) -> Any:
        if callable(self.key):
            return self.key(data)
        if len(self.key) == 1:
            return data[self.key[0]]
        return tuple(data[k] for k in self.key)

    def describe(self) -> str:
        if self.kind == GROUP_BY:
            return f"group-by {self.key.__name__ if callable(self.key) else list(self.key)}"
        return self.kind


def parse_grouping(spec: Any, where: str = "") -> Grouping:
    """Normalise a dispel4py grouping spec: None/"shuffle", [i, ...], a key, a callable,
    "global" or "all"."""
    if spec is None or spec == SHUFFLE:
        return Grouping(SHUFFLE)
    if spec == GLOBAL:
        return Grouping(GLOBAL)
    if spec == ALL:
        return Grouping(ALL)
    if callable(spec):
        return Grouping(GROUP_BY, spec)
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise GraphError(f"empty group-by grouping {where}".strip())
        return Grouping(GROUP_BY, tuple(spec))
    if isinstance(spec, (str, int)):
        return Grouping(GROUP_BY, (spec,))
    raise GraphError(f"unknown grouping {spec!r} {where}".strip())


def _encode(obj: Any, out: bytearray) -> None:
    """Append a canonical, type-tagged encoding of `obj`; equal keys encode equally."""
    if obj is None:
        out += b"N"
    elif isinstance(obj, bool) or isinstance(obj, int):
        b = str(int(obj)).encode()
        out += b"i" + struct.pack(">I", len(b)) + b
    elif isinstance(obj, float):
        if math.isfinite(obj) and obj.is_integer():
            _encode(int(obj), out)
        else:
            out += b"f" + struct.pack(">d", obj)
    elif isinstance(obj, str):
        b = obj.encode("utf-8", "surrogatepass")
        out += b"s" + struct.pack(">I", len(b)) + b
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        b = bytes(obj)
        out += b"b" + struct.pack(">I", len(b)) + b
    elif isinstance(obj, (tuple, list)):
        out += b"t" + struct.pack(">I", len(obj))
        for x in obj:
            _encode(x, out)
    elif isinstance(obj, dict):
        parts = sorted(stable_bytes(k) + stable_bytes(v) for k, v in obj.items())
        out += b"d" + struct.pack(">I", len(parts)) + b"".join(parts)
    elif isinstance(obj, (set, frozenset)):
        parts = sorted(stable_bytes(x) for x in obj)
        out += b"S" + struct.pack(">I", len(parts)) + b"".join(parts)
    elif hasattr(obj, "item") and hasattr(obj, "dtype") and getattr(obj, "shape", None) == ():
        _encode(obj.item(), out)  # numpy scalar
    else:
        r = repr(obj)
        if " at 0x" in r:
            raise TypeError(f"group-by key {r} has no stable encoding; use str, int, tuple...")
        _encode(f"{type(obj).__qualname__}:{r}", out)


def stable_bytes(obj: Any) -> bytes:
    out = bytearray()
    _encode(obj, out)
    return bytes(out)


def stable_hash(obj: Any) -> int:
    """A 64-bit hash of `obj` that is the same in every process and on every host."""
    return int.from_bytes(hashlib.blake2b(stable_bytes(obj), digest_size=8).digest(), "big")
