"""How one cell runs: the `hpcflow run` command line it is, run here in a subprocess (or
by a batch job, see `jobs`), and the runs.jsonl row made from its run directory.

A subprocess per cell rather than `run()` in this process: a cell is then exactly what
a user would type, the mpi mapping can re-launch itself, a crashed or hung run cannot
take the sweep down with it (a timeout stops its whole process group), and a batch job
runs the very same command line. It costs an interpreter start per cell, which the
run's own metrics (timed inside the run) do not include.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import hpcflow

from ..exits import SKIPPED_EXIT
from ..jsonfile import DamagedFile, read_object
from ..lifeline import signal_when_parent_dies
from ..runcommand import run_command
from .spec import Cell, SweepSpec

GRACE_S = 10.0  # after SIGTERM (a timeout, Ctrl-C): time for a run to drain before SIGKILL
ERROR_PREFIX = "hpcflow: error: "


def cell_command(
    spec: SweepSpec, cell: Cell, run_dir: Path, config_file: str | Path | None = None, python: str = sys.executable
) -> list[str]:
    command = run_command(
        spec.workflow, cell.mapping, cell.cpus, run_dir, cell.params, spec.options, spec.oversubscribe, python
    )
    command.append("--quiet")
    if config_file is not None:
        command += ["--config", str(Path(config_file).absolute())]
    return command


def hpcflow_path() -> str:
    """PYTHONPATH for a child that must import this very hpcflow (installed or not)."""
    here = str(Path(hpcflow.__file__).resolve().parents[1])
    return os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)


def run_here(command: list[str], timeout: float | None, lock_fd: int | None = None) -> str | None:
    """Run a cell's command to its end: None when it succeeded (items skipped included:
    its metrics say how many), else its error line. The run holds the sweep's lock
    (`lock_fd`) and gets SIGTERM if the sweep dies (see lock.py)."""
    env = {**os.environ, "PYTHONPATH": hpcflow_path()}
    proc = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
        pass_fds=() if lock_fd is None else (lock_fd,),
        preexec_fn=signal_when_parent_dies,
    )
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(proc)
        return f"timed out after {timeout:g} s (the sweep's timeout)"
    except BaseException:  # Ctrl-C: the run is in a session of its own, so stop it too
        _stop(proc)
        raise
    if proc.returncode in (0, SKIPPED_EXIT):
        return None
    return error_line(stderr) or f"hpcflow run exited with code {proc.returncode}"


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the run's process group (it drains), then SIGKILL what is left."""
    for sig, wait in ((signal.SIGTERM, GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.communicate(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue


def error_line(text: str) -> str | None:
    """The error `hpcflow run` reported (its last `hpcflow: error:` line), else the last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line.removeprefix(ERROR_PREFIX) for line in lines if line.startswith(ERROR_PREFIX)]
    return errors[-1] if errors else (lines[-1] if lines else None)


def cell_row(spec: SweepSpec, cell: Cell, run_dir: Path | None, error: str | None, seconds: float) -> dict[str, Any]:
    """The runs.jsonl row of a cell: its run's metrics (if it wrote any) and its keys."""
    metrics: dict[str, Any] = {}
    if run_dir is not None and (run_dir / "metrics.json").is_file():
        try:
            metrics = read_object(run_dir / "metrics.json", "the run's metrics") or {}
        except DamagedFile as exc:
            error = error or str(exc)
    row = {"sweep": spec.name, "workflow": spec.workflow, **metrics}
    row.update(params=cell.params, mapping=cell.mapping, cpus=cell.cpus, repeat=cell.repeat)
    if error is None and metrics.get("status") != "ok":
        error = "the run wrote no metrics" if not metrics else f"the run's status is {metrics.get('status')!r}"
    row["status"] = "ok" if error is None else "failed"
    if error is not None:
        row["error"] = error
    row["cell_s"] = round(seconds, 3)  # wall time of the whole cell, interpreter start included
    if run_dir is not None:
        row["run_dir"] = str(run_dir)
    row["recorded_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return row
