"""What a checkpoint depends on, so that a resume with anything else is refused, not run wrong.

A checkpoint holds tasks addressed to PEs by name and instance, states pickled by the PE
classes of one graph, the roots' positions in one set of inputs, and the outputs so far
of one set of parameters. Resumed under another mapping (another set of pinned
instances: a hang or a KeyError), another graph, other inputs or parameters, or another
`on_error`, it would give a result that is neither run's. The fingerprint names each of
these; the mapping also fixes the transport (shared memory or Redis). What may change:
the CPU count (the pool is resized; the pinned instances are the checkpoint's), the
Redis server (a resumed attempt makes its keys anew), the checkpoint interval, the stall
watchdog and the auto-scaling policy.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .errors import UsageError
from .redact import redact

# setting -> how a user would name it in the refusal
SETTINGS = {
    "mapping": "the mapping",
    "workflow": "the workflow",
    "params": "the workflow's parameters",
    "inputs": "the inputs",
    "graph": "the workflow's graph (its PEs, their instances and connections)",
    "on_error": "on_error",
}


def fingerprint(job: Any) -> dict[str, str]:
    """The settings and shapes of `job` (a Job) that its checkpoints depend on (a
    password in them masked: the fingerprint is written to disk)."""
    opts = job.options
    return {
        "mapping": job.mapping.name,
        "workflow": redact(str(opts.workflow or "")),
        "params": redact(_text(dict(opts.params or {}))),
        "inputs": _digest(_text(job.feeds)),
        "graph": graph_text(job.graph),
        "on_error": str(opts.on_error),
    }


def graph_text(graph: Any) -> str:
    """The PEs (class, declared instances, input groupings) and connections, in order."""
    pes = []
    for name in graph.topological_order():
        pe = graph.get(name)
        ports = {port: graph.grouping(name, port).describe() for port in sorted(pe.inputconnections)}
        cls = f"{type(pe).__module__}.{type(pe).__qualname__}"
        pes.append([name, cls, getattr(pe, "numprocesses", 1), bool(pe.stateful), ports])
    edges = sorted([e.src, e.src_port, e.dst, e.dst_port] for e in graph.edges)
    return _text({"pes": pes, "edges": edges})


def mismatch(recorded: dict[str, Any], now: dict[str, str]) -> str | None:
    """The first setting that differs, said as a user would read it (None: none does).
    A setting the record does not hold (an older checkpoint) is not compared."""
    for key, what in SETTINGS.items():
        if key not in recorded or recorded[key] == now.get(key):
            continue
        before, after = recorded[key], now.get(key)
        if key == "graph":
            return f"{what} changed: {_graph_change(before, after)}"
        if key != "inputs" and len(f"{before}{after}") < 200:
            return f"{what} was {before}, now {after}"
        return f"{what} differ{'s' if key != 'inputs' else ''} from the run's"
    return None


def _graph_change(before: str, after: str | None) -> str:
    """Which PE or connection differs between two `graph_text`s."""
    try:
        old, new = json.loads(before), json.loads(after or "{}")
        old_pes = {p[0]: p[1:] for p in old["pes"]}
        new_pes = {p[0]: p[1:] for p in new["pes"]}
    except (ValueError, TypeError, KeyError, IndexError):
        return "it is not the one the checkpoint was taken with"
    for name in old_pes.keys() - new_pes.keys():
        return f"PE {name} is gone"
    for name in new_pes.keys() - old_pes.keys():
        return f"PE {name} is new"
    labels = ("its class", "its instances (numprocesses)", "whether it is stateful", "its input groupings")
    for name, was in old_pes.items():
        for label, a, b in zip(labels, was, new_pes[name], strict=False):
            if a != b:
                return f"PE {name}: {label} was {a}, now {b}"
    return "the connections between the PEs differ"


def check_same(recorded: dict[str, Any] | None, now: dict[str, str], where: str) -> None:
    """UsageError (one line) when `now` differs from the fingerprint `recorded` in `where`."""
    if not recorded:
        return
    problem = mismatch(recorded, now)
    if problem is not None:
        raise UsageError(
            f"cannot resume {where}: {problem}; a checkpoint continues only the run that wrote it "
            "(start a new run for other settings)"
        )


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr, separators=(",", ":"))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
