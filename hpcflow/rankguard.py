"""A parent for each rank under MPICH's hydra, so that a rank that dies is reported by hpcflow.

hydra's proxy ends every rank of the job (SIGKILL to each rank's process group) as soon
as one of the processes it started ends badly: a rank killed by the OOM killer or by
hand takes the whole job down within milliseconds, before rank 0 could notice the death
and write metrics.json (`-disable-auto-cleanup` does not help: the proxy then fails on
the dead rank's PMI socket). So under hydra `hpcflow run` forks before MPI starts: the
process hydra started becomes a guard that holds the rank's PMI socket and output pipes
open and waits, and the child is the rank. When the rank dies, hydra sees nothing; the
other ranks find it gone (mpi_liveness), rank 0 ends the run with one line naming it and
writes the metrics, and its exit is what ends the job.

hydra also ends every rank at once when one exits non-zero: rank 0 (the only rank whose
exit code `hpcflow run` makes non-zero for an interrupted or failed run) could take down
ranks still on their way out, and mpiexec would exit 9 instead of 143. So rank 0's guard
waits for the other ranks of its node to end before it exits.

The rank runs in a process group of its own, so a signal hydra forwards to the guard's
group (mpiexec got SIGTERM or Ctrl-C) reaches it once, through the guard; a signal sent
to the rank itself reaches it directly. The rank gets SIGKILL if the guard dies (hydra's
cleanup), so no rank outlives its job.
"""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING, Any

from .lifeline import signal_when_parent_dies
from .mpirun import FORWARDED

if TYPE_CHECKING:
    import psutil

# How long a guard whose rank died waits for the job to end (rank 0 finds the death
# within mpi_liveness.LIVENESS_S plus the item it is on, writes, and its exit ends the
# job) before it ends the job itself, as hydra would have at once.
AFTER_DEATH_S = 120.0

# How long rank 0's guard waits for the other ranks of its node to exit before it exits
# non-zero itself (they have finished the run with it: they only have to exit).
SIBLINGS_S = 10.0


def under_hydra() -> bool:
    """Whether this process is a rank that MPICH's hydra proxy started (not yet MPI-initialised)."""
    return "HYDI_CONTROL_FD" in os.environ and "PMI_RANK" in os.environ


def guard_rank() -> None:
    """Under hydra: fork; the child returns and runs as the rank, this process guards it
    and exits with its exit code (never returns). Elsewhere: nothing. Call it before
    mpi4py is imported and before any thread starts."""
    if not under_hydra():
        return
    child = os.fork()
    if child == 0:
        os.setpgid(0, 0)
        signal_when_parent_dies(signal.SIGKILL)
        return
    _guard(child)


def _guard(child: int) -> None:
    def forward(signum: int, frame: Any) -> None:
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    for sig in FORWARDED:
        signal.signal(sig, forward)
    _, status = os.waitpid(child, 0)
    if os.WIFSIGNALED(status):  # killed: hold the job until rank 0 has reported it and ended it
        deadline = time.monotonic() + AFTER_DEATH_S
        while time.monotonic() < deadline:
            time.sleep(1.0)
        os._exit(128 + os.WTERMSIG(status))
    code = os.waitstatus_to_exitcode(status)
    if code and os.environ.get("PMI_RANK") == "0":
        _wait_for_siblings()
    os._exit(code)


def _wait_for_siblings() -> None:
    """Until the other ranks hydra's proxy started on this node have exited (a guard whose
    rank died waits for the job's end: not for it), or SIBLINGS_S."""
    import psutil  # (only rank 0's guard under hydra, at its end: not at every start)

    proxy = psutil.Process(os.getppid())
    deadline = time.monotonic() + SIBLINGS_S
    while time.monotonic() < deadline:
        try:
            guards = [p for p in proxy.children() if p.pid != os.getpid()]
            if not any(_alive(rank) for guard in guards for rank in guard.children()):
                return
        except psutil.Error:
            pass  # a process ended while looked at: look again
        time.sleep(0.01)


def _alive(process: psutil.Process) -> bool:
    import psutil

    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
