"""`hpcflow info` and `hpcflow mappings`: what this machine and this hpcflow offer."""

from __future__ import annotations

import json
import shutil
import sys
from importlib.util import find_spec

import click

from .. import __version__
from ..batch.allocation import detect_allocation
from ..mappings import MAPPINGS
from ..mpirun import find_mpiexec
from ..transports import find_server_binary


@click.command("mappings")
def mappings_cmd() -> None:
    """List the mappings."""
    width = max(len(n) for n in MAPPINGS)
    for spec in MAPPINGS.values():
        scaling = "auto-scaled" if spec.autoscale else ""
        click.echo(f"{spec.name:<{width}}  {spec.plan_kind:<10} {spec.transport:<13} {scaling:<11} {spec.summary}")


@click.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info_cmd(as_json: bool) -> None:
    """Show the detected allocation, CPUs, scheduler, MPI and Redis availability."""
    alloc = detect_allocation()
    info = {
        "hpcflow": __version__,
        "python": sys.version.split()[0],
        **{f"allocation_{k}": v for k, v in alloc.to_dict().items()},
        "mpi4py": find_spec("mpi4py") is not None,
        "mpiexec": find_mpiexec(),
        "redis_py": find_spec("redis") is not None,
        "redis_server": find_server_binary(),
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
