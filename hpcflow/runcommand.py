"""The `hpcflow run` command line of a run that starts elsewhere: the launcher of a
batch job (`hpcflow submit`) or a sweep's cell. Both say a run the way a user would
type it, so what the run does is what that command does at a prompt."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .settings import autoscale_text

RUN_FLAGS = {  # the run options such a command line carries, and the `hpcflow run` flag of each
    "autoscale": "--autoscale",
    "redis_url": "--redis-url",
    "on_error": "--on-error",
    "start_method": "--start-method",
    "stall_timeout": "--stall-timeout",
    "drain_timeout": "--drain-timeout",
    "checkpoint_interval": "--checkpoint-interval",
}


def run_command(
    workflow: str,
    mapping: str,
    cpus: int,
    run_dir: Path,
    params: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    oversubscribe: bool = False,
    python: str = sys.executable,
) -> list[str]:
    """`python -m hpcflow run ...`; `options` holds RUN_FLAGS keys (None or "": left out)."""
    command = [python, "-m", "hpcflow", "run", workflow, "--mapping", mapping, "--cpus", str(cpus)]
    command += ["--run-dir", str(run_dir)]
    for key, value in (params or {}).items():
        command += ["-p", f"{key}={yaml_scalar(value)}"]
    for key, flag in RUN_FLAGS.items():
        value = (options or {}).get(key)
        if value not in (None, ""):
            command += [flag, autoscale_text(value) if key == "autoscale" else str(value)]
    if oversubscribe:
        command.append("--oversubscribe")
    return command


def yaml_scalar(value: Any) -> str:
    """`value` as `-p key=value` text that `hpcflow run` reads back as the same value."""
    text = yaml.safe_dump(value, default_flow_style=True, width=sys.maxsize)
    return text.removesuffix("\n...\n").strip()
