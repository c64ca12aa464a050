"""One run of the latency-bound workload on dispel4py's own `mpi` mapping, for
mpi_overhead.py --latency-bound --peer: run it as every rank of an MPI job,

    mpiexec -n 16 python experiments/bench/peer_dispel4py_mpi.py OUT.json [ITEMS]

The graph is peer_dispel4py.py's form of peer_workloads.py's `latency` workload (the same
items and the same Beta(2,5) sleeps as hpcflow's `pipeline`); dispel4py places it as it
does (one rank per instance: the source on one rank, the other ranks split between the
two stages, any left over idle). The runtime is measured as hpcflow's `mpi` measures its
own: every rank meets the others, notes the time, runs dispel4py's `process()`, notes
the time again; runtime = the last end - the first start. Rank 0 writes the runtime,
the rank count, and whether the last stage's outputs are the workload's expected ones.

One thing is changed in dispel4py's run: its end-of-stream `isend`s drop their requests,
and under mpi4py 4 a dropped request frees the message's buffer while MPICH may still
be sending it (a consumer then fails with "pickle data was truncated"); `_KeepRequests`
keeps every request until the run ends, which is what the MPI standard asks of the caller.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import pickle
import shutil
import sys
import tempfile
import time
import types
from pathlib import Path

from dispel4py.new import mpi_process  # noqa: E402  (sets an excepthook that aborts the job on an error)
from mpi4py import MPI

sys.path.insert(0, str(Path(__file__).parent))
import peer_dispel4py  # noqa: E402
from peer_workloads import result_of, workloads  # noqa: E402


class _KeepRequests:
    """COMM_WORLD for dispel4py, but keeping the request of every isend."""

    def __init__(self, comm: MPI.Comm):
        self._comm = comm
        self.requests: list[MPI.Request] = []

    def isend(self, *args, **kwargs) -> MPI.Request:
        request = self._comm.isend(*args, **kwargs)
        self.requests.append(request)
        return request

    def __getattr__(self, name: str):
        return getattr(self._comm, name)


def main() -> None:
    comm = MPI.COMM_WORLD
    mpi_process.comm = kept = _KeepRequests(comm)
    workload = next(w for w in workloads(quick=False) if w.name == "latency")
    if len(sys.argv) > 2:  # a smaller run (the tests')
        workload = dataclasses.replace(workload, items=int(sys.argv[2]))
    out_dir = comm.bcast(tempfile.mkdtemp(prefix="hpcflow-mp-d4p-") if comm.rank == 0 else None, root=0)
    graph, inputs = peer_dispel4py.build(workload, out_dir)
    comm.Barrier()
    start = time.time()
    with contextlib.redirect_stdout(io.StringIO()):  # dispel4py prints its placement and counts
        mpi_process.process(graph, inputs, types.SimpleNamespace(simple=False))
    end = time.time()
    MPI.Request.Waitall(kept.requests)
    times = comm.gather((start, end), root=0)
    comm.Barrier()  # every rank's postprocess() has saved its outputs
    if comm.rank == 0:
        outputs = [item for path in Path(out_dir).glob("*.pkl") for item in pickle.loads(path.read_bytes())]
        shutil.rmtree(out_dir)
        runtime = max(e for _, e in times) - min(s for s, _ in times)
        correct = result_of(workload, outputs) == workload.expected()
        Path(sys.argv[1]).write_text(json.dumps({"runtime_s": runtime, "processes": comm.size, "correct": correct}))


if __name__ == "__main__":
    main()
