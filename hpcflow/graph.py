"""The abstract workflow: PEs and the streams between their ports. No processes, no I/O."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .errors import GraphError
from .grouping import Grouping, parse_grouping
from .pe import GROUPING, INPUT_NAME, NAME, OUTPUT_NAME, GenericPE, IterativePE, SimpleFunctionPE

_graph_ids = itertools.count(1)


@dataclass(frozen=True)
class Edge:
    src: str
    src_port: str
    dst: str
    dst_port: str


class WorkflowGraph:
    """A directed acyclic graph of PEs; `connect` adds a stream between two ports."""

    def __init__(self) -> None:
        self._id = next(_graph_ids)
        self._pes: list[GenericPE] = []
        self._edges: list[tuple[GenericPE, str, GenericPE, str]] = []
        self.inputmappings: dict[str, tuple[GenericPE, str]] = {}
        self.outputmappings: dict[str, tuple[GenericPE, str]] = {}

    # -- building ----------------------------------------------------------
    def add(self, pe: GenericPE) -> GenericPE:
        """Add a PE (connect() adds its ends itself); makes its name unique in the graph."""
        if not isinstance(pe, GenericPE):
            raise GraphError(f"{pe!r} is not a PE (GenericPE subclass instance)")
        if pe._graph_id == self._id:
            return pe
        if pe._graph_id is not None:
            raise GraphError(f"PE {pe.name} is already used in another WorkflowGraph; create a new instance")
        taken = {p.name for p in self._pes}
        base, n = pe.name, 0
        while pe.name in taken:
            n += 1
            pe.name = f"{base}{n}"
        pe._graph_id = self._id
        self._pes.append(pe)
        return pe

    def connect(self, from_pe: GenericPE, from_port: str, to_pe: GenericPE, to_port: str) -> None:
        """Stream every item `from_pe` writes on `from_port` into `to_pe`'s `to_port`."""
        for pe in (from_pe, to_pe):
            if not isinstance(pe, GenericPE):
                raise GraphError(f"connect() takes PEs, got {pe!r}")
        if from_port not in from_pe.outputconnections:
            raise GraphError(
                f"PE {from_pe.name} has no output port {from_port!r} (ports: {_ports(from_pe.outputconnections)})"
            )
        if to_port not in to_pe.inputconnections:
            raise GraphError(f"PE {to_pe.name} has no input port {to_port!r} (ports: {_ports(to_pe.inputconnections)})")
        self.add(from_pe)
        self.add(to_pe)
        edge = (from_pe, from_port, to_pe, to_port)
        if edge not in self._edges:
            self._edges.append(edge)

    # -- reading -------------------------------------------------------------
    @property
    def pes(self) -> list[GenericPE]:
        return list(self._pes)

    @property
    def edges(self) -> list[Edge]:
        return [Edge(a.name, ap, b.name, bp) for a, ap, b, bp in self._edges]

    def get(self, pe_or_name: GenericPE | str) -> GenericPE:
        if isinstance(pe_or_name, GenericPE):
            if pe_or_name._graph_id != self._id:
                raise GraphError(f"PE {pe_or_name.name} is not in this graph")
            return pe_or_name
        for pe in self._pes:
            if pe.name == pe_or_name:
                return pe
        raise GraphError(f"no PE named {pe_or_name!r} in the graph (PEs: {', '.join(self.names())})")

    def names(self) -> list[str]:
        return [pe.name for pe in self._pes]

    def roots(self) -> list[str]:
        """PEs that no stream feeds: the producers (and any PE fed only by run inputs)."""
        fed = {e.dst for e in self.edges}
        return [n for n in self.topological_order() if n not in fed]

    def predecessors(self, name: str) -> list[str]:
        return sorted({e.src for e in self.edges if e.dst == name})

    def successors(self, name: str) -> list[str]:
        return sorted({e.dst for e in self.edges if e.src == name})

    def grouping(self, pe_name: str, port: str) -> Grouping:
        spec = self.get(pe_name).inputconnections[port].get(GROUPING)
        return parse_grouping(spec, f"on input {pe_name}.{port}")

    def unconnected_outputs(self) -> list[tuple[str, str]]:
        used = {(e.src, e.src_port) for e in self.edges}
        return [(pe.name, p) for pe in self._pes for p in pe.outputconnections if (pe.name, p) not in used]

    def topological_order(self) -> list[str]:
        """PE names, every PE after all of its upstream PEs and otherwise in the order they
        were added, so roots are fed and PEs postprocessed in an order the user can predict;
        a cycle is a GraphError that shows it."""
        names = self.names()
        index = {n: i for i, n in enumerate(names)}
        succ: dict[str, list[str]] = {n: [] for n in names}
        pred: dict[str, list[str]] = {n: [] for n in names}
        indegree = dict.fromkeys(names, 0)
        for e in self.edges:
            succ[e.src].append(e.dst)
            pred[e.dst].append(e.src)
            indegree[e.dst] += 1
        ready = [index[n] for n in names if indegree[n] == 0]
        order: list[str] = []
        while ready:
            n = names[heapq.heappop(ready)]
            order.append(n)
            for m in succ[n]:
                indegree[m] -= 1
                if indegree[m] == 0:
                    heapq.heappush(ready, index[m])
        if len(order) < len(names):
            # Every PE left has a predecessor left: walking upstream must close a cycle.
            path: list[str] = []
            seen: dict[str, int] = {}
            n = next(n for n in names if indegree[n] > 0)
            while n not in seen:
                seen[n] = len(path)
                path.append(n)
                n = next(m for m in pred[n] if indegree[m] > 0)
            cycle = path[seen[n] :][::-1]
            first = min(range(len(cycle)), key=lambda i: index[cycle[i]])
            cycle = cycle[first:] + cycle[:first]
            raise GraphError(f"the workflow graph has a cycle: {' -> '.join(cycle + cycle[:1])}")
        return order

    def validate(self) -> None:
        """Raise GraphError for anything that cannot run: no PEs, duplicate names, ports or
        groupings that do not exist (a grouping set on `inputconnections[port]` of a port
        never declared with `_add_input`), a cycle."""
        if not self._pes:
            raise GraphError("the workflow graph has no PEs")
        seen: set[str] = set()
        for pe in self._pes:
            if pe.name in seen:
                raise GraphError(f"two PEs are named {pe.name!r}; PE names must be unique")
            seen.add(pe.name)
            for port, conn in pe.inputconnections.items():
                if not isinstance(conn, dict) or conn.get(NAME) != port:
                    raise GraphError(
                        f"PE {pe.name}: input port {port!r} was never declared (its entry is {conn!r}); "
                        f"declare it with _add_input({port!r}, grouping=...) before grouping it"
                    )
                parse_grouping(conn.get(GROUPING), f"on input {pe.name}.{port}")
        for a, ap, b, bp in self._edges:
            if ap not in a.outputconnections:
                raise GraphError(f"PE {a.name} has no output port {ap!r}")
            if bp not in b.inputconnections:
                raise GraphError(f"PE {b.name} has no input port {bp!r}")
        self.topological_order()

    def to_dot(self) -> str:
        """The graph in Graphviz dot: one box per PE, one labelled arrow per stream."""
        lines = ["digraph workflow {", "  rankdir=LR;", "  node [shape=box];"]
        for pe in self._pes:
            lines.append(f"  {_dot_id(pe.name)};")
        for e in self.edges:
            g = self.grouping(e.dst, e.dst_port)
            label = f"{e.src_port} -> {e.dst_port}"
            if g.kind != "shuffle":
                label += f" ({g.describe()})"
            lines.append(f"  {_dot_id(e.src)} -> {_dot_id(e.dst)} [label={_dot_id(label)}];")
        lines.append("}")
        return "\n".join(lines) + "\n"


def _dot_id(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ports(conns: dict[str, Any]) -> str:
    return ", ".join(repr(p) for p in conns) or "none"


def create_iterative_chain(
    functions: Iterable[Callable[..., Any] | tuple[Callable[..., Any], dict]],
    FunctionPE_class: type[SimpleFunctionPE] = SimpleFunctionPE,
    name_prefix: str = "PE_",
    name_suffix: str = "",
) -> WorkflowGraph:
    """A linear chain of function PEs, as dispel4py's helper: each element is `fn` or
    `(fn, params)`; the graph's `inputmappings`/`outputmappings` name its two ends."""
    graph = WorkflowGraph()
    first = prev = None
    for desc in functions:
        fn, params = (desc[0], desc[1]) if isinstance(desc, (tuple, list)) else (desc, {})
        pe = FunctionPE_class()
        pe.compute_fn = fn
        pe.params = dict(params)
        pe.name = name_prefix + fn.__name__ + name_suffix
        if prev is None:
            first = graph.add(pe)
        else:
            graph.connect(prev, OUTPUT_NAME, pe, INPUT_NAME)
        prev = pe
    if first is None:
        raise GraphError("create_iterative_chain() needs at least one function")
    graph.inputmappings = {INPUT_NAME: (first, IterativePE.INPUT_NAME)}
    graph.outputmappings = {OUTPUT_NAME: (prev, IterativePE.OUTPUT_NAME)}
    return graph
