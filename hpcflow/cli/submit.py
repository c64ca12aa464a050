"""`hpcflow submit`: a run as a batch job, checked here before anything is queued."""

from __future__ import annotations

import shutil
import tempfile
from functools import partial
from pathlib import Path

import click

from ..batch.jobspec import JobSpec
from ..batch.limits import check_request, slurm_partition
from ..batch.schedulers import SCHEDULERS, find_scheduler
from ..batch.submit import DEFAULT_MAX_ATTEMPTS, make_job, submit_job
from ..errors import UsageError
from ..job import Job
from ..mpirun import require_mpiexec
from ..plan import own_pool
from ..rundir import make_run_dir, run_dir_name
from ..settings import Settings
from ..sweep.jobs import record_job
from .flags import CONFIG_OPTION, command_settings, run_options, workflow_options
from .params import Seconds
from .prepare import RunFlags, prepare_job


def check_here(settings: Settings, run_dir: str | None, checkpoint_interval: float | None) -> Job:
    """What `hpcflow run` checks before it starts, checked before anything is queued, on
    `run`'s own code path: the workflow is built (into a directory thrown away) and the
    run planned, so that an unknown parameter or too few processes for the mapping is
    exit 2 here, not a job that fails in the queue."""
    if settings.mapping == "mpi":  # first: planning imports the mpi engine, which loads the MPI library
        require_mpiexec()
    name = Path(run_dir).name if run_dir else run_dir_name(settings.workflow, settings.mapping)
    with tempfile.TemporaryDirectory(prefix="hpcflow-submit-check-") as scratch:
        flags = RunFlags(checkpoint_interval=checkpoint_interval)
        return prepare_job(settings, Path(scratch) / name, flags, here=False)[1]


def check_first_node(planned: Job, job: JobSpec) -> None:
    """Warn when the first node of a job of several runs more processes than its CPUs: the
    pinned instances (producers, stateful PEs) all run there, beside one pool worker."""
    if job.nodes < 2 or not planned.plan.pool:
        return
    plan = planned.plan
    pool = own_pool(plan, job.joining)
    here = len(plan.pinned) + pool
    if here > job.cpus_per_node:
        click.echo(
            f"hpcflow: warning: the first node runs {here} processes ({len(plan.pinned)} pinned instance(s) and "
            f"{pool} pool worker(s)) on its {job.cpus_per_node} CPUs; "
            f"--cpus {here * job.nodes} gives each node {here}",
            err=True,
        )


def check_partition(job: JobSpec, scheduler: str, refuse: bool) -> None:
    """A job its SLURM partition can never run is refused (exit 2), or under --dry-run
    warned of; a partition that is not up is a warning."""
    part = slurm_partition(job.partition) if scheduler == "slurm" else None
    if part is None:
        return
    never, wait = check_request(job, part)
    if never and refuse:
        raise UsageError("; ".join(never))
    for line in never + wait:
        click.echo(f"hpcflow: warning: {line}", err=True)


@click.command("submit")
@workflow_options(
    mapping_help="Mapping [default: the config's].", cpus_help="CPUs over all nodes [default: the config's]."
)
@click.option("--nodes", type=int, default=1, show_default=True, help="Nodes; more than one needs a *_redis mapping.")
@click.option("--walltime", default=None, metavar="HH:MM:SS", help="Time limit of the job.")
@click.option("--partition", default=None, help="SLURM partition or PBS queue.")
@click.option("--account", default=None, help="Account (project) to charge.")
@click.option("--mem", default=None, help="Memory per node: 8G, 8000M, 8gb.")
@click.option(
    "--scheduler", type=click.Choice(sorted(SCHEDULERS)), help="[default: the config's, else sbatch or qsub on PATH]"
)
@click.option("--redis-url", default=None, help="Redis server for the *_redis mappings.")
@click.option("--run-dir", type=click.Path(file_okay=False), default=None, help="Where the script and results go.")
@click.option("--oversubscribe", is_flag=True, help="Passed on to `hpcflow run`.")
@click.option(
    "--checkpoint-interval",
    type=Seconds(),
    default=None,
    metavar="SECONDS",
    help="Passed on to `hpcflow run`: a checkpoint this often, besides the one on SIGTERM.",
)
@click.option(
    "--until-done",
    is_flag=True,
    help="Checkpoint on the early SIGTERM and submit the job again, until the run is finished.",
)
@click.option(
    "--max-attempts",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_ATTEMPTS,
    show_default=True,
    help="With --until-done: jobs in all, the first included.",
)
@CONFIG_OPTION
@click.option("--dry-run", is_flag=True, help="Print the job script; create and submit nothing.")
def submit_cmd(
    given,
    nodes,
    walltime,
    partition,
    account,
    mem,
    scheduler,
    redis_url,
    run_dir,
    oversubscribe,
    checkpoint_interval,
    until_done,
    max_attempts,
    config_file,
    dry_run,
):
    """Submit WORKFLOW as a batch job (SLURM or PBS); print the job id and the run directory.

    Settings left out come from HPCFLOW_* variables, then --config FILE (a cluster
    profile such as configs/clusters/local-slurm.yaml), then configs/default.yaml.

    \b
    --until-done: for a run longer than the walltime (a mapping other than simple and mpi).
    Every attempt works in the one run directory: the first runs WORKFLOW, later ones
    `hpcflow resume` it. SIGTERM before the walltime (SLURM: 60 s, at most a quarter
    of the walltime; PBS: at the walltime) makes hpcflow write a checkpoint and stop; the
    job then submits its script again, to start when it has ended, up to --max-attempts
    jobs. job.out says what each attempt did; scancel ends the chain."""
    batch = dict(walltime=walltime, partition=partition, account=account, mem=mem, scheduler=scheduler)
    given = {**given, "redis_url": redis_url, **{f"batch.{key}": value for key, value in batch.items()}}
    settings = command_settings(given, config_file)
    workflow, mapping, cpus = settings.workflow, settings.mapping, settings.cpus
    if mapping is None or cpus is None:
        raise UsageError("submit needs --mapping and --cpus (or mapping: and cpus: in a config file)")
    prepared = check_here(settings, run_dir, checkpoint_interval)
    options = run_options(settings)
    chosen = find_scheduler(settings.batch.scheduler)

    job = partial(
        make_job,
        workflow=workflow,
        mapping=mapping,
        cpus=cpus,
        nodes=nodes,
        params=settings.params,
        batch=settings.batch,
        oversubscribe=oversubscribe,
        checkpoint_interval=checkpoint_interval,
        until_done=until_done,
        max_attempts=max_attempts,
        scheduler=chosen.name,
        **options,
    )
    planned = Path(run_dir) if run_dir else Path("runs") / run_dir_name(workflow, mapping)
    checked = job(run_dir=planned.absolute())  # checks everything before anything is created
    check_partition(checked, chosen.name, refuse=not dry_run)
    check_first_node(prepared, checked)
    if dry_run:
        click.echo(chosen.render(checked), nl=False)
        return
    created, path = make_run_dir(run_dir, workflow, mapping)
    try:
        job_id = submit_job(job(run_dir=path.absolute()), chosen)
    except UsageError:
        if created:
            shutil.rmtree(path, ignore_errors=True)
        raise
    record_job(path, chosen.name, job_id)
    click.echo(f"hpcflow: submitted {workflow} on {mapping} with {cpus} CPUs as {chosen.name} job {job_id}", err=True)
    click.echo(f"hpcflow: follow it with: hpcflow status {path} --watch", err=True)
    click.echo(job_id)
    click.echo(str(path))
