"""The `hpcflow` command (click). Bad input is one line on stderr and exit 2; a failed
PE is exit 1 with metrics written; `--debug` shows tracebacks."""

from __future__ import annotations

import json
import logging
import shutil
import sys
import traceback
from dataclasses import replace
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import click
import yaml

from . import __version__
from .api import execute as execute_run
from .api import prepare as prepare_run
from .batch.allocation import Allocation, detect_allocation
from .batch.schedulers import SCHEDULERS, find_scheduler
from .batch.submit import is_redis_mapping, make_job, submit_job
from .config import Config, load_config
from .errors import HpcflowError, UsageError
from .mappings import MAPPINGS, get_mapping
from .mpirun import launcher_rank, launcher_size, relaunch, run_ranks
from .rundir import attach_log, new_run_dir, run_dir_name, write_result
from .workflows import load_workflow


def parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    """`-p key=value` pairs; values are read as YAML scalars (3, 0.5, true, text)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"parameter {pair!r} is not key=value")
        try:
            params[key] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            params[key] = value
    return params


def parse_inputs(text: str | None) -> Any:
    """`--inputs`: JSON (an int or {pe: int | [dicts]}) or the path of a JSON file."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        error = exc
    try:  # not JSON: a file? (a long JSON string is no valid path: OSError)
        text = Path(text).read_text()
    except OSError:
        raise UsageError(f"--inputs is neither JSON nor a JSON file: {error}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--inputs file is not JSON: {exc}") from None


def check_cpus(cpus: int | None, mapping: str, oversubscribe: bool, alloc: Allocation) -> None:
    """Refuse `--cpus` beyond the allocation unless asked to oversubscribe (left out, run()
    takes the allocation's CPUs).

    Only the command line checks: the Python API runs any number of processes, as the
    tests and benchmarks do on small machines. A Redis or MPI run may span the job's nodes."""
    spans_nodes = is_redis_mapping(mapping) or mapping == "mpi"
    limit = alloc.total_cpus if spans_nodes else alloc.cpus
    if cpus is not None and cpus > limit and not oversubscribe:
        raise UsageError(
            f"--cpus {cpus} is more than the {limit} CPUs of this allocation "
            f"({alloc.scheduler}, from {alloc.source}); add --oversubscribe to run anyway"
        )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hpcflow")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Run stream-based workflows inside HPC batch allocations."""
    ctx.ensure_object(dict)["debug"] = debug


@cli.command("run")
@click.argument("workflow")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="Workflow parameter.")
@click.option("-m", "--mapping", default="simple", show_default=True, help="Mapping (see `hpcflow mappings`).")
@click.option("-n", "--cpus", type=int, default=None, help="Processes to use [default: the allocation's CPUs].")
@click.option("--inputs", default=None, help="JSON or a JSON file: an int or {pe: int | [dicts]}.")
@click.option("--run-dir", type=click.Path(file_okay=False), default=None, help="Where results go.")
@click.option("--redis-url", default=None, help="Redis server for the *_redis mappings.")
@click.option("--on-error", default="fail", show_default=True, help="fail | skip | retry:N[,skip]")
@click.option("--start-method", default=None, help="fork (default on Linux) | spawn | forkserver")
@click.option("--autoscale", default=None, metavar="POLICY[:K=V,...]", help="Auto-scaling policy of *_auto_* mappings.")
@click.option(
    "--oversubscribe",
    is_flag=True,
    envvar="HPCFLOW_OVERSUBSCRIBE",
    help="Allow more processes than the allocation's CPUs [env HPCFLOW_OVERSUBSCRIBE=1].",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
@click.pass_context
def run_cmd(
    ctx,
    workflow,
    params,
    mapping,
    cpus,
    inputs,
    run_dir,
    redis_url,
    on_error,
    start_method,
    autoscale,
    oversubscribe,
    quiet,
):
    """Run WORKFLOW (a built-in name, a module or a .py file) and write a run directory.

    With --mapping mpi, run it under `mpiexec -n N` or `srun -n N`; started otherwise, it
    re-launches itself through the mpiexec on PATH with --cpus ranks."""
    params = parse_params(params)
    feed = parse_inputs(inputs)
    get_mapping(mapping)
    check_cpus(cpus, mapping, oversubscribe, detect_allocation())
    if mapping == "mpi" and launcher_size() is None:
        argv = ctx.obj.get("argv", sys.argv[1:])
        relaunch(argv, cpus or detect_allocation().cpus, lambda: new_run_dir(workflow, mapping))
    ranks = run_ranks(mapping)  # under MPI: rank 0 makes the run directory, writes and prints
    quiet = quiet or not ranks.writer
    created, path = ranks.share(lambda: _make_run_dir(run_dir, workflow, mapping))
    handler = attach_log(path) if ranks.writer else None
    log = logging.getLogger("hpcflow")

    def prepare():
        wf = load_workflow(workflow, params, run_dir=str(path))
        options = dict(workflow=wf.name, params=params, extra_metrics=wf.info, on_error=on_error)
        if redis_url:
            options["redis_url"] = redis_url
        if start_method:
            options["start_method"] = start_method
        if autoscale:
            options["autoscale"] = autoscale
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
        click.echo(str(path))
    finally:
        _detach(log, handler)


def _detach(log: logging.Logger, handler: logging.Handler | None) -> None:
    if handler is not None:
        log.removeHandler(handler)
        handler.close()


def _make_run_dir(run_dir: str | None, workflow: str, mapping: str) -> tuple[bool, Path]:
    """(whether this run made it, the run directory)."""
    created = run_dir is None or not Path(run_dir).exists()
    path = Path(run_dir) if run_dir else new_run_dir(workflow, mapping)
    path.mkdir(parents=True, exist_ok=True)
    return created, path


@cli.command("submit")
@click.argument("workflow", required=False)
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="Workflow parameter.")
@click.option("-m", "--mapping", default=None, help="Mapping [default: the config's].")
@click.option("-n", "--cpus", type=int, default=None, help="CPUs over all nodes [default: the config's].")
@click.option("--nodes", type=int, default=1, show_default=True, help="Nodes; more than one needs a *_redis mapping.")
@click.option("--walltime", default=None, metavar="HH:MM:SS", help="Time limit of the job.")
@click.option("--partition", default=None, help="SLURM partition or PBS queue.")
@click.option("--account", default=None, help="Account (project) to charge.")
@click.option("--mem", default=None, help="Memory per node: 8G, 8000M, 8gb.")
@click.option("--scheduler", type=click.Choice(sorted(SCHEDULERS)), help="[default: sbatch or qsub on PATH]")
@click.option("--redis-url", default=None, help="Redis server for the *_redis mappings.")
@click.option("--run-dir", type=click.Path(file_okay=False), default=None, help="Where the script and results go.")
@click.option("--oversubscribe", is_flag=True, help="Passed on to `hpcflow run`.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None, help="YAML configuration file.")
@click.option("--dry-run", is_flag=True, help="Print the job script; create and submit nothing.")
def submit_cmd(
    workflow,
    params,
    mapping,
    cpus,
    nodes,
    walltime,
    partition,
    account,
    mem,
    scheduler,
    redis_url,
    run_dir,
    oversubscribe,
    config_file,
    dry_run,
):
    """Submit WORKFLOW as a batch job (SLURM or PBS); print the job id and the run directory.

    Without WORKFLOW, the workflow and its settings come from --config FILE, else from
    configs/default.yaml; options given here win over the file's."""
    config = load_config(config_file) if config_file or workflow is None else Config()
    workflow = workflow or config.workflow
    if workflow is None:
        where = config.path or "configs/default.yaml (there is none here)"
        raise UsageError(f"no WORKFLOW given and no workflow: in {where}")
    mapping = mapping or config.mapping
    cpus = cpus if cpus is not None else config.cpus
    if mapping is None or cpus is None:
        raise UsageError("submit needs --mapping and --cpus (or mapping: and cpus: in a config file)")
    get_mapping(mapping)
    merged_params = {**config.params, **parse_params(params)}
    load_workflow(workflow, merged_params)  # an unknown workflow or parameter fails here, not in the queue
    chosen = find_scheduler(scheduler)
    flags = dict(walltime=walltime, partition=partition, account=account, mem=mem)
    batch = replace(config.batch, **{k: v for k, v in flags.items() if v is not None})

    settings = dict(
        workflow=workflow,
        mapping=mapping,
        cpus=cpus,
        nodes=nodes,
        params=merged_params,
        batch=batch,
        redis_url=redis_url or config.redis_url,
        oversubscribe=oversubscribe,
    )
    planned = Path(run_dir) if run_dir else Path("runs") / run_dir_name(workflow, mapping)
    job = make_job(run_dir=planned.absolute(), **settings)  # checks everything before anything is created
    if dry_run:
        click.echo(chosen.render(job), nl=False)
        return
    created = run_dir is None or not planned.exists()
    path = new_run_dir(workflow, mapping) if run_dir is None else planned
    path.mkdir(parents=True, exist_ok=True)
    try:
        job_id = submit_job(make_job(run_dir=path.absolute(), **settings), chosen)
    except UsageError:
        if created:
            shutil.rmtree(path, ignore_errors=True)
        raise
    click.echo(f"hpcflow: submitted {workflow} on {mapping} with {cpus} CPUs as {chosen.name} job {job_id}", err=True)
    click.echo(job_id)
    click.echo(str(path))


@cli.command("mappings")
def mappings_cmd() -> None:
    """List the mappings."""
    width = max(len(n) for n in MAPPINGS)
    for spec in MAPPINGS.values():
        scaling = "auto-scaled" if spec.autoscale else ""
        click.echo(f"{spec.name:<{width}}  {spec.plan_kind:<10} {spec.transport:<13} {scaling:<11} {spec.summary}")


@cli.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info_cmd(as_json: bool) -> None:
    """Show the detected allocation, CPUs, scheduler, MPI and Redis availability."""
    alloc = detect_allocation()
    info = {
        "hpcflow": __version__,
        "python": sys.version.split()[0],
        **{f"allocation_{k}": v for k, v in alloc.to_dict().items()},
        "mpi4py": find_spec("mpi4py") is not None,
        "mpiexec": shutil.which("mpiexec"),
        "redis_py": find_spec("redis") is not None,
        "redis_server": shutil.which("redis-server"),
        "sbatch": shutil.which("sbatch"),
        "qsub": shutil.which("qsub"),
    }
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    width = max(map(len, info))
    for key, value in info.items():
        if isinstance(value, (list, tuple)):
            value = ",".join(map(str, value))
        click.echo(f"{key:<{width}} {value if value not in (None, False, '') else 'no'}")


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def main(argv: list[str] | None = None) -> None:
    """Entry point: one clear line and exit 2 for bad input, exit 1 for a failed run."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    say = launcher_rank() == 0  # under MPI every rank has the same error: rank 0 says it
    try:
        code = cli.main(args=args or ["--help"], prog_name="hpcflow", standalone_mode=False, obj={"argv": list(args)})
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("hpcflow: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        if say:
            click.echo(f"hpcflow: error: {_one_line(exc.format_message())}", err=True)
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except UsageError as exc:
        if debug:
            traceback.print_exc()
        if say:
            click.echo(f"hpcflow: error: {_one_line(exc)}", err=True)
        sys.exit(2)
    except HpcflowError as exc:
        if debug:  # a PE's own traceback says more than where hpcflow re-raised it
            print(getattr(exc, "tb", "") or traceback.format_exc(), end="", file=sys.stderr)
        if say:
            click.echo(f"hpcflow: error: {_one_line(exc)}", err=True)
        sys.exit(getattr(exc, "exit_code", 1))
    except Exception as exc:  # a bug in hpcflow or in workflow code outside a PE
        if debug:
            traceback.print_exc()
        hint = "" if debug else " (--debug shows the traceback)"
        click.echo(f"hpcflow: error: {type(exc).__name__}: {_one_line(exc)}{hint}", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
