"""One sweep at a time on an output directory, and no cell's run outliving its sweep."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import psutil
import pytest
from conftest import ROOT

from hpcflow.errors import UsageError
from hpcflow.progress import read_status
from hpcflow.sweep.lock import output_lock

pytestmark = pytest.mark.timeout(120)

DRAINING_RUN = """
import os, signal, sys, time
from pathlib import Path
here = Path(sys.argv[1])
def drain(signum, frame):  # a run that takes its time to drain after SIGTERM, until released
    (here / "draining").touch()
    while not (here / "release").exists():
        time.sleep(0.05)
    sys.exit(0)
signal.signal(signal.SIGTERM, drain)
(here / "started").write_text(str(os.getpid()))
signal.pause()
"""
SLOW = "name: slow\nworkflow: pipeline\nparams: {items: 5000, latency: 0.01}\nmappings: [simple]\ncpus: [1]\n"


def test_a_second_sweep_on_a_locked_output_is_refused(in_process, tmp_path):
    (tmp_path / "s.yaml").write_text(SLOW)
    with output_lock(tmp_path / "results" / "slow"):  # the very lock a running sweep holds
        code, out, err = in_process("sweep", "s.yaml")
    assert code == 2 and out == ""
    assert err.startswith("hpcflow: error: another sweep (or a run it started, still ending) is using results/slow")
    assert f"(pid {os.getpid()})" in err and err.count("\n") == 1
    assert not (tmp_path / "results" / "slow" / "runs.jsonl").exists()  # nothing ran


def test_the_lock_is_free_again_once_its_holder_is_gone(tmp_path):
    with output_lock(tmp_path):
        pass
    with output_lock(tmp_path):  # taken again at once: nothing stale left behind
        pass


def test_a_killed_sweep_leaves_no_run_behind(tmp_path):
    """SIGKILL the sweep mid-cell: its run gets SIGTERM (PR_SET_PDEATHSIG), drains, writes
    its metrics and exits; until it has, the output stays locked against a resumed sweep."""
    (tmp_path / "s.yaml").write_text(SLOW)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    sweep = subprocess.Popen(
        [sys.executable, "-m", "hpcflow", "sweep", "s.yaml", "-q"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    runs = tmp_path / "results" / "slow" / "runs"
    deadline = time.monotonic() + 60
    cell = None
    while cell is None and time.monotonic() < deadline:
        found = list(runs.glob("*/status.json")) if runs.is_dir() else []
        cell = found[0].parent if found else None
        time.sleep(0.05)
    assert cell is not None, sweep.communicate(timeout=30)
    (run,) = psutil.Process(sweep.pid).children()
    assert read_status(cell).pid == run.pid
    sweep.kill()
    sweep.communicate(timeout=30)
    gone, alive = psutil.wait_procs([run], timeout=60)
    assert not alive, "the cell's run outlived its sweep"
    metrics = json.loads((cell / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and metrics["error"].startswith("stopped by SIGTERM")
    with output_lock(tmp_path / "results" / "slow"):  # and the lock went with it
        pass


def test_the_run_of_a_killed_sweep_holds_the_lock_until_it_ends(tmp_path):
    """The lock is shared with the cell's run: a resumed sweep cannot start the cell again
    while the old run, told by SIGTERM that its sweep died, still drains."""
    out = tmp_path / "out"
    (tmp_path / "run.py").write_text(DRAINING_RUN)
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from hpcflow.sweep.lock import output_lock\n"
        "from hpcflow.sweep.cellrun import run_here\n"
        f"with output_lock(Path({str(out)!r})) as fd:\n"
        f"    run_here([sys.executable, {str(tmp_path / 'run.py')!r}, {str(tmp_path)!r}], None, fd)\n"
    )
    sweep = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(ROOT)))
    wait_for_file(tmp_path / "started")
    run = psutil.Process(int((tmp_path / "started").read_text()))
    sweep.kill()
    sweep.wait(timeout=30)
    wait_for_file(tmp_path / "draining")  # the run got its SIGTERM when the sweep died
    with pytest.raises(UsageError, match="another sweep"):
        with output_lock(out):
            pass
    (tmp_path / "release").touch()
    psutil.wait_procs([run], timeout=30)
    assert not run.is_running()
    with output_lock(out):  # free once the run has ended
        pass


def wait_for_file(path) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
