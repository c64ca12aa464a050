"""`hpcflow resume RUN_DIR`: continue a run that stopped (a signal, the walltime, a lost
node) from its newest checkpoint, with the workflow, parameters, mapping and settings it
was started with; the CPU count may change. At the end RUN_DIR holds the result of the
whole run (every output once) and metrics over every attempt."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import click

from ..engines.checkpoint import CheckpointDamaged, CheckpointStore
from ..errors import UsageError
from ..jsonfile import DamagedFile, read_object
from ..redact import has_mask, is_masked
from ..settings import ENVIRONMENT
from .params import Seconds
from .run import run_cmd
from .runrecord import CHECKPOINT_DIR, read_run_record

URL_ENV = ENVIRONMENT["redis_url"]
FINISHED = ("ok",)  # a run that ended so (exit 0 or 3) has nothing left to do


@click.command("resume")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("-n", "--cpus", type=int, default=None, help="Processes [default: as the run was started].")
@click.option(
    "--checkpoint-interval",
    type=Seconds(),
    default=None,
    metavar="SECONDS",
    help="Seconds between checkpoints (positive) [default: as the run was started].",
)
@click.option(
    "--redis-url",
    default=None,
    help="The Redis server, when the run's had a password (never kept in RUN_DIR) [env HPCFLOW_REDIS_URL].",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
@click.pass_context
def resume_cmd(ctx, run_dir, cpus, checkpoint_interval, redis_url, quiet):
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
    env = dict(record.get("env", {}))
    if has_mask([argv, env]):
        argv, env = _unmask(argv, env, redis_url or os.environ.get(URL_ENV), path)
    args = argv[argv.index("run") + 1 :] + ["--run-dir", str(path)]
    if cpus is not None:
        args += ["--cpus", str(cpus)]
    if checkpoint_interval is not None:
        args += ["--checkpoint-interval", str(checkpoint_interval)]
    if quiet:
        args.append("--quiet")
    if os.path.isdir(record.get("cwd", "")):
        os.chdir(record["cwd"])  # where its workflow file and configs/default.yaml were found
    os.environ.update(env)  # its HPCFLOW_* settings
    obj = {**ctx.obj, "argv": argv, "resume": True, "record": record}
    code = run_cmd.main(args=args, prog_name="hpcflow run", standalone_mode=False, obj=obj)
    ctx.exit(code or 0)


def _status(run_dir: Path) -> str | None:
    """The status the run's last attempt left in metrics.json (None: it never wrote one, or
    a damaged one, which cannot say the run finished: the checkpoint decides)."""
    try:
        metrics = read_object(run_dir / "metrics.json", "the run's metrics")
    except DamagedFile:
        return None
    status = (metrics or {}).get("status")
    return status if isinstance(status, str) else None


def _unmask(argv: list[str], env: dict[str, str], url: str | None, path: Path) -> tuple[list[str], dict[str, str]]:
    """The run's command line and settings with its Redis URL's password, which run.json
    does not keep (redact.py), given again: by --redis-url or HPCFLOW_REDIS_URL."""
    masked = [a for a in argv if is_masked(a.partition("=")[2] if a.startswith("--") else a)]
    masked += [v for v in env.values() if is_masked(v)]
    if url is None or is_masked(url):
        where = urlsplit(masked[0]).hostname if masked and "://" in masked[0] else "its server"
        raise UsageError(
            f"run {path} used a Redis server ({where}) with a password, which hpcflow does not keep in the run "
            f"directory: give it again with {URL_ENV}=redis://:PASSWORD@HOST:PORT/DB or hpcflow resume --redis-url URL"
        )
    out = []
    for arg in argv:
        flag, eq, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
        if is_masked(value):
            arg = f"{flag}{eq}{url}"
        elif has_mask(arg):
            raise UsageError(f"run {path} had a password in its argument {arg!r}, which hpcflow does not keep")
        out.append(arg)
    env = {k: (url if is_masked(v) else v) for k, v in env.items()}
    return out, env
