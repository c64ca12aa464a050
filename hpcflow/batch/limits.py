"""A job request against its SLURM partition's limits, before it is submitted.

sbatch accepts a job that no node of its partition can ever run (more CPUs a node than
any node has, more nodes than the partition holds, a walltime over its MaxTime): the job
then stays PENDING for good, with the reason PartitionConfig, PartitionNodeLimit or
PartitionTimeLimit, unless the cluster sets EnforcePartLimits. `hpcflow submit` asks
`scontrol show partition` and `sinfo` first and refuses such a job (exit 2); a partition
that is not up is a warning (its jobs wait until it is). When SLURM cannot be asked,
nothing is checked here: sbatch still has its say.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from .jobinfo import Runner, ask
from .jobspec import JobSpec


@dataclass(frozen=True)
class Partition:
    name: str
    state: str  # UP, DOWN, DRAIN, INACTIVE
    nodes: int  # TotalNodes
    max_nodes: int | None  # MaxNodes a job; None: unlimited
    max_time_s: int | None  # MaxTime; None: unlimited
    node_cpus: int  # CPUs of its largest node (or MaxCPUsPerNode, if lower)


def _limit(value: str) -> int | None:
    return None if value in ("UNLIMITED", "INFINITE", "NONE", "") else int(value)


def slurm_time_s(value: str) -> int | None:
    """SLURM's time limit ([D-]HH:MM:SS, MM:SS, MM, UNLIMITED) in seconds."""
    if value in ("UNLIMITED", "INFINITE", "NONE", ""):
        return None
    days, _, clock = value.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    if len(parts) == 1:
        parts = [0, parts[0], 0]  # minutes
    elif len(parts) == 2:
        parts = [0, *parts]  # MM:SS
    hours, minutes, seconds = parts
    return (int(days or 0) * 24 + hours) * 3600 + minutes * 60 + seconds


def slurm_partition(name: str | None, run: Runner = subprocess.run) -> Partition | None:
    """The partition `name` (None: the default one); None when SLURM cannot say (or there
    is no such partition: sbatch then refuses the job in its own words)."""
    listing = ask(["scontrol", "show", "partition", "-o", *([name] if name else [])], run)
    if listing is None:
        return None
    fields = None
    for line in listing.splitlines():
        pairs = dict(p.split("=", 1) for p in line.split() if "=" in p)
        if name or pairs.get("Default") == "YES":
            fields = pairs
            break
    if fields is None or "PartitionName" not in fields:
        return None
    cpus = ask(["sinfo", "-h", "-N", "-p", fields["PartitionName"], "-o", "%c"], run)
    node_cpus = max((int(c) for c in (cpus or "").split() if c.isdigit()), default=0)
    per_node = _limit(fields.get("MaxCPUsPerNode", "UNLIMITED"))
    if per_node is not None:
        node_cpus = min(node_cpus, per_node) if node_cpus else per_node
    try:
        return Partition(
            name=fields["PartitionName"],
            state=fields.get("State", "UP"),
            nodes=int(fields.get("TotalNodes", "0")),
            max_nodes=_limit(fields.get("MaxNodes", "UNLIMITED")),
            max_time_s=slurm_time_s(fields.get("MaxTime", "UNLIMITED")),
            node_cpus=node_cpus,
        )
    except ValueError:  # a field in a form this code does not know: let sbatch judge
        return None


def check_request(job: JobSpec, part: Partition) -> tuple[list[str], list[str]]:
    """(what can never run there, what will wait): one sentence each."""
    never, wait = [], []
    where = f"partition {part.name}"
    if part.node_cpus and job.cpus_per_node > part.node_cpus:
        per = f"{job.cpus_per_node} CPUs a node" if job.nodes > 1 else f"--cpus {job.cpus}"
        never.append(
            f"{per} is more than the {part.node_cpus} CPUs of any node of {where}: the job would stay PENDING "
            f"(PartitionConfig) for good; ask for at most {part.node_cpus * job.nodes}"
            + ("" if job.nodes > 1 else " (or more --nodes with a *_redis mapping)")
        )
    most = min(n for n in (part.nodes, part.max_nodes) if n is not None) if part.nodes else part.max_nodes
    if most is not None and job.nodes > most:
        never.append(f"--nodes {job.nodes} is more than the {most} node(s) a job may have in {where}")
    walltime = job.walltime_s()
    if walltime is not None and part.max_time_s is not None and walltime > part.max_time_s:
        never.append(
            f"--walltime {job.walltime} is longer than the {where}'s MaxTime ({part.max_time_s} s): "
            "the job would stay PENDING (PartitionTimeLimit); a shorter walltime with --until-done goes on in "
            "further jobs"
        )
    if part.state != "UP":
        wait.append(f"{where} is {part.state}: the job waits until it is UP")
    return never, wait
