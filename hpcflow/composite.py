"""Composites: a WorkflowGraph (or `CompositePE`) connected like a PE, at any depth.

A composite maps its own port names to ports of PEs inside it (`inputmappings`,
`outputmappings`). Before a run the graph is flattened: the composites' PEs join the
graph and each stream to or from a composite port goes to the PE port it maps to, so no
plan or engine ever sees a composite. The PEs keep their own names (made unique in the
flattened graph, `Name`, `Name1`...): those are the names under which their outputs
and metrics appear, as dispel4py reports the PEs of a flattened graph by their ids.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import GraphError
from .graph import WorkflowGraph, graph_pes, make_names_unique
from .graphview import node_object
from .pe import GenericPE


class CompositePE(WorkflowGraph):
    """A reusable sub-workflow, as dispel4py's: `create_graph(self, **params)` fills it,
    `_map_input`/`_map_output` name its ports."""

    def __init__(self, create_graph: Callable[..., Any] | None = None, params: dict[str, Any] | None = None):
        super().__init__()
        if create_graph is not None:
            create_graph(self, **dict(params or {}))

    def _map_input(self, input_name: str, internal_pe: Any, internal_input: str) -> None:
        self.inputmappings[input_name] = (internal_pe, internal_input)

    def _map_output(self, output_name: str, internal_pe: Any, internal_output: str) -> None:
        self.outputmappings[output_name] = (internal_pe, internal_output)


def composite_label(graph: WorkflowGraph) -> str:
    """How a composite is named in errors and drawings: its `name`, else its class."""
    return str(getattr(graph, "name", None) or type(graph).__name__)


def resolve(node: Any, port: str, output: bool) -> tuple[GenericPE, str]:
    """The PE port a (node, port) end of a stream stands for, through any depth of composites."""
    node = node_object(node)
    while isinstance(node, WorkflowGraph):
        mappings = node.outputmappings if output else node.inputmappings
        kind = "output" if output else "input"
        if port not in mappings:
            known = ", ".join(map(repr, mappings)) or "none"
            raise GraphError(f"composite {composite_label(node)} has no {kind} {port!r} (its {kind}s: {known})")
        node, port = mappings[port]
        node = node_object(node)
    if not isinstance(node, GenericPE):
        raise GraphError(f"a composite maps a port to {node!r}, which is not a PE")
    return node, port


def members(graph: WorkflowGraph) -> list[GenericPE]:
    """The PEs of `graph` at any depth (see `graph_pes`), names made unique among them.
    `add()` already keeps them unique; a composite filled after it was added may not be,
    and the later PE is renamed here, as `add()` would have done."""
    pes = graph_pes(graph)
    make_names_unique(pes, set())
    return pes


def connections(graph: WorkflowGraph) -> list[tuple[Any, str, Any, str]]:
    """Every stream of `graph` and of its composites at any depth, ends as connected."""
    out = list(graph._conns)
    for obj in graph._nodes:
        if isinstance(obj, WorkflowGraph):
            out.extend(connections(obj))
    return out


def flatten(graph: WorkflowGraph) -> WorkflowGraph:
    """A new graph of `members(graph)` with every stream resolved to PE ports."""
    flat = WorkflowGraph()
    pes = members(graph)
    for pe in pes:
        flat._append(pe)
    for src, src_port, dst, dst_port in connections(graph):
        a, ap = resolve(src, src_port, output=True)
        b, bp = resolve(dst, dst_port, output=False)
        for pe, what in ((a, f"output {ap!r}"), (b, f"input {bp!r}")):
            if not any(pe is m for m in pes):
                raise GraphError(f"a composite maps its {what} to PE {pe.name}, which is not in the workflow")
        if ap not in a.outputconnections:
            raise GraphError(f"PE {a.name} has no output port {ap!r} (a composite maps an output to it)")
        if bp not in b.inputconnections:
            raise GraphError(f"PE {b.name} has no input port {bp!r} (a composite maps an input to it)")
        flat._conns.append((a, ap, b, bp))
    return flat
