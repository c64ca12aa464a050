"""dispel4py's view of a graph: `WorkflowNode` (what `graph.add()` returns) and
`graph.graph`, a read-only networkx-like graph of those nodes.

dispel4py keeps its graph in a networkx `Graph` whose nodes wrap the PEs, and code
written for it walks that (`graph.graph.nodes()`, `node.getContainedObject()`,
`graph.graph[node]` with the `DIRECTION`/`FROM_CONNECTION`/`TO_CONNECTION` of each
stream). hpcflow keeps its graph as plain lists; this module shows them the dispel4py way
without depending on networkx.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .graph import WorkflowGraph


class WorkflowNode:
    """A node of the graph: a PE or a composite. It reads as the object it holds
    (`node.name`, `node.inputconnections`), so code that kept what `add()` returned
    as the PE itself keeps working."""

    WORKFLOW_NODE_PE = 0
    WORKFLOW_NODE_FN = 1
    WORKFLOW_NODE_CP = 2

    def __init__(self, obj: Any):
        from .pe import GenericPE

        self.obj = obj
        if isinstance(obj, GenericPE):
            self.nodeType = self.WORKFLOW_NODE_PE
            self.inputs = [{} for _ in obj.inputconnections]
            self.outputs = [{} for _ in obj.outputconnections]
        else:
            self.nodeType = self.WORKFLOW_NODE_CP
            self.inputs = [{} for _ in obj.inputmappings]
            self.outputs = [{} for _ in obj.outputmappings]

    def getContainedObject(self) -> Any:  # noqa: N802 (dispel4py's name)
        return self.obj

    def __getattr__(self, name: str) -> Any:
        if name == "obj":  # not set yet (copy, unpickle): no recursion
            raise AttributeError(name)
        return getattr(self.obj, name)

    def __repr__(self) -> str:
        return f"<WorkflowNode {self.obj!r}>"


def node_object(node: Any) -> Any:
    """The PE or composite a WorkflowNode holds; anything else as it is."""
    return node.obj if isinstance(node, WorkflowNode) else node


class GraphView:
    """`graph.graph`: the graph's direct nodes (composites not expanded, as in dispel4py
    before `flatten()`) and one undirected edge per connected pair, with dispel4py's
    edge attributes."""

    def __init__(self, graph: WorkflowGraph):
        self._nodes = [graph.objToNode[obj] for obj in graph._nodes]
        self._adj: dict[WorkflowNode, dict[WorkflowNode, dict[str, Any]]] = {n: {} for n in self._nodes}
        for src, src_port, dst, dst_port in graph._conns:
            u, v = graph.objToNode[src], graph.objToNode[dst]
            attrs = self._adj[u].get(v)
            if attrs is None:
                attrs = {
                    "FROM_CONNECTION": src_port,
                    "TO_CONNECTION": dst_port,
                    "DIRECTION": (src, dst),
                    "ALL_CONNECTIONS": [],
                }
                self._adj[u][v] = self._adj[v][u] = attrs
            attrs["ALL_CONNECTIONS"].append((src_port, dst_port))

    def nodes(self, data: bool = False) -> list[Any]:
        return [(n, {}) for n in self._nodes] if data else list(self._nodes)

    def edges(self, nbunch: Any = None, data: bool = False) -> list[tuple]:
        """Each edge once, as (u, v) or (u, v, attributes); `nbunch`: a node or nodes
        whose edges to list."""
        if nbunch is None:
            wanted = self._nodes
        elif isinstance(nbunch, WorkflowNode):
            wanted = [nbunch]
        else:
            wanted = list(nbunch)
        seen: set[frozenset] = set()
        out = []
        for u in wanted:
            for v, attrs in self._adj[u].items():
                key = frozenset((id(u), id(v)))
                if key not in seen:
                    seen.add(key)
                    out.append((u, v, attrs) if data else (u, v))
        return out

    def __getitem__(self, node: WorkflowNode) -> dict[WorkflowNode, dict[str, Any]]:
        return self._adj[node]

    def __iter__(self) -> Iterator[WorkflowNode]:
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, node: object) -> bool:
        return node in self._adj

    def number_of_nodes(self) -> int:
        return len(self._nodes)

    def number_of_edges(self) -> int:
        return len(self.edges())

    def has_node(self, node: object) -> bool:
        return node in self._adj

    def has_edge(self, u: WorkflowNode, v: WorkflowNode) -> bool:
        return v in self._adj.get(u, {})
