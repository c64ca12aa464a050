"""`hpcflow resume RUN_DIR`: continue a run that stopped (a signal, the walltime, a lost
node) from its newest checkpoint, with the workflow, parameters, mapping and settings it
was started with; the CPU count may change. At the end RUN_DIR holds the result of the
whole run (every output once) and metrics over every attempt."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from ..engines.checkpoint import CheckpointDamaged, CheckpointStore
from ..errors import UsageError
from .run import run_cmd
from .runrecord import CHECKPOINT_DIR, read_run_record

FINISHED = ("ok",)  # a run that ended so (exit 0 or 3) has nothing left to do


@click.command("resume")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("-n", "--cpus", type=int, default=None, help="Processes [default: as the run was started].")
@click.option(
    "--checkpoint-interval",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="Seconds between checkpoints [default: as the run was started].",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
@click.pass_context
def resume_cmd(ctx, run_dir, cpus, checkpoint_interval, quiet):
    """Continue the run in RUN_DIR from its newest checkpoint (or its start, if it wrote none).

    Exit codes as `hpcflow run`; 2 when RUN_DIR is not a run that can be resumed, still
    runs, or has finished."""
    path = Path(run_dir).absolute()
    record = read_run_record(path)
    status = _status(path)
    if status in FINISHED:
        raise UsageError(f"run {path} is finished (status {status}); nothing to resume")
    try:  # a damaged checkpoint is refused before anything runs (the run passes over and says the rest)
        CheckpointStore(path / CHECKPOINT_DIR).latest()
    except CheckpointDamaged as exc:
        raise UsageError(f"cannot resume {path}: {exc}") from None
    argv = list(record.get("argv", []))
    if "run" not in argv:
        raise UsageError(f"{path}: its run.json does not hold an `hpcflow run` command line")
    args = argv[argv.index("run") + 1 :] + ["--run-dir", str(path)]
    if cpus is not None:
        args += ["--cpus", str(cpus)]
    if checkpoint_interval is not None:
        args += ["--checkpoint-interval", str(checkpoint_interval)]
    if quiet:
        args.append("--quiet")
    if os.path.isdir(record.get("cwd", "")):
        os.chdir(record["cwd"])  # where its workflow file and configs/default.yaml were found
    os.environ.update(record.get("env", {}))  # its HPCFLOW_* settings
    obj = {**ctx.obj, "argv": argv, "resume": True}
    code = run_cmd.main(args=args, prog_name="hpcflow run", standalone_mode=False, obj=obj)
    ctx.exit(code or 0)


def _status(run_dir: Path) -> str | None:
    """The status the run's last attempt left in metrics.json (None: it never wrote one)."""
    try:
        return json.loads((run_dir / "metrics.json").read_text()).get("status")
    except (OSError, ValueError):
        return None
