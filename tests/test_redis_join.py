"""`hpcflow worker` joins a running Redis run from another process group (as it would
from another node): its workers share the run's work and are counted in its metrics,
and the entries a joined worker held when it died are replayed."""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
import redis
from conftest import ROOT
from graphs import Count, chain

from hpcflow import IterativePE, run

pytestmark = pytest.mark.timeout(120)


class WhoRuns(IterativePE):
    """Emits (item, parent pid): the test process for local workers, the `hpcflow worker`
    process for joined ones. Kills its own process once, on item `kill_at`, if joined."""

    def __init__(self, coordinator_pid, sleep=0.02, kill_at=None, marker=None):
        super().__init__()
        self.coordinator_pid = coordinator_pid
        self.sleep = sleep
        self.kill_at = kill_at
        self.marker = marker

    def _process(self, x):
        time.sleep(self.sleep)
        joined = os.getppid() != self.coordinator_pid
        if joined and self.kill_at is not None and x >= self.kill_at and first(self.marker):
            os.kill(os.getpid(), 9)
        return (x, os.getppid())


def first(marker: str) -> bool:
    """True for the one process that creates `marker` (atomically: two joined workers
    may get there at once)."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def start_joiner(url, run_id, cpus=2, prefix=(), env=None):
    """`hpcflow worker` in a process of its own, connected before the run starts;
    `prefix` runs it elsewhere (`ip netns exec NS`), with `env` added to its environment."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]), **(env or {})}
    args = [
        *prefix,
        sys.executable,
        "-m",
        "hpcflow",
        "worker",
        "--redis-url",
        url,
        "--run",
        run_id,
        "--cpus",
        str(cpus),
    ]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    r = redis.Redis.from_url(url)
    deadline = time.monotonic() + 30
    while not any(c["name"].startswith("hpcflow-join-") for c in r.client_list()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "hpcflow worker did not connect"
        time.sleep(0.05)
    return proc


@pytest.fixture
def run_key(monkeypatch):
    """The run's key, shared through the environment as a batch job would."""
    monkeypatch.setenv("HPCFLOW_RUN_KEY", secrets.token_hex(32))


def test_joined_workers_share_the_work(redis_server, run_key):
    joiner = start_joiner(redis_server, "join-share")
    src = Count()
    graph = chain(src, WhoRuns(os.getpid()))
    result = run(graph, {src: 150}, "dyn_redis", 2, redis_url=redis_server, run_id="join-share")
    _, err = joiner.communicate(timeout=60)
    assert joiner.returncode == 0, err
    out = result.output("WhoRuns")
    assert sorted(x for x, _ in out) == list(range(1, 151))
    by_parent = Counter(parent for _, parent in out)
    assert by_parent[joiner.pid] > 0, "the joined workers did no work"
    m = result.metrics
    assert m.workers_joined == 2 and m.workers_started == 2 + 2
    assert m.worker_hosts == {socket.gethostname(): 2 + 2}  # on 3 hosts: tests/test_multinode_slurm.py
    assert m.process_time_s > 0 and m.cpu_time_s > 0


def test_a_dead_joined_workers_entries_are_replayed(redis_server, run_key, tmp_path):
    marker = tmp_path / "killed"
    joiner = start_joiner(redis_server, "join-kill")
    src = Count()
    graph = chain(src, WhoRuns(os.getpid(), kill_at=20, marker=str(marker)))
    result = run(graph, {src: 120}, "dyn_redis", 2, redis_url=redis_server, run_id="join-kill")
    joiner.communicate(timeout=60)
    assert marker.exists(), "no joined worker was killed"
    assert sorted(x for x, _ in result.output("WhoRuns")) == list(range(1, 121))
    assert result.metrics.workers_replaced == 1


def test_worker_finds_a_private_server_through_the_run_directory(cli, tmp_path, redis_server):
    """`--redis auto` in a job of several nodes: the launcher's private server is found
    through the shared run directory (URL and key files, private to the user)."""
    run_dir = tmp_path / "multi"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    joiner = subprocess.Popen(
        [sys.executable, "-m", "hpcflow", "worker", "--redis-url", "auto", "--run", "multi",
         "--run-dir", str(run_dir), "--cpus", "2"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    proc = cli("run", "pipeline", "-p", "items=200", "-p", "latency=0.01", "--mapping", "dyn_redis",
               "--cpus", "2", "--redis", "auto", "--run-dir", str(run_dir))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    _, err = joiner.communicate(timeout=60)
    assert joiner.returncode == 0, err
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["workers_joined"] == 2 and metrics["items"]["Stage2"] == 200
    assert not (run_dir / "run.key").exists() and not (run_dir / "redis.url").exists()


def test_a_node_that_cannot_import_the_pes_says_which_module(redis_server, run_key):
    """The PE classes live in the tests directory, which this `hpcflow worker` lacks."""
    src = Count()
    graph = chain(src, WhoRuns(os.getpid(), sleep=0.05))
    runner = threading.Thread(target=run, args=(graph, {src: 200}, "dyn_redis", 2),
                              kwargs=dict(redis_url=redis_server, run_id="join-import"))  # fmt: skip
    runner.start()
    try:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        args = ["worker", "--redis-url", redis_server, "--run", "join-import", "--cpus", "1", "--wait", "60"]
        proc = subprocess.run([sys.executable, "-m", "hpcflow", *args], env=env, capture_output=True, text=True,
                              timeout=90)  # fmt: skip
    finally:
        runner.join(90)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert re.search(r"needs module '(graphs|test_redis_join)'.*install", lines[0]), lines[0]
