"""`hpcflow worker`: join a running Redis run as pool workers, from any node.

The run's setup (graph, plan, options) is in its keys, signed; the key to check it comes
from `HPCFLOW_RUN_KEY`, a key file given here, or the key file the run wrote (which must
be this user's own and private). This process starts the workers and supervises them:
it keeps the group's heartbeat alive, so the coordinator can tell a lost node from a
slow one, and reports each worker that exits, after its connection closed, so the
coordinator replays what a dead one held. It returns when its workers are done, or when
the run's keys are gone.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import time
from multiprocessing.connection import wait
from pathlib import Path

from ...engines.protocol import EXITED
from ...engines.worker import start_worker_process
from ...errors import UsageError
from ...plan import DYNAMIC, HYBRID
from ..base import pool_pes
from .broker import await_disconnect
from .channel import RedisChannel, client
from .keys import HEARTBEAT_S, HEARTBEAT_TTL_MS, RunKeys, run_id_of
from .server import AUTO, connect
from .signing import Signer, key_from_env, read_key_file, read_private, url_file

log = logging.getLogger("hpcflow.redis")


def join_run(
    url: str,
    run_id: str,
    workers: int,
    key_file: str | None = None,
    wait_s: float = 60.0,
    run_dir: str | None = None,
) -> int:
    """Run `workers` pool workers in run `run_id` until it ends; the number that joined.
    With `url` "auto", the run's private server is found in its run directory
    (`run_dir`, by default runs/RUN_ID), which the nodes share."""
    if workers < 1:
        raise UsageError(f"--cpus must be at least 1, got {workers}")
    keys = RunKeys(run_id_of(run_id))
    deadline = time.monotonic() + wait_s
    if url == AUTO:
        url = _private_url(Path(run_dir) if run_dir else Path("runs") / run_id, deadline)
    connect(url).close()
    r = client(url, f"hpcflow-join-{socket.gethostname()}-{os.getpid()}")
    fields = _wait_for_setup(r, keys, deadline, wait_s)
    signer = Signer(_key(r, keys, key_file))
    ok, setup = signer.unpack(keys.setup, fields)
    if not ok:
        raise UsageError(f"run {run_id}'s setup is not signed with this key (a wrong HPCFLOW_RUN_KEY or key file?)")
    graph, plan, options = setup
    if plan.kind not in (DYNAMIC, HYBRID):
        raise UsageError(f"run {run_id} has no worker pool to join")
    group = f"{socket.gethostname()}-{os.getpid()}"
    r.set(keys.alive(group), 1, px=HEARTBEAT_TTL_MS)
    ctx = multiprocessing.get_context(options.resolved_start_method)
    pool = pool_pes(plan)
    work = [(keys.pool(pe), pe) for pe in reversed(pool)]
    hosts = [(pe, 0) for pe in pool]
    procs = {}
    for _ in range(workers):
        wid = r.incr(keys.ids) - 1
        channel = RedisChannel(url, run_id, signer.key, wid, work, False, plan.order, joined=group)
        procs[wid] = start_worker_process(ctx, channel, setup, hosts, f"hpcflow-joined-{wid}")
    log.info("joined run %s with %d worker(s) as %s", run_id, workers, group)
    try:
        _supervise(r, keys, signer, group, procs)
    finally:
        for proc in procs.values():
            if proc.is_alive():
                proc.kill()
        r.delete(keys.alive(group))
        r.close()
    return workers


def _supervise(r, keys: RunKeys, signer: Signer, group: str, procs: dict) -> None:
    live = {p.sentinel: wid for wid, p in procs.items()}
    while live:
        for sentinel in wait(list(live), timeout=HEARTBEAT_S):
            wid = live.pop(sentinel)
            proc = procs[wid]
            proc.join()
            code = proc.exitcode
            await_disconnect(r, keys.client(wid), 2.0)  # all it sent is applied before its EXITED
            why = f"signal {-code}" if code < 0 else f"exit code {code}"
            r.xadd(keys.events, signer.pack(keys.events, (wid, (EXITED, why))))
        if not r.exists(keys.setup) or not r.exists(keys.coordinator_alive):
            return  # the run is over, or its coordinator died
        r.set(keys.alive(group), 1, px=HEARTBEAT_TTL_MS)


def _private_url(run_dir: Path, deadline: float) -> str:
    path = url_file(run_dir / "run.key")
    while not path.exists():
        if time.monotonic() >= deadline:
            raise UsageError(f"no {path}: is the run started there with --redis auto?")
        time.sleep(0.2)
    return read_private(path, "Redis URL")


def _wait_for_setup(r, keys: RunKeys, deadline: float, wait_s: float) -> dict:
    while True:
        fields = r.hgetall(keys.setup)
        if fields:
            return fields
        if time.monotonic() >= deadline:
            raise UsageError(f"no run {keys.run_id} on this Redis server (waited {wait_s:g} s)")
        time.sleep(0.2)


def _key(r, keys: RunKeys, key_file: str | None) -> bytes:
    key = key_from_env()
    if key is not None:
        return key
    if key_file is None:
        advertised = r.get(keys.key_file)
        if advertised is None:
            raise UsageError("no run key: set HPCFLOW_RUN_KEY or give --key-file")
        key_file = advertised.decode()
    return read_key_file(key_file)
