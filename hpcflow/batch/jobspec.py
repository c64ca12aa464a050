"""A batch job as hpcflow asks for it: the resources, and the commands it runs.

It is scheduler-neutral; the templates turn it into a SLURM or PBS script. Values are
checked here, once, so a typo is one clear line at submission rather than a job that
fails in the queue an hour later.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

# Set by a job script of several nodes for its launcher: the pool workers that join from the
# other nodes, which the run's plan counts and its launcher does not start (plan.own_pool).
JOINING_ENV = "HPCFLOW_JOINING_WORKERS"
WALLTIME = re.compile(r"\d+:[0-5]\d:[0-5]\d")
MEMORY = re.compile(r"(\d+)([KMGT]?)B?", re.IGNORECASE)


@dataclass(frozen=True)
class JobSpec:
    name: str
    workdir: Path  # absolute: where the job runs (where `submit` was called)
    run_dir: Path  # absolute: the run directory; the script and job.out go there too
    run_command: tuple[str, ...]  # the launcher, `hpcflow run ...`, on the first node
    cpus: int  # over every node
    nodes: int = 1
    worker_command: tuple[str, ...] = ()  # one per further node (Redis runs)
    walltime: str | None = None  # HH:MM:SS (hours may exceed 24)
    partition: str | None = None  # SLURM partition, PBS queue
    account: str | None = None
    mem: str | None = None  # per node: 8G, 8000M, 8gb (no unit: megabytes)
    modules: tuple[str, ...] = ()
    resume_command: tuple[str, ...] = ()  # --until-done: `hpcflow resume RUN_DIR`, run by every later attempt
    max_attempts: int = 1  # --until-done: jobs in all, the first included

    def __post_init__(self) -> None:
        if self.cpus < 1 or self.nodes < 1:
            raise UsageError(f"a job needs at least 1 CPU and 1 node, not --cpus {self.cpus} --nodes {self.nodes}")
        if self.cpus % self.nodes:
            raise UsageError(f"--cpus {self.cpus} does not split evenly over --nodes {self.nodes}")
        if self.nodes > 1 and not self.worker_command:
            raise UsageError(f"--nodes {self.nodes} needs a worker command for the further nodes")
        if self.walltime is not None and not WALLTIME.fullmatch(self.walltime):
            raise UsageError(f"walltime {self.walltime!r} is not HH:MM:SS")
        if self.mem is not None and not MEMORY.fullmatch(self.mem.strip()):
            raise UsageError(f"memory {self.mem!r} is not a size such as 8G, 8000M or 8gb")
        if self.max_attempts < 1:
            raise UsageError(f"--max-attempts {self.max_attempts}: a job needs at least 1 attempt")

    @property
    def cpus_per_node(self) -> int:
        return self.cpus // self.nodes

    @property
    def joining(self) -> int:
        """The pool workers that join the run from the further nodes: a node's CPUs each."""
        return (self.nodes - 1) * self.cpus_per_node

    def walltime_s(self) -> int | None:
        """`walltime` in seconds."""
        if self.walltime is None:
            return None
        hours, minutes, seconds = (int(part) for part in self.walltime.split(":"))
        return (hours * 60 + minutes) * 60 + seconds

    def memory(self) -> tuple[int, str] | None:
        """`mem` as (amount, unit), the unit one of K, M, G, T."""
        if self.mem is None:
            return None
        match = MEMORY.fullmatch(self.mem.strip())
        return int(match[1]), (match[2] or "M").upper()
