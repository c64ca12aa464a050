"""Run metrics (DESIGN.md §4): recorded, never printed; one JSON object a run."""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from . import __version__
from .durable import replace_file
from .redact import redact_all

if TYPE_CHECKING:
    import psutil


def cpu_seconds(proc: psutil.Process | None = None) -> float:
    """User + system CPU time of a process (this one by default: from os.times(), the
    same counters psutil reads, without importing psutil at every start)."""
    t = os.times() if proc is None else proc.cpu_times()
    return t.user + t.system


class ActiveClock:
    """Wall time a process spends active, and its CPU time over the same span."""

    def __init__(self) -> None:
        self.active_s = 0.0
        self._since: float | None = None
        self._cpu0 = cpu_seconds()

    def start(self) -> None:
        if self._since is None:
            self._since = time.perf_counter()

    def stop(self) -> None:
        if self._since is not None:
            self.active_s += time.perf_counter() - self._since
            self._since = None

    def cpu_s(self) -> float:
        return cpu_seconds() - self._cpu0


@dataclass
class Metrics:
    workflow: str
    params: dict[str, Any]
    mapping: str
    processes: int
    runtime_s: float
    process_time_s: float
    cpu_time_s: float
    items: dict[str, int | None]  # None: unknown (mpi: a rank died before it sent any count)
    timeline: list[list[float]] = field(default_factory=list)
    host: str = field(default_factory=socket.gethostname)
    allocation: dict[str, Any] = field(default_factory=dict)
    hpcflow_version: str = __version__
    extra: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        extra = self.__dict__.get("extra", {})
        if name in extra:
            return extra[name]
        raise AttributeError(name)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key, value in d.pop("extra").items():
            d.setdefault(key, value)  # as for attributes, a field wins over an extra of its name
        return d

    def write(self, path: str | os.PathLike) -> None:
        """Durably and whole (durable.py): a reader sees this run's metrics or the last ones;
        no password goes to disk."""
        replace_file(path, json.dumps(redact_all(self.to_dict()), indent=2, default=to_jsonable) + "\n")


def to_jsonable(obj: Any) -> Any:
    """JSON for what PEs commonly emit: numpy arrays and scalars, sets, bytes, other objects."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    return repr(obj)
