"""Which ranks of an MPI job have died, as far as one rank can see: the ranks on its node.

MPI itself does not tell: a send to a dead rank is never matched and a receive from it
never comes, and under `srun` without --kill-on-bad-exit nothing else ends the job.
Every rank learns each rank's host and process at the start (one allgather) and then,
at most every LIVENESS_S seconds while it waits or between items, looks whether the
processes of the other ranks on its own host still exist. A process id could be reused
by a new process: its start time tells them apart. A zombie (killed, not yet reaped by
the launcher's proxy) counts as dead.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time

import psutil
from mpi4py import MPI

# How often a rank looks at its node's other ranks: the bound on how long a rank waits
# for a dead one on its node (plus the item it is on). Each look costs a few tens of
# microseconds per rank on the node.
LIVENESS_S = 0.5


def _start_time(pid: int) -> float | None:
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process.create_time()
    except psutil.Error:
        return None


class Liveness:
    """One rank's view of the other ranks on its host."""

    def __init__(self, comm: MPI.Comm, interval: float = LIVENESS_S):
        me = (socket.gethostname(), os.getpid(), _start_time(os.getpid()))
        everyone = comm.allgather(me)
        self.rank = comm.Get_rank()
        self._peers = {
            rank: (pid, started)
            for rank, (host, pid, started) in enumerate(everyone)
            if host == me[0] and rank != comm.Get_rank()
        }
        self.hosts = [host for host, _, _ in everyone]
        self.pids = [pid for _, pid, _ in everyone]
        self._started = [started for _, _, started in everyone]
        self._interval = interval
        self._next = time.monotonic() + interval
        self._dead: set[int] = set()
        self.claimed: int | None = None  # the dead rank whose report this rank claimed

    def check(self) -> set[int]:
        """The ranks of this host found dead since the last call (at most every interval)."""
        now = time.monotonic()
        if now < self._next:
            return set()
        self._next = now + self._interval
        found = {r for r, (pid, started) in self._peers.items() if r not in self._dead and _start_time(pid) != started}
        self._dead |= found
        return found

    def first_live_on_host_of(self, rank: int) -> int | None:
        """The lowest rank on `rank`'s host not known dead (None if none lives)."""
        host = self.hosts[rank]
        return next((r for r, h in enumerate(self.hosts) if h == host and r != rank and r not in self._dead), None)

    def claim_report_of(self, rank: int) -> bool:
        """Whether this rank is the one, of the live ranks on `rank`'s host, to say that
        `rank` died. The first to claim it is: a file made with O_EXCL in the node's temp
        directory, named by the dead process (so unique to this job). Choosing by the
        ranks' views of who lives races: the rank that said it leaves, and a rank that
        looks later finds it dead too and would say it again."""
        if self.hosts[rank] != socket.gethostname():
            return False
        try:
            os.close(os.open(self._claim_file(rank), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            return False
        except OSError:  # no writable temp directory: fall back on this rank's view
            return self.first_live_on_host_of(rank) == self.rank
        self.claimed = rank
        return True

    def reported(self) -> None:
        """The rank that claimed the report of a dead rank has written it (and leaves)."""
        if self.claimed is not None:  # a file of its own: the claim stays, or a late rank would claim again
            try:
                os.close(os.open(self._claim_file(self.claimed) + ".written", os.O_CREAT | os.O_WRONLY, 0o600))
            except OSError:
                pass

    def wait_for_report_of(self, rank: int, within: float) -> None:
        """Until the rank that claimed `rank`'s report has written it, at most `within`:
        the exit of a rank makes the launcher end the job, the reporting rank too."""
        done = self._claim_file(rank) + ".written"
        deadline = time.monotonic() + within
        while not os.path.exists(done) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _claim_file(self, rank: int) -> str:
        name = f"hpcflow-rank-died-{self.pids[rank]}-{int((self._started[rank] or 0) * 1e6)}"
        return os.path.join(tempfile.gettempdir(), name)
