"""Where an output item goes: ONE implementation used by every mapping.

An item written on (pe, port) goes down every stream connected to that port (fan-out
reaches every branch). Each stream's grouping picks the destination instance: shuffle
round-robins over the instances of a pinned PE (each sending instance starting at its own
instance number, so that n senders' first items go to n different instances rather than
all to instance 0, which would start late and the others early), group-by hashes the key stably, global
picks instance 0, all copies the item to every instance. A PE that a dynamic pool runs
has no instance to pick: its destination instance is None ("any worker").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from .graph import WorkflowGraph
from .grouping import ALL, GLOBAL, GROUP_BY, SHUFFLE, Grouping, stable_hash
from .plan import DYNAMIC, HYBRID, Plan


class Destination(NamedTuple):
    pe: str
    port: str
    instance: int | None


@dataclass
class _Stream:
    dst: str
    port: str
    grouping: Grouping
    instances: int
    anywhere: bool  # run by the dynamic pool: no instance to choose
    next_rr: int | None = None  # None until the first item: then the sender's instance number


class Router:
    """Routes output items of one process. Holds round-robin counters, so each process
    (worker, rank) has its own Router; the choice for group-by is the same in all."""

    def __init__(self, graph: WorkflowGraph, plan: Plan):
        self._graph = graph  # the sender's instance number is read when it first sends (the
        # engine sets it on its copy of the PE after making the Router)
        self._streams: dict[tuple[str, str], list[_Stream]] = {}
        self._fixed: dict[tuple[str, str], list[Destination]] = {}  # routes that ignore the item
        pool_runs = plan.kind in (DYNAMIC, HYBRID)
        for e in graph.edges:
            s = _Stream(
                dst=e.dst,
                port=e.dst_port,
                grouping=graph.grouping(e.dst, e.dst_port),
                instances=plan.instances[e.dst],
                anywhere=pool_runs and not plan.is_pinned(e.dst),
            )
            self._streams.setdefault((e.src, e.src_port), []).append(s)
        for key, streams in self._streams.items():
            if all(s.anywhere or (s.instances == 1 and s.grouping.kind in (SHUFFLE, GLOBAL)) for s in streams):
                self._fixed[key] = [Destination(s.dst, s.port, None if s.anywhere else 0) for s in streams]

    def is_connected(self, pe: str, port: str) -> bool:
        return (pe, port) in self._streams

    def is_fixed(self, pe: str, port: str) -> bool:
        """Whether what `pe` writes on `port` goes to the same places whatever the item
        (nowhere, for an unconnected port)."""
        return (pe, port) in self._fixed or (pe, port) not in self._streams

    def route(self, pe: str, port: str, data: Any) -> list[Destination]:
        """Every destination of `data` written by `pe` on `port` ([] if unconnected).
        The list returned may be shared: do not modify it."""
        fixed = self._fixed.get((pe, port))
        if fixed is not None:
            return fixed
        out: list[Destination] = []
        for s in self._streams.get((pe, port), ()):
            if s.anywhere:
                out.append(Destination(s.dst, s.port, None))
                continue
            kind = s.grouping.kind
            if kind == ALL:
                out.extend(Destination(s.dst, s.port, i) for i in range(s.instances))
                continue
            if kind == GROUP_BY:  # the key is taken even for one instance: same errors everywhere
                i = self._key_hash(s, data) % s.instances
            elif s.instances == 1 or kind == GLOBAL:
                i = 0
            else:
                i = s.next_rr if s.next_rr is not None else self._first(pe, s.instances)
                s.next_rr = (i + 1) % s.instances
            out.append(Destination(s.dst, s.port, i))
        return out

    def _first(self, pe: str, instances: int) -> int:
        """Where a sender's round robin starts: its instance number (0 where a pool runs it)."""
        return (getattr(self._graph.get(pe), "instance", None) or 0) % instances

    @staticmethod
    def _key_hash(s: _Stream, data: Any) -> int:
        try:  # a callable key may raise anything; a key with no stable encoding, TypeError
            return stable_hash(s.grouping.key_of(data))
        except Exception as exc:
            raise ValueError(
                f"cannot take the {s.grouping.describe()} key of this item for {s.dst}.{s.port}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
