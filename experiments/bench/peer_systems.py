"""Each system of `peers.py` running a workload in its idiomatic form.

A runner takes a `Workload` and returns a `Measured`: the raw outputs (checked by the
caller), the wall time of the work, the process time and the start-up time. Every
runner uses the workload's processes and nothing more (one thread a process).

- runtime: wall time from handing over the first item to holding every result. hpcflow,
  `multiprocessing.Pool` and dispel4py start their processes inside that time (their
  start is part of a run); Dask, Ray and Parsl are measured warm, as in a session
  that keeps a cluster: their cluster start and one 0.5 s task per worker (so that
  every worker process is running) are `startup_s`, outside the runtime.
- process time: hpcflow's `process_time_s` (the wall time its workers were active; a
  parked auto-scaled worker is not). For a peer, the wall time its worker processes
  were alive during the run: processes x runtime for a fixed pool (Pool, Ray, Parsl,
  dispel4py's static processes); for Dask, the sampled integral of its live workers,
  which is the same for a fixed cluster and follows the adaptive one as it starts and
  retires worker processes.
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import SimpleNamespace

from peer_workloads import Workload, apply, count_by_key

SAMPLE_S = 0.02  # how often the live Dask workers are counted


@dataclass
class Measured:
    outputs: list
    runtime_s: float
    process_time_s: float
    startup_s: float = 0.0
    processes: int = 0


def count_items(*items) -> dict:
    """The stateful tail as one task over every item (Dask, Ray and Parsl resolve futures
    given as positional arguments, not inside a list)."""
    return count_by_key(list(items))


WARM_S = 0.5  # a warm-up task holds its worker this long, so that every worker is started


def _warm() -> None:
    time.sleep(WARM_S)


def _fixed(outputs: list, t0: float, processes: int, startup_s: float = 0.0) -> Measured:
    runtime = time.perf_counter() - t0
    return Measured(outputs, runtime, processes * runtime, startup_s, processes)


def chained(w: Workload, batches: list[list], stages: list, submit: Callable[[object, list], list]) -> list:
    """How a futures system is handed the workload: each batch (a burst after its pause),
    every item through every stage with `submit(stage, inputs) -> futures of the outputs`,
    each stage's future the next one's input. The last stage's futures, in order."""
    futures: list = []
    for batch in batches:
        if w.bursts:
            time.sleep(w.pause)
        chain = batch
        for pe in stages:
            chain = submit(pe, chain)
        futures.extend(chain)
    return futures


# hpcflow ---------------------------------------------------------------------------


def run_hpcflow(w: Workload, mapping: str) -> Measured:
    from hpcflow import run

    graph, inputs = w.hpcflow_graph()
    t0 = time.perf_counter()
    result = run(graph, inputs, mapping, w.processes)
    runtime = time.perf_counter() - t0
    outputs = [x for ports in result.outputs.values() for items in ports.values() for x in items]
    return Measured(outputs, runtime, result.metrics.process_time_s, 0.0, w.processes)


# multiprocessing.Pool: chained imap ----------------------------------------------


def _paced(batches: list[list], pause: float, bursts: bool):
    for batch in batches:
        if bursts:
            time.sleep(pause)
        yield from batch


def run_pool(w: Workload, chunksize: int) -> Measured:
    batches = w.batches()
    t0 = time.perf_counter()
    with mp.get_context("fork").Pool(w.processes) as pool:
        stream = _paced(batches, w.pause, bool(w.bursts))
        for pe in w.stage_pes():
            stream = pool.imap(partial(apply, pe), stream, chunksize=chunksize)
        outputs = list(stream)
    if w.stateful:
        outputs = [count_by_key(outputs)]
    return _fixed(outputs, t0, w.processes)


# Dask distributed: futures on a LocalCluster of processes ---------------------------


class _LiveWorkers:
    """Integrates the number of live workers of a Dask cluster over time."""

    def __init__(self, count: Callable[[], int]):
        self.count = count
        self.total_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        last = time.perf_counter()
        while not self._stop.wait(SAMPLE_S):
            now = time.perf_counter()
            self.total_s += self.count() * (now - last)
            last = now

    def __enter__(self) -> _LiveWorkers:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_dask(w: Workload, adaptive: bool = False) -> Measured:
    import dask
    from dask.distributed import Client, LocalCluster

    # Dask's default 30 s comm timeouts drop the client on an overloaded machine (seen here
    # at a load average of 20 on 2 cores); a user on a busy login node would raise them too
    dask.config.set({"distributed.comm.timeouts.connect": "120s", "distributed.comm.timeouts.tcp": "300s"})
    s0 = time.perf_counter()
    workers = 0 if adaptive else w.processes
    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        if adaptive:
            cluster.adapt(minimum=0, maximum=w.processes)
        else:
            client.wait_for_workers(w.processes)
            client.gather([client.submit(_warm, pure=False) for _ in range(w.processes)])
        startup = time.perf_counter() - s0
        batches = w.batches()
        with _LiveWorkers(lambda: len(cluster.scheduler.workers)) as live:
            t0 = time.perf_counter()
            futures = chained(w, batches, w.stage_pes(), lambda pe, xs: client.map(partial(apply, pe), xs, pure=False))
            if w.stateful:
                futures = [client.submit(count_items, *futures, pure=False)]
            outputs = client.gather(futures)
            runtime = time.perf_counter() - t0
    return Measured(outputs, runtime, live.total_s, startup, w.processes)


# Ray: remote functions chained through object references ----------------------------


def run_ray(w: Workload) -> Measured:
    import ray

    s0 = time.perf_counter()
    ray.init(num_cpus=w.processes, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        remote_apply, remote_count = ray.remote(apply), ray.remote(count_items)
        ray.get([ray.remote(_warm).remote() for _ in range(w.processes)])  # Ray starts workers on demand
        startup = time.perf_counter() - s0
        stage_refs = [ray.put(pe) for pe in w.stage_pes()]
        batches = w.batches()
        t0 = time.perf_counter()
        refs = chained(w, batches, stage_refs, lambda pe, xs: [remote_apply.remote(pe, x) for x in xs])
        if w.stateful:
            refs = [remote_count.remote(*refs)]
        outputs = ray.get(refs)
        return _fixed(outputs, t0, w.processes, startup)
    finally:
        ray.shutdown()


# Parsl: python apps on the HighThroughputExecutor, local provider --------------------


def run_parsl(w: Workload) -> Measured:
    import parsl
    from parsl.app.app import python_app
    from parsl.config import Config
    from parsl.executors import HighThroughputExecutor
    from parsl.providers import LocalProvider

    s0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="peers-parsl-") as run_dir:
        executor = HighThroughputExecutor(
            label="htex",
            max_workers_per_node=w.processes,
            address="127.0.0.1",
            provider=LocalProvider(init_blocks=1, min_blocks=1, max_blocks=1),
        )
        dfk = parsl.load(Config(executors=[executor], run_dir=run_dir, strategy="none"))
        try:
            app_apply, app_count = python_app(apply), python_app(count_items)
            [f.result() for f in [python_app(_warm)() for _ in range(w.processes)]]
            startup = time.perf_counter() - s0
            batches = w.batches()
            t0 = time.perf_counter()
            futures = chained(w, batches, w.stage_pes(), lambda pe, xs: [app_apply(pe, x) for x in xs])
            if w.stateful:
                futures = [app_count(*futures)]
            outputs = [f.result() for f in futures]
            return _fixed(outputs, t0, w.processes, startup)
        finally:
            dfk.cleanup()
            parsl.clear()


# dispel4py: the same graph on its `multi` mapping -----------------------------------


def run_dispel4py(w: Workload) -> Measured:
    import peer_dispel4py
    from dispel4py.new import multi_process, processor

    with tempfile.TemporaryDirectory(prefix="peers-d4p-") as out_dir:
        graph, inputs = peer_dispel4py.build(w, out_dir)
        assigned = processor.assign_and_connect(graph, w.processes)
        if assigned is None:
            raise RuntimeError(f"dispel4py multi cannot run this graph on {w.processes} processes")
        started = sum(len(ranks) for ranks in assigned[0].values())
        t0 = time.perf_counter()
        error = multi_process.process(graph, inputs, SimpleNamespace(num=w.processes, simple=False, results=False))
        runtime = time.perf_counter() - t0
        if isinstance(error, str):
            raise RuntimeError(error)
        outputs = []
        for path in sorted(Path(out_dir).glob("*.pkl")):
            outputs.extend(pickle.loads(path.read_bytes()))
    return Measured(outputs, runtime, started * runtime, 0.0, started)


RUNNERS: dict[str, tuple[str, Callable[[Workload], Measured]]] = {
    "pool-c1": ("multiprocessing", partial(run_pool, chunksize=1)),
    "pool-c100": ("multiprocessing", partial(run_pool, chunksize=100)),
    "dask": ("distributed", run_dask),
    "dask-adaptive": ("distributed", partial(run_dask, adaptive=True)),
    "ray": ("ray", run_ray),
    "parsl": ("parsl", run_parsl),
    "dispel4py-multi": ("dispel4py", run_dispel4py),
}
"""Peer name -> (the module it needs, its runner)."""
