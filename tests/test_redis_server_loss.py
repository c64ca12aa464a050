"""Losing the Redis server under `hpcflow run`, at seeded random moments: killed, restarted
empty at once, paused (SIGSTOP) and let go, or killed just before or just after a SIGTERM
to the launcher (so during the stop's checkpoint). Whatever the moment, the run ends `ok` with the exact
result, or ends with one clear error line, metrics.json and status.json agreeing on a
non-ok status, and `hpcflow resume` (with a server back on the same address) finishes
with the exact result.

The seed is printed; HPCFLOW_FAULT_SEED=N replays one, HPCFLOW_LOSS_SCHEDULES=N runs more.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis
from conftest import require
from test_checkpoint_resume import Runs, assert_exact, expected, finish, running, wait_until
from wordcount_workflow import outputs_of

from hpcflow.transports import find_server_binary

pytestmark = pytest.mark.timeout(600)

SCHEDULES = int(os.environ.get("HPCFLOW_LOSS_SCHEDULES", "4"))
FAULTS = ("kill", "pause", "kill then SIGTERM", "SIGTERM then kill", "restarted empty")
MAX_RESUMES = 3


class Server:
    """A redis-server of the test's own on a fixed loopback port, so that one started
    again after a kill has the address the run recorded."""

    def __init__(self, workdir: Path):
        binary = find_server_binary()
        require(binary is not None, "redis-server")
        self.binary, self.workdir = binary, workdir
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(
            [*args, "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline and self.proc.poll() is None, "redis-server did not start"
                time.sleep(0.05)
        client.close()

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)  # a paused one too
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def cont(self) -> None:
        self.proc.send_signal(signal.SIGCONT)


@pytest.fixture
def server(tmp_path):
    made = Server(tmp_path)
    made.start()
    yield made
    made.kill()


@pytest.fixture
def runs(server):
    started = Runs(server.url)
    yield started
    started.close()


def clear_end(proc: subprocess.Popen, run_dir: Path) -> tuple[int, str]:
    """The run's end, checked: ok, or one error line with metrics.json and status.json
    saying the same non-ok status. (exit code, status)."""
    out, err = proc.communicate(timeout=300)
    assert "Traceback" not in err, err
    metrics = json.loads((run_dir / "metrics.json").read_text())
    state = json.loads((run_dir / "status.json").read_text())["state"]
    assert metrics["status"] == state, f"metrics.json says {metrics['status']}, status.json {state}"
    if proc.returncode == 0:
        assert state == "ok", err
        return 0, state
    # the last word: an error, or a stop by a signal (said as what happened, not as an error)
    errors = [line for line in err.splitlines() if line.startswith(("hpcflow: error: ", "hpcflow: stopped by "))]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err
    assert state in ("failed", "interrupted") and proc.returncode in (1, 143), (proc.returncode, state, err)
    return proc.returncode, state


def schedule(seed: int, run_dir: Path, server: Server, runs: Runs) -> str:
    """One seeded server loss, then resumes until done; what happened, for the report."""
    rng = random.Random(seed)
    fault = rng.choice(FAULTS)
    interval = rng.choice(("0.3", "1"))
    proc = runs.run(run_dir, "hybrid_redis", "--checkpoint-interval", interval)
    wait_until(lambda: running(run_dir, proc), proc, "status.json of the run")
    time.sleep(rng.uniform(0.1, 3.0))  # the random moment itself
    gap = rng.uniform(0.0, 0.4)
    if fault == "kill":
        server.kill()
    elif fault == "restarted empty":  # as a service manager would: same address, no data
        server.kill()
        server.start()
    elif fault == "pause":
        server.pause()
        time.sleep(rng.uniform(0.5, 3.0))
        server.cont()
    elif fault == "kill then SIGTERM":
        server.kill()
        time.sleep(gap)
        proc.send_signal(signal.SIGTERM)
    else:  # during the stop: while its checkpoint is taken, or after it
        proc.send_signal(signal.SIGTERM)
        time.sleep(gap)
        server.kill()
    code, state = clear_end(proc, run_dir)
    story = f"seed {seed}: {fault} (interval {interval}, gap {gap:.2f} s) -> {state}"
    if server.proc is None:
        server.start()
    for _ in range(MAX_RESUMES):
        if code == 0:
            break
        code, state = clear_end(runs.resume(run_dir), run_dir)
        story += f", resume -> {state}"
    assert code == 0, story
    assert_exact(run_dir, expected())
    return story


def test_redis_server_loss_at_random_moments_ends_clearly_and_resumes_exactly(tmp_path, server, runs):
    base = int(os.environ.get("HPCFLOW_FAULT_SEED", random.randrange(10**6)))
    print(f"HPCFLOW_FAULT_SEED={base}")
    seeds = [base] if "HPCFLOW_FAULT_SEED" in os.environ else [base + i for i in range(SCHEDULES)]
    for seed in seeds:
        print(schedule(seed, tmp_path / f"run-loss-{seed}", server, runs))


def test_a_server_paused_for_good_ends_the_run_clearly_and_it_resumes(tmp_path, server, runs):
    """A server that stops answering (SIGSTOP, never let go) is noticed by the socket
    timeout: the run fails with one line, and resumes once a server answers again."""
    run_dir = tmp_path / "run-paused"
    proc = runs.run(run_dir, "hybrid_redis", "--checkpoint-interval", "0.5")
    wait_until(lambda: running(run_dir, proc), proc, "status.json of the run")
    time.sleep(1.0)
    server.pause()
    code, state = clear_end(proc, run_dir)
    assert (code, state) == (1, "failed")
    assert "lost the Redis server" in (run_dir / "metrics.json").read_text()
    server.kill()
    server.start()
    finish(runs.resume(run_dir))
    assert outputs_of(run_dir / "outputs.jsonl") == expected()
