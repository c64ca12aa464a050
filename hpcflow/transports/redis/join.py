"""`hpcflow worker`: join a running Redis run as pool workers, from any node.

The run's setup (graph, plan, options) is in its keys, signed; the key to check it comes
from `HPCFLOW_RUN_KEY`, a key file given here, or the key file the run wrote (which must
be this user's own and private). This process gives each worker its id and lease
(`fenced`), starts the workers and supervises them: it keeps the group's heartbeat
alive, so the coordinator can tell a lost node from a slow one, and reports each worker
that exits, fencing it in the same step, so the coordinator replays what a dead one held
and nothing it still had on its way lands beside the replay. Losing the server for a
while is survived (the workers decide for themselves); it returns when its workers are
done, or when the run's keys are gone. Out of reach past the heartbeat's lifetime, the
node has been written off: it stops its workers and says so (exit 1), as it does when
the run's coordinator is gone before the run's end.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import time
from multiprocessing.connection import wait
from pathlib import Path

import redis

from ...engines.protocol import EXITED
from ...engines.worker import start_worker_process
from ...errors import RunAborted, UsageError
from ...plan import DYNAMIC, HYBRID
from ..base import pool_pes
from .channel import RedisChannel, client
from .fenced import REPORT_EXIT, flat, grant
from .keys import HEARTBEAT_S, HEARTBEAT_TTL_MS, RunKeys, run_id_of
from .server import AUTO, connect
from .signing import Signer, key_from_env, read_key_file, read_private, url_file

log = logging.getLogger("hpcflow.redis")
LOST = (redis.ConnectionError, redis.TimeoutError)
SUPERVISOR_TIMEOUT_S = 5.0  # a reply this late means the server is out of reach: try again next beat


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
    r = client(url, f"hpcflow-join-{socket.gethostname()}-{os.getpid()}", timeout_s=SUPERVISOR_TIMEOUT_S)
    fields = _wait_for_setup(r, keys, deadline, wait_s)
    signer = Signer(_key(r, keys, key_file), keys.run_id)
    setup = _setup(signer, keys, fields, run_id)
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
        token = grant(r, keys, wid)
        channel = RedisChannel(url, keys.run_id, signer.key, wid, token, work, False, plan.order, joined=group)
        procs[wid] = start_worker_process(ctx, channel, setup, hosts, f"hpcflow-joined-{wid}")
    log.info("joined run %s with %d worker(s) as %s", run_id, workers, group)
    try:
        _supervise(r, keys, signer, group, procs)
    finally:
        for proc in procs.values():
            if proc.is_alive():
                proc.kill()
            proc.join()
        try:
            r.delete(keys.alive(group))
        except LOST:
            pass  # it expires by itself
        r.close()
    return workers


def _setup(signer: Signer, keys: RunKeys, fields: dict, run_id: str) -> tuple:
    """The run's (graph, plan, options); a PE class this node cannot import is one clear
    UsageError naming its module."""
    try:
        ok, setup = signer.unpack(keys.setup, fields)
    except ImportError as exc:
        module = exc.name or str(exc)
        raise UsageError(
            f"run {run_id} needs module {module!r}, which this node cannot import: install the package that "
            f"provides it here (pip install ...), or put its directory on PYTHONPATH"
        ) from None
    except AttributeError as exc:
        raise UsageError(
            f"run {run_id} needs a PE class this node's version of its module lacks ({exc}): install the "
            "same version of the workflow's package here"
        ) from None
    if not ok:
        raise UsageError(f"run {run_id}'s setup is not signed with this key (a wrong HPCFLOW_RUN_KEY or key file?)")
    return setup


def _supervise(r, keys: RunKeys, signer: Signer, group: str, procs: dict) -> None:
    """Until the run ends: report each worker's exit, keep the group's heartbeat. A
    server out of reach for longer than the heartbeat's lifetime means the coordinator
    has written this node off (its workers' work is replayed elsewhere): the workers are
    stopped then, and the end is reported as it is (RunAborted), never as served."""
    live = {p.sentinel: wid for wid, p in procs.items()}
    report_exit = r.register_script(REPORT_EXIT)
    exits: list[tuple[int, str]] = []  # to report, kept while the server cannot be reached
    reached = time.monotonic()  # the last time the heartbeat was set
    unreachable = False
    while live or exits:
        for sentinel in wait(list(live), timeout=HEARTBEAT_S if live else 0):
            wid = live.pop(sentinel)
            proc = procs[wid]
            proc.join()
            code = proc.exitcode
            exits.append((wid, f"signal {-code}" if code < 0 else f"exit code {code}"))
        try:
            while exits:
                wid, why = exits[0]
                fields = signer.pack(keys.events, (wid, (EXITED, why)))
                report_exit(keys=[keys.lease(wid), keys.setup, keys.events], args=flat(fields))
                exits.pop(0)
            if not r.exists(keys.setup):
                return  # the run is over
            if not r.exists(keys.coordinator_alive):
                time.sleep(HEARTBEAT_S)  # the run's keys may be going: a run that ends deletes them all
                if r.exists(keys.setup):
                    raise RunAborted(
                        f"run {keys.run_id}'s coordinator stopped answering (its heartbeat expired) before the run "
                        "ended; this node's workers stop"
                    )
                return
            r.set(keys.alive(group), 1, px=HEARTBEAT_TTL_MS)
            reached = time.monotonic()
            if unreachable:
                log.warning("reached the Redis server again")
                unreachable = False
        except LOST as exc:
            if not unreachable:
                log.warning("cannot reach the Redis server (%s); the workers go on, and so does this", exc)
                unreachable = True
            if not live:
                return  # they ended by themselves (as at the run's end, when a private server goes too)
            away = time.monotonic() - reached
            if away * 1000 > HEARTBEAT_TTL_MS:
                raise RunAborted(
                    f"cannot reach run {keys.run_id}'s Redis server for {away:.0f} s ({type(exc).__name__}): "
                    "its coordinator writes this node's workers off after "
                    f"{HEARTBEAT_TTL_MS / 1000:g} s and replays their work elsewhere; whether the run ended is not "
                    "known here; this node's workers stop"
                ) from None


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
