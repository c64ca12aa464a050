"""The abstract workflow: PEs and the streams between their ports. No processes, no I/O."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .errors import GraphError
from .graphview import GraphView, WorkflowNode, node_object
from .grouping import Grouping, parse_grouping
from .pe import GROUPING, INPUT_NAME, NAME, OUTPUT_NAME, GenericPE, IterativePE, SimpleFunctionPE, missing_logic

_graph_ids = itertools.count(1)


@dataclass(frozen=True)
class Edge:
    src: str
    src_port: str
    dst: str
    dst_port: str


Node = Any  # a GenericPE, a composite (WorkflowGraph), or the WorkflowNode add() returned for one


class WorkflowGraph:
    """A directed acyclic graph of PEs; `connect` adds a stream between two ports.

    A graph with `inputmappings`/`outputmappings` (a composite, as `CompositePE` or what
    `create_iterative_chain` returns) connects like a PE, at any depth. The reading methods
    below (`pes`, `edges`, `get`, `validate`...) see the flattened graph, as every mapping
    does: the composites' PEs in place of the composites (see `composite.flatten`)."""

    def __init__(self) -> None:
        self._id = next(_graph_ids)
        self._parent: WorkflowGraph | None = None  # the graph this one is a composite node of
        self._nodes: list[GenericPE | WorkflowGraph] = []
        self._conns: list[tuple[Any, str, Any, str]] = []
        self.inputmappings: dict[str, tuple[Any, str]] = {}
        self.outputmappings: dict[str, tuple[Any, str]] = {}
        self.objToNode: dict[Any, WorkflowNode] = {}  # dispel4py's name: node of each PE or composite

    # -- building ----------------------------------------------------------
    def add(self, pe: Node) -> WorkflowNode:
        """Add a PE or a composite (connect() adds its ends itself). Returns its
        WorkflowNode, as dispel4py does (the node reads as the PE it holds, and every
        method that takes a PE takes it).

        PE names are made unique ("Name", "Name1"...) across the whole workflow this graph
        is part of, composites included, when they are added: a PE's `name` (its `id`)
        is then the name its outputs and metrics will have."""
        pe = node_object(pe)
        if isinstance(pe, WorkflowGraph):
            return self._add_composite(pe)
        if not isinstance(pe, GenericPE):
            raise GraphError(f"{pe!r} is not a PE (GenericPE subclass instance) or a WorkflowGraph")
        tree = _subgraphs(self._root())
        for g in tree:
            if pe._graph_id == g._id:  # already in this workflow (maybe inside a composite)
                return g.objToNode[pe]
        if pe._graph_id is not None:
            raise GraphError(f"PE {pe.name} is already used in another WorkflowGraph; create a new instance")
        make_names_unique([pe], {p.name for g in tree for p in g._nodes if isinstance(p, GenericPE)})
        pe._graph_id = self._id
        return self._append(pe)

    def _add_composite(self, graph: WorkflowGraph) -> WorkflowNode:
        if graph._parent is self:
            return self.objToNode[graph]
        if graph is self._root() or self in _subgraphs(graph):
            raise GraphError("a WorkflowGraph cannot contain itself")
        if graph._parent is not None:
            raise GraphError("this composite is already used in another WorkflowGraph; create a new one")
        taken = {p.name for p in graph_pes(self._root())}
        make_names_unique(graph_pes(graph), taken)
        graph._parent = self
        return self._append(graph)

    def _root(self) -> WorkflowGraph:
        graph = self
        while graph._parent is not None:
            graph = graph._parent
        return graph

    def _append(self, obj: GenericPE | WorkflowGraph) -> WorkflowNode:
        self._nodes.append(obj)
        node = self.objToNode[obj] = WorkflowNode(obj)
        return node

    def connect(self, from_pe: Node, from_port: str, to_pe: Node, to_port: str) -> None:
        """Stream every item `from_pe` writes on `from_port` into `to_pe`'s `to_port`.
        Either end may be a composite, named by its mapped port. Connecting the same
        ports twice sends every item twice, as in dispel4py."""
        from_pe, to_pe = node_object(from_pe), node_object(to_pe)
        for pe in (from_pe, to_pe):
            if not isinstance(pe, (GenericPE, WorkflowGraph)):
                raise GraphError(f"connect() takes PEs or composite WorkflowGraphs, got {pe!r}")
        if isinstance(from_pe, GenericPE) and from_port not in from_pe.outputconnections:
            raise GraphError(
                f"PE {from_pe.name} has no output port {from_port!r} (ports: {_ports(from_pe.outputconnections)})"
            )
        if isinstance(to_pe, GenericPE) and to_port not in to_pe.inputconnections:
            raise GraphError(f"PE {to_pe.name} has no input port {to_port!r} (ports: {_ports(to_pe.inputconnections)})")
        self.add(from_pe)
        self.add(to_pe)
        self._conns.append((from_pe, from_port, to_pe, to_port))

    def flatten(self) -> None:
        """Replace every composite by the PEs and streams it holds, in place (dispel4py's
        `flatten()`; `run()` flattens by itself)."""
        flat = self.flattened()
        if flat is self:
            return
        self._nodes, self._conns = flat._nodes, flat._conns
        self.objToNode = {pe: WorkflowNode(pe) for pe in self._nodes}
        for pe in self._nodes:
            pe._graph_id = self._id

    def flattened(self) -> WorkflowGraph:
        """This graph with its composites flattened (itself when it has none)."""
        if not any(isinstance(n, WorkflowGraph) for n in self._nodes):
            return self
        from .composite import flatten

        return flatten(self)

    # -- dispel4py's readers -------------------------------------------------
    @property
    def graph(self) -> GraphView:
        """A read-only networkx-like view (nodes are WorkflowNodes), for dispel4py code that
        walks `graph.graph`."""
        return GraphView(self)

    def getContainedObjects(self) -> list[Any]:  # noqa: N802 (dispel4py's name)
        """The PEs and composites directly in this graph, sorted by id as dispel4py does."""
        return sorted(self._nodes, key=lambda obj: getattr(obj, "id", ""))

    def propagate_types(self) -> None:
        """Give each PE the declared types of the outputs that feed it (setInputTypes), in
        topological order so that a PE may derive its output types from its inputs."""
        flat = self.flattened()
        for name in flat.topological_order():
            types = {e.dst_port: flat.get(e.src).getOutputTypes()[e.src_port] for e in flat.edges if e.dst == name}
            flat.get(name).setInputTypes(types)

    # -- reading (the flattened graph) -----------------------------------------
    @property
    def pes(self) -> list[GenericPE]:
        return list(self.flattened()._nodes)

    @property
    def edges(self) -> list[Edge]:
        return [Edge(a.name, ap, b.name, bp) for a, ap, b, bp in self.flattened()._conns]

    def get(self, pe_or_name: Node) -> GenericPE:
        flat = self.flattened()
        pe_or_name = node_object(pe_or_name)
        if isinstance(pe_or_name, GenericPE):
            if not any(pe is pe_or_name for pe in flat._nodes):
                raise GraphError(f"PE {pe_or_name.name} is not in this graph")
            return pe_or_name
        for pe in flat._nodes:
            if pe.name == pe_or_name:
                return pe
        raise GraphError(f"no PE named {pe_or_name!r} in the graph (PEs: {', '.join(flat.names())})")

    def names(self) -> list[str]:
        return [pe.name for pe in self.flattened()._nodes]

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
        return [(pe.name, p) for pe in self.pes for p in pe.outputconnections if (pe.name, p) not in used]

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
        flat = self.flattened()
        if not flat._nodes:
            raise GraphError("the workflow graph has no PEs")
        seen: set[str] = set()
        for pe in flat._nodes:
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
        for a, ap, b, bp in flat._conns:
            if ap not in a.outputconnections:
                raise GraphError(f"PE {a.name} has no output port {ap!r}")
            if bp not in b.inputconnections:
                raise GraphError(f"PE {b.name} has no input port {bp!r}")
        flat.topological_order()

    def check_logic(self) -> None:
        """Raise GraphError for a PE with no logic of its own (no `process`, `_process` or
        `postprocess`): it would swallow its inputs and the run would "succeed" empty.
        `run()` checks it before starting; a plan alone does not need it."""
        for pe in self.pes:
            why = missing_logic(pe)
            if why:
                raise GraphError(f"PE {pe.name} {why}")

    def to_dot(self) -> str:
        """The graph in Graphviz dot: one box per PE, one labelled arrow per stream, a
        cluster per composite (see `draw`)."""
        from .draw import draw

        return draw(self)


def _subgraphs(graph: WorkflowGraph) -> list[WorkflowGraph]:
    """`graph` and every composite inside it, at any depth."""
    out = [graph]
    for node in graph._nodes:
        if isinstance(node, WorkflowGraph):
            out.extend(_subgraphs(node))
    return out


def graph_pes(graph: WorkflowGraph) -> list[GenericPE]:
    """The PEs of `graph` and of its composites at any depth, each once, in the order they
    were added (a composite's PEs where the composite was)."""
    found: list[GenericPE] = []
    for node in graph._nodes:
        for pe in graph_pes(node) if isinstance(node, WorkflowGraph) else [node]:
            if not any(pe is f for f in found):
                found.append(pe)
    return found


def make_names_unique(pes: list[GenericPE], taken: set[str]) -> None:
    """Rename `pes` in turn to names not in `taken` ("Name", "Name1"...), adding them to it."""
    for pe in pes:
        base, n = pe.name, 0
        while pe.name in taken:
            n += 1
            pe.name = f"{base}{n}"
        taken.add(pe.name)


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
            graph.add(pe)
            first = pe
        else:
            graph.connect(prev, OUTPUT_NAME, pe, INPUT_NAME)
        prev = pe
    if first is None:
        raise GraphError("create_iterative_chain() needs at least one function")
    graph.inputmappings = {INPUT_NAME: (first, IterativePE.INPUT_NAME)}
    graph.outputmappings = {OUTPUT_NAME: (prev, IterativePE.OUTPUT_NAME)}
    return graph
