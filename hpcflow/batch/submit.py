"""From what the user asked `hpcflow submit` for to a JobSpec, and from a JobSpec to a
submitted job: the script goes into the run directory, next to the results it produces.

The job runs `hpcflow run` with the interpreter that submitted it (`sys.executable -m
hpcflow`), so a virtualenv on the login node is the one the job uses. An --until-done
job runs `hpcflow resume` with it in its later attempts.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from ..config import BatchConfig
from ..errors import UsageError
from ..mappings import MAPPINGS, get_mapping
from ..mpirun import require_mpiexec
from ..redact import redact, write_private
from ..runcommand import run_command
from ..rundir import safe_name
from .jobspec import JobSpec
from .schedulers import Scheduler
from .templates import drain_s

DEFAULT_MAX_ATTEMPTS = 10  # jobs an --until-done run may take in all: a run that never ends stops somewhere


def is_redis_mapping(mapping: str) -> bool:
    """The Redis mappings are the ones whose workers may live on other nodes."""
    return mapping.endswith("_redis")


def make_job(
    *,
    workflow: str,
    mapping: str,
    cpus: int,
    run_dir: Path,
    nodes: int = 1,
    params: dict[str, Any] | None = None,
    batch: BatchConfig | None = None,
    redis_url: str | None = None,
    autoscale: str | Mapping[str, Any] | None = None,
    stall_timeout: float | None = None,
    drain_timeout: float | None = None,
    checkpoint_interval: float | None = None,
    until_done: bool = False,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    oversubscribe: bool = False,
    scheduler: str = "slurm",
    workdir: Path | None = None,
    python: str = sys.executable,
) -> JobSpec:
    """The job that runs `workflow` on `mapping` with `cpus` CPUs over `nodes` nodes; with
    `until_done`, in as many as `max_attempts` jobs, each one resuming where the last stopped."""
    if until_done and not get_mapping(mapping).checkpoints:
        those = ", ".join(name for name, spec in MAPPINGS.items() if spec.checkpoints)
        raise UsageError(f"--until-done needs a mapping that checkpoints on SIGTERM ({those}), not {mapping}")
    if nodes > 1 and not is_redis_mapping(mapping):
        raise UsageError(f"--nodes {nodes} needs a *_redis mapping (such as dyn_redis): {mapping} runs on one node")
    if nodes > 1 and not redis_url:
        raise UsageError(f"--nodes {nodes} needs --redis-url (or redis_url: in the config), reachable from every node")
    if mapping == "mpi":  # the job re-launches itself through mpiexec: refuse now, not in the queue
        require_mpiexec(python)
    options = {"autoscale": autoscale, "redis_url": redis_url, "stall_timeout": stall_timeout}
    options.update(checkpoint_interval=checkpoint_interval, drain_timeout=drain_timeout)
    launcher = run_command(workflow, mapping, cpus, run_dir, params, options, oversubscribe, python)
    resume = (python, "-m", "hpcflow", "resume", str(run_dir)) if until_done else ()  # with the run's settings
    if resume and redis_url and redact(redis_url) != redis_url:  # run.json keeps no password: say it again
        resume += ("--redis-url", redis_url)
    workers = (python, "-m", "hpcflow", "worker", "--redis-url", redis_url, "--run", run_dir.name) if nodes > 1 else ()
    if workers and redis_url == "auto":  # the launcher's private server: its URL is in the run directory
        workers += ("--run-dir", str(run_dir))
    if workers and cpus % nodes == 0:  # (JobSpec refuses an uneven split) a node's CPUs each, as the plan counts
        workers += ("--cpus", str(cpus // nodes))
    spec = JobSpec(
        name=f"hpcflow-{safe_name(workflow)}",
        workdir=(workdir or Path.cwd()).absolute(),
        run_dir=run_dir,
        run_command=tuple(launcher),
        cpus=cpus,
        nodes=nodes,
        worker_command=workers,
        resume_command=resume,
        max_attempts=max_attempts if until_done else 1,
        **requested(batch or BatchConfig()),
    )
    if mapping == "mpi" and drain_timeout is None:  # the drain must end before the walltime: fit it to the warning
        options["drain_timeout"] = drain_s(spec, scheduler)
        spec = replace(
            spec,
            run_command=tuple(run_command(workflow, mapping, cpus, run_dir, params, options, oversubscribe, python)),
        )
    return spec


def requested(batch: BatchConfig) -> dict[str, Any]:
    """What a JobSpec takes from the batch settings: all but the scheduler, which submits it."""
    return {f.name: getattr(batch, f.name) for f in fields(BatchConfig) if f.name != "scheduler"}


def submit_job(job: JobSpec, scheduler: Scheduler) -> str:
    """Write the job script into the (existing) run directory and submit it: the job id."""
    script = job.run_dir / scheduler.script_name
    text = scheduler.render(job)
    if redact(text) != text:  # it holds a password (--redis-url): its owner alone may read it
        write_private(script, text.rstrip("\n"))
    else:
        script.write_text(text)
    return scheduler.submit(script, job.workdir)
