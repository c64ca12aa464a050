"""The Redis surface of the command line: a server that cannot be used is one line and
exit 2 before the run starts; `--redis auto` runs end to end and leaves no key file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import redis
from conftest import ROOT

from hpcflow import UsageError, run
from hpcflow.batch.submit import make_job
from hpcflow.transports.redis.keys import RunKeys
from hpcflow.transports.redis.server import PrivateServer
from hpcflow.workflows.pipeline import build

pytestmark = pytest.mark.timeout(120)


def assert_one_line_exit_2(proc, text):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_unreachable_server_is_exit_2(cli):
    proc = cli("run", "pipeline", "--mapping", "dyn_redis", "--cpus", "2", "--redis-url", "redis://127.0.0.1:1/0")
    assert_one_line_exit_2(proc, "cannot reach Redis at 127.0.0.1:1")


def test_password_protected_server_without_password_is_exit_2(cli, redis_server):
    server = PrivateServer()
    try:
        proc = cli("run", "pipeline", "--mapping", "dyn_redis", "--redis-url", f"redis://127.0.0.1:{server.port}/0")
        assert_one_line_exit_2(proc, "needs a password")
    finally:
        server.stop()


def test_server_off_loopback_without_password_is_refused():
    graph, inputs, _ = build(items=10)
    with pytest.raises(UsageError, match="off loopback: it needs a password"):
        run(graph, inputs, "dyn_redis", 2, redis_url="redis://10.1.2.3:6379/0")


def test_worker_for_an_unknown_run_is_exit_2(cli, redis_server):
    proc = cli("worker", "--redis-url", redis_server, "--run", "nothing-here", "--wait", "0.3")
    assert_one_line_exit_2(proc, "no run nothing-here")


def test_run_with_a_private_server(cli, tmp_path, redis_server):
    run_dir = tmp_path / "r"
    proc = cli("run", "pipeline", "-p", "items=300", "--mapping", "hybrid_redis", "-p", "stateful=true",
               "--cpus", "6", "--redis", "auto", "--run-dir", str(run_dir), "--oversubscribe")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["mapping"] == "hybrid_redis" and metrics["redis"] == "private server"
    assert metrics["items"]["Source"] == 300
    assert not (run_dir / "run.key").exists()


def test_a_job_of_several_nodes_with_a_private_server_points_workers_at_the_run_directory(tmp_path):
    job = make_job(workflow="pipeline", mapping="dyn_redis", cpus=8, nodes=2, run_dir=tmp_path / "r", redis_url="auto")
    assert job.worker_command[-8:-2] == ("--redis-url", "auto", "--run", "r", "--run-dir", str(tmp_path / "r"))
    assert job.worker_command[-2:] == ("--cpus", "4")  # a node's CPUs: the launcher's plan counts them


def test_sigterm_stops_a_redis_run_with_a_checkpoint_and_deletes_its_keys(tmp_path, redis_server):
    run_dir = tmp_path / "term"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "hpcflow", "run", "pipeline", "-p", "items=100000", "-p", "latency=0.01",
           "-p", "stateful=true", "--mapping", "hybrid_redis", "--cpus", "6", "--oversubscribe",
           "--redis-url", redis_server, "--run-dir", str(run_dir)]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    r = redis.Redis.from_url(redis_server)
    deadline = time.monotonic() + 30
    while not r.keys(RunKeys("term").pattern) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # let items flow
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    metrics = json.loads((run_dir / "metrics.json").read_text())
    fed = metrics["items"]["Source"]
    assert 0 < fed < 100_000
    assert metrics["checkpoint_generation"] >= 1  # stopped with a checkpoint, not drained
    assert r.keys(RunKeys("term").pattern) == []
