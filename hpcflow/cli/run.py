"""`hpcflow run`: one run in this allocation, written to a run directory."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from contextlib import nullcontext

import click

from ..api import execute as execute_run
from ..attempts import begin_attempt
from ..batch.allocation import detect_allocation
from ..durable import write_error
from ..engines.barrier import SPACING
from ..engines.checkpoint import CheckpointStore
from ..errors import HpcflowError, RunAborted, UsageError
from ..exits import raise_terminated, signals_held
from ..fingerprint import check_same, fingerprint
from ..heldsignals import holding
from ..mappings import get_mapping
from ..mpirun import MpiRanks, launcher_size, relaunch, run_ranks
from ..progress import Monitor, make_display, watching
from ..rankguard import guard_rank
from ..result import RunResult
from ..rundir import attach_log, make_run_dir, new_run_dir
from ..settings import resolve
from ..transports import REDIS
from .flags import CONFIG_OPTION, workflow_options
from .params import INTERVAL_HELP, Seconds, check_cpus, parse_inputs
from .prepare import RunFlags, prepare_job
from .runend import finish_run, last_lines, origins, start_snapshot
from .runrecord import CHECKPOINT_DIR, hold_run, keep_started, path_of_record, started_settings

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
    "--no-pickle-check",
    "no_pickle_check",
    is_flag=True,
    help="simple: do not check that items could be pickled (as every parallel mapping must).",
)
@click.option(
    "--elastic",
    is_flag=True,
    help="*_redis: submit worker jobs while the backlog outgrows the workers, cancel them when idle "
    "(settings: elastic: in the config).",
)
@click.option(
    "--checkpoint-interval",
    type=Seconds(),
    default=None,
    metavar="SECONDS",
    help=INTERVAL_HELP.format(factor=SPACING, share=1 / (1 + SPACING))
    + " `hpcflow resume RUN_DIR` continues from the newest. multi, dyn_*, hybrid_*, *_redis.",
)
@CONFIG_OPTION
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
@click.option("--print-results", is_flag=True, hidden=True, help="Print Inputs:, Outputs: (dispel4py simple).")
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
    no_pickle_check,
    elastic,
    checkpoint_interval,
    config_file,
    quiet,
    print_results,
):
    """Run WORKFLOW (a built-in name, see `hpcflow workflows`; a module or a .py file) and write a run directory.

    Settings left out come from HPCFLOW_* variables, then --config FILE, then
    configs/default.yaml of the current directory (WORKFLOW too); the start line says
    where each came from. The run directory is under ./runs/ unless --run-dir says.
    Exit 0: done; 3: done with items skipped (--on-error skip); 1: failed or stalled;
    2: bad input; 130/143: stopped by Ctrl-C/SIGTERM, which on multi and the dyn_*,
    hybrid_* and *_redis mappings writes a checkpoint first (`hpcflow resume RUN_DIR`
    continues the run), on mpi drains the work in flight, and on simple stops at once;
    a second Ctrl-C aborts at once (a repeated SIGTERM lets the checkpoint finish).

    With --mapping mpi, run it under `mpiexec -n N`
    or `srun -n N`; started otherwise, it re-launches itself through the mpiexec on PATH
    with --cpus ranks."""
    if redis_url and redis_auto:
        raise UsageError("give --redis-url or --redis auto, not both")
    settings = resolve({**given, "redis_url": redis_url or redis_auto}, config_file, built_in=BUILT_IN)
    record = ctx.obj.get("record")  # on resume: how the run started, whose settings it keeps
    if record is not None:
        settings, notes = keep_started(settings, record, path_of_record(run_dir))
        for note in notes:
            click.echo(f"hpcflow: resume keeps {note}", err=True)
    if settings.workflow is None:  # bare `hpcflow run`: how to use it, then why it did not start
        click.echo(ctx.get_help())
        settings.require_workflow()
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
    if mapping == "mpi":
        guard_rank()  # under mpiexec: a dead rank is reported by hpcflow, not only by hydra
    ranks = run_ranks(mapping)  # under MPI: rank 0 makes the run directory, writes and prints
    quiet = quiet or not ranks.writer
    created, path = ranks.share(lambda: make_run_dir(run_dir, workflow, mapping))
    handler = attach_log(path) if ranks.writer else None
    log = logging.getLogger("hpcflow")

    flags = RunFlags(
        feed=feed,
        on_error=on_error,
        start_method=start_method,
        no_pickle_check=no_pickle_check,
        elastic=elastic,
        checkpoint_interval=checkpoint_interval,
        resume=bool(ctx.obj.get("resume")),
    )

    held = None
    try:
        try:  # bad input ends here, before the run is announced, and leaves no run directory
            wf, job = ranks.agree(lambda: prepare_job(settings, path, flags))
            if record is not None:  # the workflow's code or an --inputs file may have changed since
                check_same(record.get("fingerprint"), fingerprint(job), f"{path}")
        except UsageError:
            if created and ranks.writer:
                _detach(log, handler)
                handler = None
                shutil.rmtree(path, ignore_errors=True)
            raise
        n = job.plan.processes
        start = f"running {wf.name} on {mapping} with {n} process{'es' if n != 1 else ''}"
        log.info("%s (params %s), run directory %s; %s", start, params, path, origins(settings))
        if not quiet:
            click.echo(f"hpcflow: {start} ({origins(settings)}); run directory {path}", err=True)
        if print_results and ranks.writer:  # as dispel4py's simple prints them, on stdout
            click.echo(f"Inputs: {job.feeds}")
        try:
            if spec.checkpoints:  # `hpcflow resume` waits for its end, and continues it as it started
                held = hold_run(path, ctx.obj, started_settings(settings), fingerprint(job))
            if ranks.writer:
                resumed = bool(ctx.obj.get("resume"))
                newest = CheckpointStore(path / CHECKPOINT_DIR).generations() if resumed else []
                begin_attempt(path, resumed, newest[-1] if newest else None)
        except OSError as exc:
            raise RunAborted(f"{write_error(exc.filename or path, exc)}; the run did not start") from None
        in_process = mapping == "simple" and on_main_thread()  # the others handle signals themselves
        # the coordinator's mappings: a signal before its handlers are up, or after the run, is held
        process = bool(ctx.obj.get("process"))  # the command is the process: it exits after the run
        held_signals = holding(restore=not process) if spec.checkpoints and on_main_thread() else nullcontext()
        with held_signals:
            monitor = Monitor(path if ranks.writer else None, make_display(quiet))
            monitor.update(start_snapshot(job), time.perf_counter(), force=True)
            failure: BaseException | None = None
            result = None
            before = signal.signal(signal.SIGTERM, raise_terminated) if in_process else None
            try:
                with watching(monitor):
                    result = execute_run(job)
            except (HpcflowError, KeyboardInterrupt) as exc:  # the run started and stopped early: keep what it did
                failure, result = exc, getattr(exc, "result", None)
            except OSError as exc:  # a file the run needed could not be written or read (a full disk)
                failure = RunAborted(
                    f"{exc.filename or path}: {exc.strerror or exc}; the run stops", tb=traceback.format_exc()
                )
            finally:
                if before is not None:
                    signal.signal(signal.SIGTERM, before)
                if isinstance(ranks, MpiRanks) and on_main_thread():
                    ignore_late_signals()
            with signals_held():  # from here to the exit, a signal cannot tear the run's end
                writer = ranks.writer or getattr(failure, "in_place_of_rank0", False)  # mpi: rank 0 died
                if writer and not ranks.writer:
                    monitor.run_dir, handler = path, attach_log(path)
                code, failure = finish_run(path if writer else None, job, result, failure, monitor, log)
                if not writer:
                    return
                if not quiet or failure is not None or code:
                    for line in last_lines(result, failure, path):
                        click.echo(f"hpcflow: {line}", err=True)
                if failure is None:  # stdout's last line names the run directory of a run that finished
                    if print_results:
                        click.echo(f"Outputs: {written_outputs(result)}")
                    click.echo(str(path.absolute()))
                else:
                    if isinstance(failure, KeyboardInterrupt):
                        name = getattr(failure, "signal_name", "SIGINT")
                        raise RunAborted(f"interrupted by {name}: stopped at once", exit_code=code) from None
                    failure.exit_code = code  # exits.py: the status's code
                    raise failure
                if code:
                    ctx.exit(code)
    finally:
        if held is not None:
            os.close(held)
        _detach(log, handler)


def written_outputs(result: RunResult) -> dict[str, dict[str, list]]:
    """The outputs as dispel4py's simple prints them: {pe: {port: [items]}} of the ports written to."""
    out = {}
    for pe, ports in result.outputs.items():
        written = {port: items for port, items in ports.items() if items}
        if written:
            out[pe] = written
    return out


def on_main_thread() -> bool:
    """Signal handlers can be set there only (the CLI called from a thread, as tests may)."""
    return threading.current_thread() is threading.main_thread()


def ignore_late_signals() -> None:
    """The ranks have ended the run together and now write and leave together (rank 0
    writes, every rank meets the others in MPI_Finalize): a signal now would kill a rank
    with the default action and leave the others waiting in MPI_Finalize for it."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)


def _detach(log: logging.Logger, handler: logging.Handler | None) -> None:
    if handler is not None:
        log.removeHandler(handler)
        handler.close()
