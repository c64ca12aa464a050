"""The mapping names: one per (engine, transport, scaling policy)."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UsageError
from .plan import DYNAMIC, HYBRID, SEQUENTIAL, STATIC


@dataclass(frozen=True)
class MappingSpec:
    name: str
    plan_kind: str  # a plan.KINDS value
    engine: str  # module with `execute(job) -> Outcome`
    transport: str
    autoscale: bool
    summary: str


_SHM = "hpcflow.engines.coordinator"

MAPPINGS: dict[str, MappingSpec] = {
    m.name: m
    for m in [
        MappingSpec("simple", SEQUENTIAL, "hpcflow.engines.simple", "in process", False,
                    "sequential reference semantics"),
        MappingSpec("multi", STATIC, _SHM, "shared memory", False, "static: one process per PE instance (baseline)"),
        MappingSpec("mpi", STATIC, "hpcflow.engines.mpi", "MPI", False, "static: one rank per PE instance (baseline)"),
        MappingSpec("dyn_multi", DYNAMIC, _SHM, "shared memory", False,
                    "dynamic: a pool of workers runs any stateless PE"),
        MappingSpec("dyn_auto_multi", DYNAMIC, _SHM, "shared memory", True,
                    "dynamic + auto-scaling: workers parked and woken as the load changes"),
        MappingSpec("hybrid_multi", HYBRID, _SHM, "shared memory", False,
                    "stateful instances pinned, the stateless rest dynamic"),
        MappingSpec("hybrid_auto_multi", HYBRID, _SHM, "shared memory", True,
                    "hybrid + auto-scaling of the stateless pool"),
    ]
}  # fmt: skip


def get_mapping(name: str) -> MappingSpec:
    try:
        return MAPPINGS[name]
    except KeyError:
        raise UsageError(f"unknown mapping {name!r}; choose one of: {', '.join(MAPPINGS)}") from None
