"""The `hpcflow` command (click). Bad input is one line on stderr and exit 2; a failed
PE is exit 1 with metrics written; `--debug` shows tracebacks.

    run       hpcflow run: one run in this allocation
    runend    how a run ends: metrics.json, status and exit code, the last lines
    status    hpcflow status: how a run goes, from its status.json, its attempts and its job
    workflows hpcflow workflows: the built-ins and their parameters
    submit    hpcflow submit: a run as a batch job
    sweep     hpcflow sweep and report: an experiment, and its plots
    worker    hpcflow worker: more workers for a *_redis run
    info      hpcflow info and mappings: this machine, this hpcflow
    flags     the flags run and submit share, and the settings they come to
    params    -p, --inputs and --cpus, from text to checked values
    prepare   the checks and the plan that run and submit share
"""

from __future__ import annotations

import importlib
import re
import signal
import sys
import traceback

import click

from .. import __version__
from ..errors import HpcflowError, UsageError
from ..exits import end_state, signals_held
from ..mpirun import launcher_rank
from ..redact import redact
from .params import check_cpus, parse_params

__all__ = ["check_cpus", "cli", "main", "parse_params"]

COMMANDS = {  # name -> (module of hpcflow.cli, its click command); --help lists them sorted
    "run": ("run", "run_cmd"),
    "resume": ("resume", "resume_cmd"),
    "submit": ("submit", "submit_cmd"),
    "status": ("status", "status_cmd"),
    "sweep": ("sweep", "sweep_cmd"),
    "report": ("sweep", "report_cmd"),
    "worker": ("worker", "worker_cmd"),
    "workflows": ("workflows", "workflows_cmd"),
    "mappings": ("info", "mappings_cmd"),
    "info": ("info", "info_cmd"),
}


class LazyGroup(click.Group):
    """Imports a command's module only when that command is used (or --help lists them
    all): `hpcflow run` does not load the sweep, report, submit and status modules, which
    would hold up the run's start."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name]
        command = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
        if command.short_help is None:  # the first sentence whole: click would cut it at 45 characters
            command.short_help = " ".join(re.split(r"\.\s", command.help or "")[0].split()).rstrip(".") + "."
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hpcflow")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Run stream-based workflows inside HPC batch allocations."""
    ctx.ensure_object(dict)["debug"] = debug


def _one_line(text: str) -> str:
    """One line, with any password in a URL masked: a batch job's output file keeps it."""
    return redact(" ".join(line.strip() for line in str(text).splitlines() if line.strip()))


def main(argv: list[str] | None = None) -> None:
    """Entry point: one clear line and exit 2 for bad input, exit 1 for a failed run."""
    try:
        _main(argv)
    finally:
        if argv is None:  # the process's own entry: a signal after the command's end would kill it mid-exit
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _main(argv: list[str] | None) -> None:
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    say = launcher_rank() == 0  # under MPI every rank has the same error: rank 0 says it
    try:
        obj = {"argv": list(args), "process": argv is None}  # process: the command exits the process after it
        code = cli.main(args=args or ["--help"], prog_name="hpcflow", standalone_mode=False, obj=obj)
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
        with signals_held(restore=argv is not None):  # the run's end is written: no signal cuts its last word
            if debug:  # a PE's own traceback says more than where hpcflow re-raised it
                print(getattr(exc, "tb", "") or traceback.format_exc(), end="", file=sys.stderr)
            if say or getattr(exc, "in_place_of_rank0", False):  # mpi: the rank that writes for a dead rank 0
                # a stop the user or the batch system asked for is said as what happened, not as an error
                kind = "" if end_state(exc)[0] == "interrupted" else "error: "
                click.echo(f"hpcflow: {kind}{_one_line(exc)}", err=True)
            sys.exit(getattr(exc, "exit_code", 1))
    except Exception as exc:  # a bug in hpcflow or in workflow code outside a PE
        if debug:
            traceback.print_exc()
        hint = "" if debug else " (--debug shows the traceback)"
        click.echo(f"hpcflow: error: {type(exc).__name__}: {_one_line(exc)}{hint}", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
