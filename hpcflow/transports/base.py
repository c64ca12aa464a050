"""The transport interface: how the coordinator's scheduler and the workers exchange work.

The scheduler (engines/coordinator.py) decides *what* happens: which root is fed, which
PE is finalized, when the run ends, which pool worker is parked. A transport decides
*how* it travels, in two halves:

- a `Broker`, in the coordinator: holds (or points at) the queued chunks, starts local
  worker processes, and turns everything the workers say into `(worker id, message)`
  events, including `(EXITED, why)` when a worker is gone;
- a `Channel`, in each worker: the worker loop's only link to the run.

The shared-memory broker hands chunks to idle workers itself; on Redis the workers pull
from streams. Either way a worker's outputs leave as they are made (`Channel.deliver`),
and the acknowledgement of the chunks it ran travels with its report
(`Channel.complete`); a worker that dies mid-way has its chunks replayed, each carrying
how many of its writes were already delivered (`Chunk.resume`), so nothing is lost or
repeated (engines/README.md).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from multiprocessing.process import BaseProcess
from typing import Any

from ..engines.protocol import Chunk, Delivery, Report
from ..errors import RunAborted
from ..plan import Plan

MAX_REPLAYS = 2  # a chunk that killed this many workers is not given out again
DISPATCH_TARGET_S = 0.01  # work a pool worker gets at once: small enough to balance
REAP_WAIT_S = 10  # how long this node's exiting workers may take to end at close before they are killed


class ChannelClosed(Exception):
    """The coordinator (or the Redis server) is gone: the worker just exits."""


class Channel(ABC):
    """A worker's end of the transport."""

    service_s: Sequence[float]
    """Measured seconds per task of each PE (by `plan.order` index), kept current by the
    coordinator; sizes the chunks the worker makes."""

    @abstractmethod
    def open(self) -> None:
        """Called first in the worker process."""

    @abstractmethod
    def send(self, msg: tuple) -> None:
        """READY, FAILED or BYE to the coordinator."""

    @abstractmethod
    def receive(self, work: bool = True) -> tuple:
        """Block until the next WORK, FINALIZE, STOP or CREDIT message; with `work` False
        (a worker waiting for a CREDIT mid-batch) take no new work meanwhile."""

    @abstractmethod
    def deliver(self, deliveries: list[Delivery]) -> None:
        """Publish outputs made so far and tell the coordinator (an OUTPUT message), all
        or nothing."""

    @abstractmethod
    def complete(self, report: Report) -> None:
        """Publish `report.deliveries`, acknowledge the work just run and send the
        report, all or nothing."""

    @abstractmethod
    def close(self) -> None: ...


class Broker(ABC):
    """The coordinator's end of the transport."""

    pauses_pool = False
    """Whether a checkpoint must pause the pool workers too: true where workers move tasks
    between queues themselves (Redis), so the coordinator cannot see a running chunk's
    outputs and its queues at one moment."""

    lost: tuple[type[BaseException], ...] = ()
    """Errors that mean the transport itself is gone (a Redis server that died): the run
    stops with a clear error instead of a traceback or a hang."""

    def __init__(self) -> None:
        self.queued_by_pe: Counter[str] = Counter()
        """Tasks per PE waiting for a worker (on Redis: created and not yet completed)."""
        self.peak_queued = 0

    @property
    def queued(self) -> int:
        return sum(self.queued_by_pe.values())

    def count_queued(self, pe: str, n: int) -> None:
        self.queued_by_pe[pe] += n
        if n > 0:
            self.peak_queued = max(self.peak_queued, self.queued)

    @abstractmethod
    def open(self) -> None:
        """Prepare the run's queues before any worker starts."""

    @abstractmethod
    def close(self) -> None:
        """Release everything the run holds; called once, also after a failure."""

    @abstractmethod
    def new_worker_id(self) -> int: ...

    @abstractmethod
    def start_worker(self, wid: int, hosts: list[tuple[str, int]], name: str) -> None:
        """Start a local worker process for `hosts` (one pinned instance, or every pool PE)."""

    @abstractmethod
    def poll(self, timeout: float) -> list[tuple[int, tuple]]:
        """Events, waiting up to `timeout` seconds for the first: protocol messages from
        workers, `(EXITED, why)` for a worker gone (after every message it sent), and
        `(JOINED, group, host, pid)` for a worker that joined the run from elsewhere."""

    @abstractmethod
    def submit(self, chunk: Chunk) -> None:
        """Queue a chunk the scheduler made (a root's inputs)."""

    @abstractmethod
    def deliver(self, wid: int, chunks: list[Chunk]) -> None:
        """Outputs of a worker arrived (in an OUTPUT or a report): queue them (or count
        them, if the worker queued them itself)."""

    @abstractmethod
    def accept(self, wid: int, report: Report) -> None:
        """A worker's report arrived (after its outputs were delivered): the chunks it
        ran are done."""

    @abstractmethod
    def dispatch(self) -> None:
        """Give work to idle workers, for a broker that pushes."""

    @abstractmethod
    def send(self, wid: int, msg: tuple) -> None:
        """FINALIZE or STOP to one worker."""

    @abstractmethod
    def park(self, wid: int) -> None:
        """Give this pool worker no more work until `wake`."""

    @abstractmethod
    def wake(self, wid: int) -> None: ...

    @abstractmethod
    def idle_times(self, wids: list[int], now: float) -> dict[int, float | None]:
        """Seconds each worker has waited for work; None for one running a task."""

    @abstractmethod
    def recover(self, wid: int, why: str, delivered: Callable[[int], int]) -> None:
        """A pool worker died: queue its unfinished chunks again, each with `resume` set
        to `delivered(chunk id)`, the writes of it already delivered. Raises RunAborted
        for a chunk that was running in MAX_REPLAYS workers that died."""

    @abstractmethod
    def pending(self, delivered: Callable[[int], int]) -> list[Chunk]:
        """For a checkpoint: every chunk queued or held by a worker and not acknowledged,
        a held one with `resume` = `delivered(chunk id)`; in queue order per queue."""

    @abstractmethod
    def pid(self, wid: int) -> int | None:
        """The process id of a local worker (None for one that joined from elsewhere)."""

    @abstractmethod
    def publish_service(self, pe: str, seconds: float) -> None:
        """Tell the workers a PE's measured seconds per task."""

    @abstractmethod
    def kill(self, wids: list[int]) -> None:
        """Stop these workers at once (after a failure); their EXITED events follow."""

    def cpu_s(self) -> float:
        """CPU time of processes the broker runs besides the workers (a private server)."""
        return 0.0

    def metrics(self) -> dict[str, Any]:
        """Transport-specific figures for the run's metrics."""
        return {}


def replay_limit(chunk: Chunk, why: str) -> RunAborted:
    chained = " (or a PE it ran in a chain)" if chunk.chain else ""
    return RunAborted(
        f"a chunk of {chunk.count} item(s) for PE {chunk.pe}{chained} was running in {MAX_REPLAYS} workers "
        f"that died (last: {why}); not retrying it"
    )


def replay_of(chunk: Chunk, resume: int) -> Chunk:
    """A lost chunk queued again, resuming after its `resume` delivered writes. It chains
    as before if some writes were delivered (the same writes must be numbered the same);
    else not at all, so that if it kills again the PE is the chunk's own, and named."""
    return chunk._replace(resume=resume, chain=chunk.chain if resume else 0)


def is_pool(plan: Plan, hosts: list[tuple[str, int]]) -> bool:
    """Whether a worker hosting `hosts` is a pool worker (not one pinned instance)."""
    return not hosts or not plan.is_pinned(hosts[0][0])


def pool_pes(plan: Plan) -> list[str]:
    """The PEs a dynamic pool runs, in topological order."""
    return [n for n in plan.order if not plan.is_pinned(n)]


def reap(procs: Iterable[BaseProcess], wait_s: float = REAP_WAIT_S) -> None:
    """Wait for this node's worker processes to end, and kill those still there after
    `wait_s` in all: a worker that closed its pipe or said goodbye may still be exiting
    (its interpreter shutting down) when the run ends. No worker outlives its run."""
    deadline = time.perf_counter() + wait_s
    for proc in procs:
        proc.join(timeout=max(0.0, deadline - time.perf_counter()))
        if proc.is_alive():
            proc.kill()
            proc.join()
