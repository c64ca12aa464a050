"""No secret in a run directory's files: a run on a password-protected redis-server with
HPCFLOW_RUN_KEY set, stopped by SIGTERM after a checkpoint, leaves neither the password
nor the key in any file under RUN_DIR (run.json, metrics.json, status.json, run.log, the
checkpoint); `hpcflow resume` asks for the password again with one line, and with it
finishes the run exactly. A submitted job's script, which must hold the password, is
readable by its owner only."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
import redis
from conftest import require
from test_checkpoint_resume import Runs, expected, finish, generations, wait_until
from wordcount_workflow import outputs_of

from hpcflow.batch.jobspec import JobSpec
from hpcflow.batch.submit import submit_job
from hpcflow.redact import redact
from hpcflow.transports import find_server_binary

pytestmark = pytest.mark.timeout(300)

PASSWORD = "pw-" + secrets.token_hex(12)
RUN_KEY = secrets.token_hex(32)


@pytest.fixture
def protected_server(tmp_path):
    """A real redis-server that requires PASSWORD: the URL with the password."""
    binary = find_server_binary()
    require(binary is not None, "redis-server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--requirepass", PASSWORD]
    proc = subprocess.Popen([*args, "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline and proc.poll() is None, "redis-server did not start"
            time.sleep(0.05)
    client.close()
    yield url
    proc.kill()
    proc.wait()


def secrets_in(run_dir: Path) -> list[str]:
    """Files under run_dir holding the password or the run key, and files with any
    permission for others than their owner that hold anything secret."""
    found = []
    for path in run_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if PASSWORD.encode() in data or RUN_KEY.encode() in data or bytes.fromhex(RUN_KEY) in data:
                found.append(str(path.relative_to(run_dir)))
    return found


@pytest.mark.parametrize("given", ["environment", "flag"])
def test_no_password_or_run_key_in_the_run_directory_and_resume_asks_for_it(
    tmp_path, protected_server, monkeypatch, given
):
    monkeypatch.setenv("HPCFLOW_RUN_KEY", RUN_KEY)
    monkeypatch.delenv("HPCFLOW_REDIS_URL", raising=False)
    runs = Runs(protected_server)
    run_dir = tmp_path / "run-secret"
    try:
        proc = runs.run(run_dir, "hybrid_redis", "--checkpoint-interval", "0.5")
        wait_until(lambda: generations(run_dir), proc, "checkpoint generation")
        proc.send_signal(signal.SIGTERM)
        finish(proc, 128 + signal.SIGTERM)
        assert secrets_in(run_dir) == []
        record = json.loads((run_dir / "checkpoint" / "run.json").read_text())
        assert redact(protected_server) in record["argv"] and "HPCFLOW_RUN_KEY" not in record["env"]
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert metrics["config"]["redis_url"] == redact(protected_server) and ":***@" in redact(protected_server)

        err = finish(runs.resume(run_dir), 2)  # no password anywhere: one line that says how to give it
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "HPCFLOW_REDIS_URL" in lines[0] and "--redis-url" in lines[0], err
        assert json.loads((run_dir / "metrics.json").read_text())["status"] == "interrupted"

        if given == "environment":
            monkeypatch.setenv("HPCFLOW_REDIS_URL", protected_server)
            finish(runs.resume(run_dir))
        else:
            finish(runs.resume(run_dir, "--redis-url", protected_server))
        assert outputs_of(run_dir / "outputs.jsonl") == expected()
        assert json.loads((run_dir / "metrics.json").read_text())["status"] == "ok"
        assert secrets_in(run_dir) == []
    finally:
        runs.close()


def test_a_job_script_that_holds_a_password_is_private(tmp_path):
    class Recorder:
        script_name = "job.sh"

        def render(self, job):
            return "#!/bin/sh\n" + " ".join(job.run_command) + "\n"

        def submit(self, script, workdir):
            self.mode = stat.S_IMODE(os.stat(script).st_mode)
            return "1"

    url = f"redis://:{PASSWORD}@node1:6379/0"
    for command, private in ((("hpcflow", "run", "--redis-url", url), True), (("hpcflow", "run"), False)):
        scheduler = Recorder()
        job = JobSpec(name="j", workdir=tmp_path, run_dir=tmp_path, run_command=command, cpus=1, nodes=1)
        (tmp_path / "job.sh").unlink(missing_ok=True)
        submit_job(job, scheduler)
        assert (scheduler.mode == 0o600) == private, oct(scheduler.mode)
