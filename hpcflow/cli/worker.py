"""`hpcflow worker`: more pool workers, on this node, for a *_redis run started elsewhere."""

from __future__ import annotations

import click

from ..batch.allocation import detect_allocation


@click.command("worker")
@click.option(
    "--redis-url",
    required=True,
    help="The run's Redis server: redis://[:password@]host:port/db, or auto for its private server.",
)
@click.option("--run", "run_id", required=True, help="The run to join: its run directory's name.")
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="With --redis-url auto: the run directory [default: runs/RUN].",
)
@click.option("-n", "--cpus", type=int, default=None, help="Workers to start [default: the allocation's CPUs].")
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="The run's key [default: $HPCFLOW_RUN_KEY, else the run.key file the run wrote].",
)
@click.option(
    "--wait", "wait_s", type=float, default=60.0, show_default=True, help="Seconds to wait for the run to start."
)
def worker_cmd(redis_url, run_id, run_dir, cpus, key_file, wait_s):
    """Join a running *_redis run (dynamic or hybrid) with pool workers on this node."""
    from ..transports.redis.join import join_run

    n = join_run(redis_url, run_id, cpus or detect_allocation().cpus, key_file, wait_s, run_dir)
    click.echo(f"hpcflow: {n} worker(s) served run {run_id}", err=True)
