"""The worker loop: receive chunks, run them through the PEs, stream the outputs out
(engines/outbox.py), send back one report per batch.

A pool worker holds one copy of every PE the pool runs, created once (preprocess() once
per worker, no per-task copies); a pinned worker holds its PE instance and, when the run
has a pool (dyn_*, hybrid_*), a copy of every pool PE as well: with nothing of its own to
do it runs pool tasks, so a cheap producer or a waiting stateful instance does not cost a
whole process. Its own PE's state never leaves it. The loop is the same for every worker
and every transport: it only sees a `Channel`; the coordinator (or the streams it fills)
decides what each worker gets, its own work first.
"""

from __future__ import annotations

import multiprocessing
import signal
import time
import traceback
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess

from ..errors import PEError, RunAborted
from ..graph import WorkflowGraph
from ..invoke import Invoker
from ..lifeline import signal_when_parent_dies
from ..options import Options
from ..plan import Plan
from ..routing import Router
from ..snapshot import take_snapshot
from ..transports.base import Channel, ChannelClosed, is_pool, pool_pes
from .chain import Chain, ChainMask, chain_links
from .checkpoint import restore_instance
from .outbox import Outbox
from .protocol import BYE, FAILED, FINALIZE, READY, SNAPSHOT, STATE, STOP, WORK, Chunk, Report, chunk_id, loads

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
    """Entry point of a worker process; `hosts` are the (pe, instance) it runs (a pinned
    worker also runs the pool's PEs when its own queue is empty)."""
    parent = multiprocessing.parent_process()
    signal_when_parent_dies(signal.SIGKILL, parent.pid if parent else None)  # no worker is ever orphaned
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator handles signals and drains
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    channel.open()
    pe_index = {n: i for i, n in enumerate(plan.order)}
    links = chain_links(graph, plan, options.chain)
    out = Outbox(graph, Router(graph, plan), channel.service_s, pe_index, options.collect, channel)
    out.chain_mask = ChainMask(links, pe_index, channel.service_s)
    chain = Chain(links, pe_index, out.sink)
    pinned = not is_pool(plan, hosts)
    if pinned and plan.pool and options.help_pool:
        hosts = hosts + [(pe, 0) for pe in pool_pes(plan)]
    pes = []
    for name, instance in hosts:
        pe = graph.get(name)
        pe.instance = instance
        pes.append(pe)
    invoker = Invoker(pes, chain.sink, options.error_policy)
    chain.process = invoker.process
    before = invoker.items.copy()
    roots = set(plan.roots)
    prepared: set[str] = set()
    try:
        if pinned:  # a pinned instance: ready means preprocessed (and given its checkpointed state)
            invoker.preprocess(hosts[0][0])
            prepared.add(hosts[0][0])
            restore_instance(options.restore_from, pes[0])
        channel.send((READY, time.process_time()))
        while True:
            msg = out.receive()
            kind = msg[0]
            dropped: list[tuple[str, int]] = []
            if kind == WORK:
                before = invoker.items.copy()  # what this batch ran, if a PE fails in it
                needed = {pe for c in msg[1] for pe in (c.pe, *chain.pes(c.chain))}
                for pe in needed - prepared:  # a PE is prepared when this worker first runs it (or may chain into it)
                    invoker.preprocess(pe)
                    prepared.add(pe)
                stats = []
                for c in msg[1]:
                    out.begin(c.id, c.resume, c.pe, invoker.pes[c.pe].instance)
                    chain.begin(c.chain)
                    stats.append(_run_chunk(invoker, c) if c.pe not in roots else _run_root(invoker, c, out))
                    chain.check()
                    if stats[-1][1] < c.count:
                        dropped.append((c.pe, c.count - stats[-1][1]))
                done = [c.id for c in msg[1]]
            elif kind == FINALIZE:
                _, pe, instance = msg
                t0 = time.perf_counter()
                out.begin(chunk_id("postprocess", pe, instance), 0, pe, instance)
                chain.begin(0)
                invoker.postprocess(pe)
                stats = [(pe, 0, time.perf_counter() - t0)]
                done = []
            elif kind == SNAPSHOT:  # a checkpoint: this batch was the last before it
                channel.send((STATE, take_snapshot(pes[0]) if pinned else None))
                out.pause()
                continue
            elif kind == STOP:
                channel.send((BYE, time.process_time()))
                return
            else:
                raise ValueError(f"unknown message {kind!r}")
            errors, invoker.errors = invoker.errors, []
            report = Report(out.take(), stats, errors, time.process_time(), done, dropped, chain.take())
            channel.complete(report)
    except PEError as exc:  # with the items the failed batch ran (the failed one too): counted, not lost
        _say_failed(channel, exc, dict(invoker.items - before))
    except ChannelClosed:
        pass  # the coordinator is gone
    except Exception as exc:  # a fault of hpcflow itself: report it instead of dying silently
        where = ", ".join(f"{pe}[{i}]" for pe, i in hosts[:3])
        err = RunAborted(f"worker running {where} failed: {type(exc).__name__}: {exc}", tb=traceback.format_exc())
        _say_failed(channel, err, {})
    finally:
        channel.close()


def _say_failed(channel: Channel, err: Exception, items: dict[str, int]) -> None:
    try:
        channel.send((FAILED, err, items, time.process_time()))
    except ChannelClosed:
        pass  # nobody to tell: the coordinator is gone, or wrote this worker off (a node cut off)


def _run_chunk(invoker: Invoker, chunk: Chunk) -> tuple[str, int, float]:
    t0 = time.perf_counter()
    name = chunk.pe
    process = invoker.process
    for port, data in loads(chunk.blob):
        process(name, {port: data})
    return (name, chunk.count, time.perf_counter() - t0)


def _run_root(invoker: Invoker, chunk: Chunk, out: Outbox) -> tuple[str, int, float]:
    """A root's inputs in order; after a stop signal (a halting CREDIT) the rest is
    dropped, so a stopping run does not wait for a whole chunk of a fast producer whose
    outputs are slow to process."""
    t0 = time.perf_counter()
    feed = [{}] * chunk.count if chunk.blob is None else loads(chunk.blob)
    n = 0
    for inputs in feed:
        if out.halted:
            break
        invoker.process(chunk.pe, dict(inputs))
        n += 1
    return (chunk.pe, n, time.perf_counter() - t0)
