"""A workflow graph in Graphviz dot (`draw(graph)`, as dispel4py's, and `graph.to_dot()`):
one box per PE, one labelled arrow per stream, one cluster per composite.

Drawing resolves composite ports without checking them, so a graph that cannot run yet
(a mapping to a port that does not exist) can still be drawn to see what is wrong.
"""

from __future__ import annotations

from typing import Any

from .composite import composite_label, connections, members, resolve
from .graph import WorkflowGraph
from .grouping import SHUFFLE, parse_grouping
from .pe import GROUPING, GenericPE


def draw(graph: WorkflowGraph) -> str:
    """The dot text of `graph` (composites drawn as clusters of their PEs)."""
    members(graph)  # the names each PE will run under
    lines = ["digraph workflow {", "  rankdir=LR;", "  node [shape=box];"]
    clusters = iter(range(1_000_000))

    def nodes(g: WorkflowGraph, indent: str) -> None:
        for obj in g._nodes:
            if isinstance(obj, WorkflowGraph):
                lines.append(f"{indent}subgraph cluster_{next(clusters)} {{")
                lines.append(f"{indent}  label={_dot_id(composite_label(obj))};")
                nodes(obj, indent + "  ")
                lines.append(f"{indent}}}")
            else:
                lines.append(f"{indent}{_dot_id(obj.name)};")

    nodes(graph, "  ")
    for src, src_port, dst, dst_port in connections(graph):
        a, ap = resolve(src, src_port, output=True)
        b, bp = resolve(dst, dst_port, output=False)
        label = f"{ap} -> {bp}"
        grouping = _grouping(b, bp)
        if grouping:
            label += f" ({grouping})"
        lines.append(f"  {_dot_id(a.name)} -> {_dot_id(b.name)} [label={_dot_id(label)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _grouping(pe: GenericPE, port: str) -> str:
    conn: Any = pe.inputconnections.get(port)
    if not isinstance(conn, dict):
        return ""
    g = parse_grouping(conn.get(GROUPING), f"on input {pe.name}.{port}")
    return "" if g.kind == SHUFFLE else g.describe()


def _dot_id(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
