"""The concrete workflow: how many instances each PE gets, which ones are pinned to a
process of their own, and which are stateful. A pure function of graph + mapping kind +
processes, so every engine, rank and host derives the same plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import UsageError
from .graph import WorkflowGraph
from .grouping import GLOBAL
from .pe import explicit_numprocesses, overrides_postprocess

SEQUENTIAL = "sequential"  # simple: one instance of everything, in process
STATIC = "static"  # multi, mpi: one process per PE instance
DYNAMIC = "dynamic"  # dyn_*: a pool of workers runs every (stateless) PE
HYBRID = "hybrid"  # hybrid_*: stateful instances pinned, a pool for the rest
KINDS = (SEQUENTIAL, STATIC, DYNAMIC, HYBRID)


@dataclass(frozen=True)
class Plan:
    kind: str
    processes: int
    order: tuple[str, ...]  # PE names in topological order
    roots: tuple[str, ...]  # PEs fed by run inputs, each run by one instance, in order
    instances: dict[str, int]  # instances of each PE (1 for PEs a dynamic pool runs)
    stateful: frozenset[str]
    pinned: tuple[tuple[str, int], ...]  # (pe, instance) with a process of its own
    pool: int = 0  # dynamic workers (dynamic and hybrid kinds)
    notes: dict[str, str] = field(default_factory=dict)

    def is_pinned(self, pe: str) -> bool:
        return any(p == pe for p, _ in self.pinned)


def own_pool(plan: Plan, joining: int = 0) -> int:
    """The pool workers a run starts itself when `joining` more join it from other nodes
    (`hpcflow submit --nodes N`): the plan's pool counts them all, so that the processes
    of every node fit its CPUs. At least one stays here, so the run goes on without them."""
    return max(1, plan.pool - joining) if plan.pool else 0


def stateful_pes(graph: WorkflowGraph) -> frozenset[str]:
    """PEs that keep state between items: an explicit `stateful = True`, an input grouped
    by key, global or all, or an overridden `postprocess()`."""
    out = set()
    for pe in graph.pes:
        grouped = any(graph.grouping(pe.name, port).stateful for port in pe.inputconnections)
        if pe.stateful or grouped or overrides_postprocess(pe):
            out.add(pe.name)
    return frozenset(out)


def _is_global(graph: WorkflowGraph, name: str) -> bool:
    pe = graph.get(name)
    return any(graph.grouping(name, port).kind == GLOBAL for port in pe.inputconnections)


def _fixed_instances(graph: WorkflowGraph, name: str) -> int | None:
    n = explicit_numprocesses(graph.get(name))
    if n is not None and n < 1:
        raise UsageError(f"PE {name} has numprocesses={n}; it must be at least 1")
    if n is None and _is_global(graph, name):
        return 1
    return n


def make_plan(graph: WorkflowGraph, kind: str, processes: int, mapping: str = "") -> Plan:
    """The plan for running `graph` with `processes` processes in a mapping of `kind`."""
    if kind not in KINDS:
        raise ValueError(f"unknown plan kind {kind!r}")
    if processes < 1:
        raise UsageError(f"processes must be at least 1, got {processes}")
    graph.validate()
    order = tuple(graph.topological_order())
    roots = tuple(graph.roots())
    stateful = stateful_pes(graph)
    mapping = mapping or kind
    common = dict(kind=kind, processes=processes, order=order, roots=roots, stateful=stateful)

    if kind == SEQUENTIAL:  # the instances of stateful PEs as in the parallel mappings, run in turn
        instances = {n: (_fixed_instances(graph, n) or 1) if n in stateful and n not in roots else 1 for n in order}
        return Plan(**{**common, "processes": 1}, instances=instances, pinned=())

    if kind == STATIC:
        instances = {n: 1 for n in roots}
        shared = []
        for n in order:
            if n in roots:
                continue
            fixed = _fixed_instances(graph, n)
            if fixed is None and n in stateful:  # as in simple and hybrid: its state is not split
                fixed = 1
            if fixed is None:
                shared.append(n)
            else:
                instances[n] = fixed
        used = sum(instances.values())
        needed = used + len(shared)
        if processes < needed:
            raise UsageError(
                f"mapping {mapping} needs at least {needed} processes for this graph "
                f"({len(roots)} producer(s), {used - len(roots)} fixed instance(s), "
                f"{len(shared)} other PE(s)); got {processes}"
            )
        if shared:
            each, extra = divmod(processes - used, len(shared))
            for i, n in enumerate(shared):
                instances[n] = each + (1 if i < extra else 0)
        pinned = tuple((n, i) for n in order for i in range(instances[n]))
        return Plan(**common, instances={n: instances[n] for n in order}, pinned=pinned)

    stateful_pinned = [n for n in order if n in stateful and n not in roots]
    if kind == DYNAMIC and stateful_pinned:
        names = ", ".join(stateful_pinned)
        hybrid = mapping.replace("dyn_auto_", "hybrid_auto_").replace("dyn_", "hybrid_")
        subject = f"PE {names} is" if len(stateful_pinned) == 1 else f"PEs {names} are"
        raise UsageError(
            f"{subject} stateful (grouped input, stateful=True or postprocess()), which "
            f"mapping {mapping} cannot run; use {hybrid if hybrid != mapping else 'a hybrid_* mapping'}"
        )
    # Roots are called in order by one instance, so each gets a process of its own; so
    # does each instance of a stateful PE (hybrid). The pool runs everything else.
    instances = {n: 1 for n in order}
    for n in stateful_pinned:
        instances[n] = _fixed_instances(graph, n) or 1
    pinned = tuple((n, i) for n in order if n in roots or n in stateful_pinned for i in range(instances[n]))
    pool = processes - len(pinned)
    if pool < 1:
        what = f"{len(roots)} producer(s)"
        if stateful_pinned:
            what += f", {len(pinned) - len(roots)} stateful instance(s)"
        raise UsageError(
            f"mapping {mapping} needs at least {len(pinned) + 1} processes for this graph "
            f"({what} + 1 worker); got {processes}"
        )
    return Plan(**common, instances=instances, pinned=pinned, pool=pool)
