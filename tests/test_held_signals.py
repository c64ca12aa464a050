"""A SIGTERM while no coordinator listens (the first moments after status.json says
"running", or after the run ended) is held and given to the next coordinator, never left
to its default action, which killed the launcher with no metrics.json (found by the
fault schedules of issue 25: seeds 1013, 1040 and 1060 of the bench)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT
from faultsim.workflow import expected_outputs, outputs_of

from hpcflow import heldsignals

pytestmark = pytest.mark.timeout(240)
WORKFLOW = str(ROOT / "tests" / "faultsim" / "workflow.py")


def test_a_signal_under_holding_is_kept_for_the_engine_not_acted_on():
    with heldsignals.holding():
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        assert heldsignals.take() == [signal.SIGTERM, signal.SIGINT]
        assert heldsignals.take() == []
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def hpcflow(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(
        [sys.executable, "-m", "hpcflow", *args, "-q"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("mapping", ["hybrid_multi", "dyn_multi"])
def test_sigterm_the_moment_the_run_says_running_stops_it_with_a_checkpoint(tmp_path, mapping):
    run_dir = tmp_path / "run"
    params = ["-p", "lines=40", "-p", f"stateful={int(mapping != 'dyn_multi')}"]
    proc = hpcflow("run", WORKFLOW, "-m", mapping, "-n", "7", "--oversubscribe", "--run-dir", str(run_dir), *params)
    while proc.poll() is None:
        try:
            status = json.loads((run_dir / "status.json").read_text())
        except (OSError, ValueError):
            status = {}
        if status.get("state") == "running" and status.get("pid") == proc.pid:
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGTERM)  # before the coordinator has installed its handlers, mostly
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM: checkpoint" in err.strip().splitlines()[-1]
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "interrupted"
    assert json.loads((run_dir / "status.json").read_text())["state"] == "interrupted"
    resumed = hpcflow("resume", str(run_dir))
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert outputs_of(run_dir / "outputs.jsonl") == expected_outputs(lines=40, stateful=int(mapping != "dyn_multi"))


def test_a_process_that_exits_after_the_run_ignores_signals_from_its_end_on():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        with heldsignals.holding(restore=False):
            pass
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN == signal.getsignal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGTERM, before[0])
        signal.signal(signal.SIGINT, before[1])
