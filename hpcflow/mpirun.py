"""Running under an MPI launcher (mpiexec, srun): detecting it, and re-launching through it.

Whether this process is one rank of an MPI job is read from the environment the launcher
sets, before mpi4py is imported: importing mpi4py initialises MPI, which a plain process
should not pay for, and which must not happen in a process that is about to re-launch
itself through mpiexec.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

from .errors import HpcflowError, UsageError
from .lifeline import signal_when_parent_dies

T = TypeVar("T")

# (size, rank) variables, by launcher: MPICH/Intel MPI (hydra), Open MPI, PMIx, srun.
# Only srun's step variables count: a batch script itself has SLURM_NTASKS and
# SLURM_PROCID=0 set without being one of several tasks.
_LAUNCHER_VARS = (
    ("PMI_SIZE", "PMI_RANK"),
    ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"),
    ("PMIX_SIZE", "PMIX_RANK"),
    ("SLURM_STEP_NUM_TASKS", "SLURM_PROCID"),
)


def launcher_size() -> int | None:
    """The number of processes the launcher started, or None when not started by one."""
    for size, rank in _LAUNCHER_VARS:
        if os.environ.get(size, "").isdigit() and os.environ.get(rank, "").isdigit():
            return int(os.environ[size])
    return None


def launcher_rank() -> int:
    """This process's rank as the launcher numbered it (0 when not started by one)."""
    for size, rank in _LAUNCHER_VARS:
        if os.environ.get(size, "").isdigit() and os.environ.get(rank, "").isdigit():
            return int(os.environ[rank])
    return 0


def find_mpiexec(python: str = sys.executable) -> str | None:
    """The mpiexec beside `python` (a virtualenv's, which a batch job may run without
    the virtualenv on PATH), else the one on PATH."""
    beside = Path(python).parent / "mpiexec"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("mpiexec")


def require_mpiexec(python: str = sys.executable) -> str:
    """find_mpiexec(), or the one-line error that bad input gets."""
    mpiexec = find_mpiexec(python)
    if mpiexec is None:
        raise UsageError(
            "mapping mpi needs an MPI launcher: start hpcflow under `mpiexec -n N` or `srun --mpi=pmi2 -n N`, "
            f"or install mpiexec beside {python} or on PATH (pip install mpich)"
        )
    return mpiexec


# Signals the re-launching process passes on to mpiexec, which passes them on to every rank.
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


def relaunch(argv: list[str], ranks: int, new_run_dir: Callable[[], Path]) -> NoReturn:
    """Run this same `hpcflow` command as `ranks` MPI ranks through mpiexec and exit with
    its exit code. Without --run-dir, the command gets an explicit new one, so that
    every rank agrees on it.

    This process stays as the job's face to the batch system: the signals it gets
    (SIGTERM before the walltime, Ctrl-C) go to mpiexec, which passes them to the
    ranks, which drain. mpiexec runs in a session of its own, so a Ctrl-C at a terminal
    reaches it once (through here), and it gets SIGTERM if this process dies even by
    SIGKILL, so no rank is left behind. (hydra ends every rank at once when one dies:
    each rank's guard, rankguard.py, hides the death until rank 0 has written; mpiexec
    then exits 9, and this process with the run's code, 1.)"""
    mpiexec = require_mpiexec()
    args = list(argv)
    run_dir = _run_dir_in(args)
    if run_dir is None:
        run_dir = new_run_dir()  # made here so that its name is unique...
        run_dir.rmdir()  # ...and left to rank 0 to make, which removes it if the workflow fails to load
        args += ["--run-dir", str(run_dir)]
    cmd = [mpiexec, "-n", str(ranks), sys.executable, "-m", "hpcflow", *args]
    print(f"hpcflow: re-launching through mpiexec: {shlex.join(cmd)}", file=sys.stderr, flush=True)
    child = subprocess.Popen(cmd, start_new_session=True, preexec_fn=signal_when_parent_dies)
    for sig in FORWARDED:
        signal.signal(sig, lambda signum, frame: child.send_signal(signum))
    code = child.wait()
    code = 128 - code if code < 0 else code  # killed by a signal: the shell's 128 + signal
    sys.exit(_run_exit_code(run_dir, code))


def _run_dir_in(args: list[str]) -> Path | None:
    for i, arg in enumerate(args):
        if arg == "--run-dir" and i + 1 < len(args):
            return Path(args[i + 1])
        if arg.startswith("--run-dir="):
            return Path(arg.partition("=")[2])
    return None


def _run_exit_code(run_dir: Path, code: int) -> int:
    """hpcflow's exit code for a run whose mpiexec exited `code`: mpiexec's own when it is
    one of ours; else (9: hydra killed the ranks left after one died and rank 0 wrote
    the metrics) 1 for a run whose metrics.json says failed."""
    if code in (0, 1, 2, 3, 130, 143):
        return code
    try:
        status = json.loads((run_dir / "metrics.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return code
    return 1 if status in ("failed", "stalled") else code


class SingleProcess:
    """The processes of one `hpcflow run` when it is a single process: it does everything."""

    writer = True

    def share(self, make: Callable[[], T]) -> T:
        return make()

    def agree(self, fn: Callable[[], T]) -> T:
        return fn()


class MpiRanks:
    """The processes of one `hpcflow run --mapping mpi`: every rank runs the command, rank 0
    writes the run directory and prints. A step that can fail on one rank only (a file
    that one node cannot read) is agreed on, so that every rank raises the same error and
    exits with the same code instead of some ranks waiting for the others forever."""

    def __init__(self) -> None:
        from mpi4py import MPI

        from .engines.mpi_channel import quiet_barrier

        self._comm = MPI.COMM_WORLD
        self._barrier = quiet_barrier
        self.writer = self._comm.Get_rank() == 0

    def share(self, make: Callable[[], T]) -> T:
        """Rank 0's `make()`, on every rank (its error on every rank, if it raised)."""
        value: T | None = None
        error: HpcflowError | None = None
        if self.writer:
            try:
                value = make()
            except Exception as exc:
                error = _portable(exc)
        self._barrier(self._comm)
        value, error = self._comm.bcast((value, error), root=0)
        if error is not None:
            raise error
        return value

    def agree(self, fn: Callable[[], T]) -> T:
        """`fn()` on every rank; if it raised on any rank, the lowest such rank's error on all."""
        value: T | None = None
        error: HpcflowError | None = None
        try:
            value = fn()
        except Exception as exc:
            error = _portable(exc)
        self._barrier(self._comm)
        first = next((e for e in self._comm.allgather(error) if e is not None), None)
        if first is not None:
            raise first
        return value


def _portable(exc: Exception) -> HpcflowError:
    """`exc` in a form that pickles to every rank: our own errors as they are, any other
    as a UsageError with its type and message."""
    if isinstance(exc, HpcflowError):
        return exc
    return UsageError(f"{type(exc).__name__}: {exc}")


def run_ranks(mapping: str) -> SingleProcess | MpiRanks:
    """Who does what in `hpcflow run`: MPI ranks for the mpi mapping under a launcher."""
    if mapping == "mpi" and launcher_size() is not None:
        return MpiRanks()
    return SingleProcess()
