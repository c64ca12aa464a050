"""A launcher killed outright (SIGKILL) leaves its run key, its server URL and its private
server's temporary folder behind, no process; the next run removes them. A live run's
files are never touched."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest
from conftest import ROOT, require

from hpcflow.transports import find_server_binary
from hpcflow.transports.redis.leftovers import sweep_run_dir
from hpcflow.transports.redis.signing import url_file, write_key_file

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("no_leftover_processes")]
WAIT_S = 60


def hpcflow(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "hpcflow", *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def wait_for(check, what):
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen within {WAIT_S} s"
        time.sleep(0.05)


def server_dir_of(launcher: psutil.Process) -> str:
    for child in launcher.children(recursive=True):
        if child.name() == "redis-server":
            return child.cwd()  # it works in its --dir (and rewrites its command line)
    raise AssertionError("the launcher runs no private redis-server")


def test_sigkilled_launcher_leftovers_go_with_the_next_run(tmp_path):
    require(find_server_binary() is not None, "redis-server")
    run_dir = tmp_path / "run"
    args = ["run", "pipeline", "-p", "latency=0.01", "--mapping", "dyn_redis", "--cpus", "2", "--redis", "auto"]
    launcher = hpcflow(*args, "-p", "items=100000", "--run-dir", str(run_dir), cwd=tmp_path)
    proc = psutil.Process(launcher.pid)
    try:
        wait_for(lambda: url_file(run_dir / "run.key").exists(), "the run's start")
        server_dir = server_dir_of(proc)
    finally:
        family = proc.children(recursive=True)
        launcher.kill()
        launcher.communicate()
    _, alive = psutil.wait_procs(family, timeout=WAIT_S)  # the server and workers die with it
    assert not alive, f"left running: {alive}"
    assert (run_dir / "run.key").exists() and (run_dir / "redis.url").exists() and os.path.isdir(server_dir)

    again = hpcflow(*args, "-p", "items=20", "--run-dir", str(run_dir), cwd=tmp_path)
    _, err = again.communicate(timeout=WAIT_S)
    assert again.returncode == 0, err.decode()
    assert not os.path.exists(server_dir), "the killed run's server folder is still there"
    assert not (run_dir / "run.key").exists() and not (run_dir / "redis.url").exists()


def test_a_live_runs_key_is_kept_and_a_dead_ones_removed(tmp_path):
    key = tmp_path / "run.key"
    write_key_file(key, b"k" * 32)
    url_file(key).write_text("redis://:secret@127.0.0.1:1/0\n")
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import sys; from hpcflow.transports.redis.leftovers import hold; hold({str(key)!r}); "
         "print('held', flush=True); sys.stdin.read()"],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    sweep_run_dir(key)
    assert key.exists() and url_file(key).exists(), "a live run's key was removed"
    holder.kill()
    holder.communicate()
    sweep_run_dir(key)
    assert not key.exists() and not url_file(key).exists()
