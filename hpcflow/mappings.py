"""The mapping names: one per (engine, transport, scaling policy)."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UsageError
from .plan import SEQUENTIAL, STATIC


@dataclass(frozen=True)
class MappingSpec:
    name: str
    plan_kind: str  # a plan.KINDS value
    engine: str  # module with `execute(job) -> Outcome`
    transport: str
    autoscale: bool
    summary: str


MAPPINGS: dict[str, MappingSpec] = {
    m.name: m
    for m in [
        MappingSpec(
            "simple", SEQUENTIAL, "hpcflow.engines.simple", "in process", False, "sequential reference semantics"
        ),
        MappingSpec("mpi", STATIC, "hpcflow.engines.mpi", "MPI", False, "static: one rank per PE instance (baseline)"),
    ]
}


def get_mapping(name: str) -> MappingSpec:
    try:
        return MAPPINGS[name]
    except KeyError:
        raise UsageError(f"unknown mapping {name!r}; choose one of: {', '.join(MAPPINGS)}") from None
