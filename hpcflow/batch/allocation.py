"""What this process may use: the CPUs of the batch allocation or of the machine."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Allocation:
    scheduler: str  # slurm | pbs | local
    cpus: int
    nodes: int = 1
    job_id: str | None = None
    source: str = "affinity"  # what the CPU count was read from

    def to_dict(self) -> dict:
        return asdict(self)


def affinity_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def detect_allocation() -> Allocation:
    return Allocation(scheduler="local", cpus=affinity_cpus())
