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

    @property
    def checkpoints(self) -> bool:
        """Whether its runs take checkpoints and resume (the coordinator's mappings)."""
        return self.engine == _COORD


_COORD = "hpcflow.engines.coordinator"  # every transport: the broker is chosen by `transport`

MAPPINGS: dict[str, MappingSpec] = {
    m.name: m
    for m in [
        MappingSpec("simple", SEQUENTIAL, "hpcflow.engines.simple", "in process", False,
                    "sequential reference semantics"),
        MappingSpec("multi", STATIC, _COORD, "shared memory", False, "static: one process per PE instance (baseline)"),
        MappingSpec("mpi", STATIC, "hpcflow.engines.mpi", "MPI", False, "static: one rank per PE instance (baseline)"),
        MappingSpec("dyn_multi", DYNAMIC, _COORD, "shared memory", False,
                    "dynamic: a pool of workers runs any stateless PE"),
        MappingSpec("dyn_auto_multi", DYNAMIC, _COORD, "shared memory", True,
                    "dynamic + auto-scaling: workers parked and woken as the load changes"),
        MappingSpec("hybrid_multi", HYBRID, _COORD, "shared memory", False,
                    "stateful instances pinned, the stateless rest dynamic"),
        MappingSpec("hybrid_auto_multi", HYBRID, _COORD, "shared memory", True,
                    "hybrid + auto-scaling of the stateless pool"),
        MappingSpec("dyn_redis", DYNAMIC, _COORD, "redis", False,
                    "dynamic on Redis streams; workers on other nodes may join"),
        MappingSpec("dyn_auto_redis", DYNAMIC, _COORD, "redis", True,
                    "dynamic + auto-scaling on Redis streams"),
        MappingSpec("hybrid_redis", HYBRID, _COORD, "redis", False,
                    "hybrid on Redis streams: stateful instances pinned, the pool may span nodes"),
        MappingSpec("hybrid_auto_redis", HYBRID, _COORD, "redis", True,
                    "hybrid + auto-scaling of the stateless pool, on Redis streams"),
    ]
}  # fmt: skip


def get_mapping(name: str) -> MappingSpec:
    try:
        return MAPPINGS[name]
    except KeyError:
        raise UsageError(f"unknown mapping {name!r}; choose one of: {', '.join(MAPPINGS)}") from None
