"""What this process may use: the CPUs of the batch allocation or of the machine.

Detection is a pure function of an environment mapping and a few injectable readers, so
every SLURM and PBS form is unit-tested without a scheduler. A batch system's own
numbers win over the affinity mask: it is what the scheduler granted, and a cluster
without CPU binding shows every core of a shared node in the mask.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

from ..errors import UsageError
from .cgroup import Reader, cgroup_cpu_quota, read_text
from .hostlist import expand_counts, expand_hostlist


@dataclass(frozen=True)
class Allocation:
    scheduler: str  # slurm | pbs | local
    cpus: int  # CPUs this process may use on this node: the default of `--cpus`
    nodes: int = 1
    job_id: str | None = None
    source: str = "affinity"  # what `cpus` was read from
    total_cpus: int = 0  # over every node of the job (a Redis run spans them); 0: same as cpus
    nodelist: tuple[str, ...] = ()
    cpus_per_node: tuple[int, ...] = ()
    tasks: int | None = None  # SLURM_NTASKS, when the job asked for tasks

    def __post_init__(self) -> None:
        if not self.total_cpus:
            object.__setattr__(self, "total_cpus", self.cpus * self.nodes)

    def to_dict(self) -> dict:
        """As JSON will read it back (lists, not tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def affinity_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def detect_allocation(
    env: Mapping[str, str] | None = None,
    read: Reader = read_text,
    affinity: Callable[[], int] = affinity_cpus,
) -> Allocation:
    """The allocation seen from `env` (os.environ by default): SLURM, PBS, else local.

    A malformed scheduler variable is a UsageError naming it, never a guess."""
    env = os.environ if env is None else env
    if env.get("SLURM_JOB_ID"):
        return _slurm(env, affinity)
    if env.get("PBS_JOBID"):
        return _pbs(env, read, affinity)
    return _local(read, affinity)


def _int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        raise UsageError(f"{name}={value!r} is not a whole number") from None
    if number < 1:
        raise UsageError(f"{name}={value!r} must be at least 1")
    return number


def _parsed(env: Mapping[str, str], name: str, parse: Callable[[str], list]) -> list:
    try:
        return parse(env.get(name, ""))
    except ValueError as exc:
        raise UsageError(f"{name}: {exc}") from None


def _slurm(env: Mapping[str, str], affinity: Callable[[], int]) -> Allocation:
    """The batch script gets every CPU SLURM gave this node; a task of an `srun` step
    (SLURM_STEP_ID set) gets its own share, `--cpus-per-task` or an even split."""
    nodelist = _parsed(env, "SLURM_JOB_NODELIST", expand_hostlist) or _parsed(env, "SLURM_NODELIST", expand_hostlist)
    per_node = _parsed(env, "SLURM_JOB_CPUS_PER_NODE", expand_counts)
    nodes = _int(env, "SLURM_JOB_NUM_NODES") or _int(env, "SLURM_NNODES") or len(nodelist) or len(per_node) or 1
    per_task = _int(env, "SLURM_CPUS_PER_TASK")
    on_node = _int(env, "SLURM_CPUS_ON_NODE")
    in_step = "SLURM_STEP_ID" in env
    if in_step and per_task:
        cpus, source = per_task, "SLURM_CPUS_PER_TASK"
    elif in_step and on_node:
        cpus, source = max(1, on_node // _step_tasks_here(env)), "SLURM_CPUS_ON_NODE / SLURM_STEP_TASKS_PER_NODE"
    elif on_node:
        cpus, source = on_node, "SLURM_CPUS_ON_NODE"
    elif per_node:
        cpus, source = per_node[0], "SLURM_JOB_CPUS_PER_NODE"
    elif per_task:
        cpus, source = per_task, "SLURM_CPUS_PER_TASK"
    else:
        cpus, source = affinity(), "affinity"
    return Allocation(
        scheduler="slurm",
        cpus=cpus,
        nodes=nodes,
        job_id=env["SLURM_JOB_ID"],
        source=source,
        total_cpus=sum(per_node) if len(per_node) == nodes else cpus * nodes,
        nodelist=tuple(nodelist),
        cpus_per_node=tuple(per_node),
        tasks=_int(env, "SLURM_NTASKS"),
    )


def _step_tasks_here(env: Mapping[str, str]) -> int:
    """How many tasks of this `srun` step share this node."""
    counts = _parsed(env, "SLURM_STEP_TASKS_PER_NODE", expand_counts)
    node_id = env.get("SLURM_NODEID", "0")
    if not node_id.isdigit() or int(node_id) >= len(counts):
        return 1
    return counts[int(node_id)]


def _pbs(env: Mapping[str, str], read: Reader, affinity: Callable[[], int]) -> Allocation:
    """PBS Pro sets NCPUS for this node's chunk; Torque sets PBS_NP (the job's total) and
    writes one PBS_NODEFILE line per CPU slot (PBS Pro: one per MPI process)."""
    hosts = (read(env["PBS_NODEFILE"]) or "").split() if env.get("PBS_NODEFILE") else []
    unique = tuple(dict.fromkeys(hosts))
    nodes = len(unique) or 1
    total = _int(env, "PBS_NP")
    ncpus = _int(env, "PBS_NCPUS") or _int(env, "NCPUS")
    if ncpus:
        cpus, source = ncpus, "PBS_NCPUS" if env.get("PBS_NCPUS") else "NCPUS"
    elif total:
        cpus, source = max(1, total // nodes), "PBS_NP"
    elif hosts:
        cpus, source = hosts.count(hosts[0]), "PBS_NODEFILE"  # the job script runs on the first host
    else:
        cpus, source = affinity(), "affinity"
    return Allocation(
        scheduler="pbs",
        cpus=cpus,
        nodes=nodes,
        job_id=env["PBS_JOBID"],
        source=source,
        total_cpus=total or cpus * nodes,
        nodelist=unique,
    )


def _local(read: Reader, affinity: Callable[[], int]) -> Allocation:
    """The affinity mask, capped by a cgroup CPU quota (rounded down: more processes than
    the quota only get throttled)."""
    cpus = affinity()
    quota = cgroup_cpu_quota(read)
    if quota is not None and math.floor(quota) < cpus:
        return Allocation(scheduler="local", cpus=max(1, math.floor(quota)), source="cgroup cpu quota")
    return Allocation(scheduler="local", cpus=cpus, source="affinity")
