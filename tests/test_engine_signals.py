"""SIGTERM (a walltime warning) and SIGINT (Ctrl-C): the launcher stops its sources,
drains what is in flight, writes metrics and outputs, exits non-zero, and leaves no
worker process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from conftest import ROOT

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize(
    "mapping,sig", [("dyn_multi", signal.SIGTERM), ("hybrid_multi", signal.SIGINT), ("multi", signal.SIGTERM)]
)
def test_signal_writes_a_checkpoint_and_exits_nonzero(tmp_path, mapping, sig):
    run_dir = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    stateful = mapping != "dyn_multi"
    cmd = [
        sys.executable,
        "-m",
        "hpcflow",
        "run",
        "pipeline",
        "-p",
        "items=100000",
        "-p",
        "latency=0.01",
        "-p",
        f"stateful={stateful}",
        "--mapping",
        mapping,
        "--cpus",
        "10",
        "--oversubscribe",  # 10 processes on a small machine
        "--run-dir",
        str(run_dir),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    launcher = psutil.Process(proc.pid)
    deadline = time.monotonic() + 30
    while len(launcher.children()) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = launcher.children()
    assert len(workers) == 10
    time.sleep(0.5)  # let items flow
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert f"stopped by {signal.Signals(sig).name}" in err
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and metrics["error"].startswith(f"stopped by {signal.Signals(sig).name}")
    fed = metrics["items"]["Source"]
    assert 0 < fed < 100_000
    # no drain: a checkpoint is written and the run stops; `hpcflow resume` goes on from it
    assert metrics["checkpoint_generation"] >= 1 and "hpcflow resume" in metrics["error"]
    assert (run_dir / "checkpoint" / f"{metrics['checkpoint_generation']:08d}" / "manifest.json").exists()
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
