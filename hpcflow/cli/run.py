"""`hpcflow run`: one run in this allocation, written to a run directory."""

from __future__ import annotations

import logging
import shutil
import sys

import click

from ..api import execute as execute_run
from ..api import prepare as prepare_run
from ..batch.allocation import detect_allocation
from ..errors import HpcflowError, UsageError
from ..mappings import get_mapping
from ..mpirun import launcher_size, relaunch, run_ranks
from ..rundir import attach_log, make_run_dir, new_run_dir, write_result
from ..transports import REDIS
from ..workflows import load_workflow
from .flags import CONFIG_OPTION, command_settings, run_options, workflow_options
from .params import check_cpus, parse_inputs

BUILT_IN = {"mapping": "simple"}  # what `run` takes when nothing else says (run options: their own defaults)


@click.command("run")
@workflow_options(
    mapping_help="Mapping [default: the config's, else simple].",
    cpus_help="Processes [default: the config's, else all CPUs].",
)
@click.option("--inputs", default=None, help="JSON or a JSON file: an int or {pe: int | [dicts]}.")
@click.option("--run-dir", type=click.Path(file_okay=False), default=None, help="Where results go.")
@click.option(
    "--redis-url", default=None, help="Redis server for the *_redis mappings: redis://[:password@]host:port/db."
)
@click.option(
    "--redis",
    "redis_auto",
    type=click.Choice(["auto"]),
    default=None,
    help="auto: start a private redis-server for the run (the default of the *_redis mappings).",
)
@click.option("--on-error", default="fail", show_default=True, help="fail | skip | retry:N[,skip]")
@click.option("--start-method", default=None, help="fork (default on Linux) | spawn | forkserver")
@click.option(
    "--oversubscribe",
    is_flag=True,
    envvar="HPCFLOW_OVERSUBSCRIBE",
    help="Allow more processes than the allocation's CPUs [env HPCFLOW_OVERSUBSCRIBE=1].",
)
@click.option(
    "--elastic",
    is_flag=True,
    help="*_redis: submit worker jobs while the backlog outgrows the workers, cancel them when idle "
    "(settings: elastic: in the config).",
)
@CONFIG_OPTION
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
@click.pass_context
def run_cmd(
    ctx,
    given,
    inputs,
    run_dir,
    redis_url,
    redis_auto,
    on_error,
    start_method,
    oversubscribe,
    elastic,
    config_file,
    quiet,
):
    """Run WORKFLOW (a built-in name, a module or a .py file) and write a run directory.

    Settings left out come from HPCFLOW_* variables, then --config FILE, then
    configs/default.yaml (WORKFLOW too). With --mapping mpi, run it under `mpiexec -n N`
    or `srun -n N`; started otherwise, it re-launches itself through the mpiexec on PATH
    with --cpus ranks."""
    if redis_url and redis_auto:
        raise UsageError("give --redis-url or --redis auto, not both")
    settings = command_settings({**given, "redis_url": redis_url or redis_auto}, config_file, BUILT_IN)
    workflow, mapping, cpus, params = settings.workflow, settings.mapping, settings.cpus, settings.params
    feed = parse_inputs(inputs)
    spec = get_mapping(mapping)
    if elastic and spec.transport != REDIS:
        raise UsageError(
            f"--elastic needs a *_redis mapping (such as dyn_redis), whose workers can join from jobs; not {mapping}"
        )
    check_cpus(cpus, mapping, oversubscribe, detect_allocation(), source=settings.sources.get("cpus"))
    if mapping == "mpi" and launcher_size() is None:
        argv = ctx.obj.get("argv", sys.argv[1:])
        relaunch(argv, cpus or detect_allocation().cpus, lambda: new_run_dir(workflow, mapping))
    ranks = run_ranks(mapping)  # under MPI: rank 0 makes the run directory, writes and prints
    quiet = quiet or not ranks.writer
    created, path = ranks.share(lambda: make_run_dir(run_dir, workflow, mapping))
    handler = attach_log(path) if ranks.writer else None
    log = logging.getLogger("hpcflow")

    def prepare():
        wf = load_workflow(workflow, params, run_dir=str(path))
        extra = {**wf.info, "config": settings.to_dict()}
        options = dict(workflow=wf.name, params=params, extra_metrics=extra, on_error=on_error)
        options.update(run_options(settings))
        if spec.transport == REDIS:  # `hpcflow worker --run <run directory name>` joins it
            from ..transports.redis.keys import run_id_of

            options.update(run_id=run_id_of(path.name), key_file=str((path / "run.key").absolute()))
            if elastic:
                options.update(elastic=dict(settings.elastic), batch=settings.batch)
        if start_method:
            options["start_method"] = start_method
        return wf, prepare_run(wf.graph, feed if feed is not None else wf.inputs, mapping, cpus, **options)

    try:
        try:  # bad input ends here, before the run is announced, and leaves no run directory
            wf, job = ranks.agree(prepare)
        except UsageError:
            if created and ranks.writer:
                _detach(log, handler)
                handler = None
                shutil.rmtree(path, ignore_errors=True)
            raise
        n = job.plan.processes
        start = f"running {wf.name} on {mapping} with {n} process{'es' if n != 1 else ''}"
        log.info("%s (params %s), run directory %s", start, params, path)
        if not quiet:
            click.echo(f"hpcflow: {start}", err=True)
        try:
            result = execute_run(job)
        except HpcflowError as exc:  # the run started and stopped early: keep what it did
            if ranks.writer:
                partial = getattr(exc, "result", None)
                if partial is not None:
                    write_result(path, partial)
                log.error("%s\n%s", exc, getattr(exc, "tb", ""))
                click.echo(f"hpcflow: run directory {path}", err=True)
            raise
        if not ranks.writer:
            return
        write_result(path, result)
        m = result.metrics
        done = f"done in {m.runtime_s:.3f} s (process time {m.process_time_s:.3f} s, {sum(m.items.values())} items)"
        log.info("%s", done)
        if not quiet:
            click.echo(f"hpcflow: {done}", err=True)
        click.echo(str(path.absolute()))
    finally:
        _detach(log, handler)


def _detach(log: logging.Logger, handler: logging.Handler | None) -> None:
    if handler is not None:
        log.removeHandler(handler)
        handler.close()
