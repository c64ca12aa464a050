"""The worker loop: receive chunks, run them through the PEs, send back one report.

A pool worker holds one copy of every PE the pool runs, created once (preprocess() once
per worker, no per-task copies); a pinned worker holds one PE instance. The loop is the
same for both, and for every transport: it only sees a `Channel`; the coordinator (or
the streams it fills) decides what each worker gets.
"""

from __future__ import annotations

import ctypes
import signal
import time
import traceback
from collections import defaultdict
from collections.abc import Sequence
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Any

from ..errors import PEError, RunAborted
from ..graph import WorkflowGraph
from ..invoke import Invoker, short_repr
from ..options import Options
from ..pe import GenericPE
from ..plan import Plan
from ..routing import Router
from ..transports.base import Channel, ChannelClosed
from .protocol import BYE, FAILED, FINALIZE, READY, STOP, WORK, Chunk, Report, chunk_limit, dumps, loads


class OutputBuffer:
    """Routes what the PEs write and packs it into chunks per destination."""

    def __init__(
        self, graph: WorkflowGraph, router: Router, service_s: Sequence[float], pe_index: dict[str, int], collect: bool
    ):
        self.graph = graph
        self.router = router
        self.service_s = service_s  # kept current by the channel (the coordinator measures)
        self.pe_index = pe_index
        self.collect = collect
        self.buckets: dict[tuple[str, int | None], list] = defaultdict(list)
        self.sinks: dict[tuple[str, str], list] = defaultdict(list)

    def sink(self, pe: str, port: str, data: Any) -> None:
        dests = self.router.route(pe, port, data)
        if not dests:
            if self.collect:
                self.sinks[(pe, port)].append(data)
            return
        for d in dests:
            self.buckets[(d.pe, d.instance)].append((d.port, data))

    def take(self, writers: list[GenericPE]) -> tuple[list[Chunk], list[tuple[str, str, bytes]]]:
        """The buffered outputs, pickled; `writers` are the PEs that wrote them, named in
        the PEError raised for an output that cannot be pickled."""
        try:
            chunks = []
            for (pe, inst), items in self.buckets.items():
                size = chunk_limit(self.service_s[self.pe_index[pe]])
                for i in range(0, len(items), size):
                    part = items[i : i + size]
                    chunks.append(Chunk(pe, inst, len(part), dumps(part)))
            sinks = [(pe, port, dumps(items)) for (pe, port), items in self.sinks.items()]
        except Exception:
            raise self._unpicklable(writers) from None
        finally:
            self.buckets.clear()
            self.sinks.clear()
        return chunks, sinks

    def _unpicklable(self, writers: list[GenericPE]) -> PEError:
        """The error for the first output that cannot be pickled, naming the PE that wrote
        it: the PE of an unconnected port, or the writer upstream of the stream it was on."""
        ran = {pe.name: pe for pe in writers}
        written = [(pe, port, data, True) for (pe, port), items in self.sinks.items() for data in items]
        for (dst, _), items in self.buckets.items():
            written += [(dst, port, data, False) for port, data in items]
        for pe, port, data, by_pe in written:
            try:
                dumps(data)
            except Exception as exc:
                if not by_pe:  # (pe, port) is where it was going: find who wrote it
                    ups = sorted((e.src, e.src_port) for e in self.graph.edges if (e.dst, e.dst_port) == (pe, port))
                    pe, port = next(((src, p) for src, p in ups if src in ran), ups[0])
                writer = ran.get(pe)
                return PEError(
                    pe,
                    writer.instance if writer is not None else None,
                    "<sending outputs>",
                    f"an item written to port {port!r} cannot be pickled to pass it to another process "
                    f"({short_repr(data)}): {type(exc).__name__}: {exc}",
                    traceback.format_exc(),
                )
        what = "its outputs cannot be pickled to pass them to another process"
        return PEError(", ".join(ran) or "?", None, "<sending outputs>", what)


def _die_with_parent() -> None:
    """Linux: get SIGKILL if the parent dies, so no worker is ever orphaned."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


Setup = tuple[WorkflowGraph, Plan, Options]  # what every worker of a run is given


def start_worker_process(
    ctx: BaseContext, channel: Channel, setup: Setup, hosts: list[tuple[str, int]], name: str
) -> BaseProcess:
    """Start a worker process for `hosts` talking over `channel` (any transport)."""
    graph, plan, options = setup
    proc = ctx.Process(target=worker_main, args=(channel, graph, plan, options, hosts), name=name, daemon=True)
    proc.start()
    return proc


def worker_main(
    channel: Channel,
    graph: WorkflowGraph,
    plan: Plan,
    options: Options,
    hosts: list[tuple[str, int]],
) -> None:
    """Entry point of a worker process; `hosts` are the (pe, instance) it runs."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator handles signals and drains
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    channel.open()
    pe_index = {n: i for i, n in enumerate(plan.order)}
    out = OutputBuffer(graph, Router(graph, plan), channel.service_s, pe_index, options.collect)
    pes = []
    for name, instance in hosts:
        pe = graph.get(name)
        pe.instance = instance
        pes.append(pe)
    invoker = Invoker(pes, out.sink, options.error_policy)
    roots = set(plan.roots)
    prepared: set[str] = set()
    try:
        if len(hosts) == 1:  # a pinned instance: ready means preprocessed
            invoker.preprocess(hosts[0][0])
            prepared.add(hosts[0][0])
        channel.send((READY, time.process_time()))
        while True:
            msg = channel.receive()
            kind = msg[0]
            if kind == WORK:
                for pe in {c.pe for c in msg[1]} - prepared:  # a pool worker prepares a PE when it first runs it
                    invoker.preprocess(pe)
                    prepared.add(pe)
                stats = [_run_chunk(invoker, c, c.pe in roots) for c in msg[1]]
            elif kind == FINALIZE:
                t0 = time.perf_counter()
                invoker.postprocess(msg[1])
                stats = [(msg[1], 0, time.perf_counter() - t0)]
            elif kind == STOP:
                channel.send((BYE, time.process_time()))
                return
            else:
                raise ValueError(f"unknown message {kind!r}")
            chunks, sinks = out.take([invoker.pes[pe] for pe, _, _ in stats])
            errors, invoker.errors = invoker.errors, []
            channel.complete(Report(chunks, sinks, stats, errors, time.process_time()))
    except PEError as exc:
        channel.send((FAILED, exc, time.process_time()))
    except ChannelClosed:
        pass  # the coordinator is gone
    except Exception as exc:  # a fault of hpcflow itself: report it instead of dying silently
        where = ", ".join(f"{pe}[{i}]" for pe, i in hosts[:3])
        err = RunAborted(f"worker running {where} failed: {type(exc).__name__}: {exc}", tb=traceback.format_exc())
        channel.send((FAILED, err, time.process_time()))
    finally:
        channel.close()


def _run_chunk(invoker: Invoker, chunk: Chunk, root: bool) -> tuple[str, int, float]:
    t0 = time.perf_counter()
    name = chunk.pe
    if root:
        feed = [{}] * chunk.count if chunk.blob is None else loads(chunk.blob)
        for inputs in feed:
            invoker.process(name, dict(inputs))
    else:
        process = invoker.process
        for port, data in loads(chunk.blob):
            process(name, {port: data})
    return (name, chunk.count, time.perf_counter() - t0)
