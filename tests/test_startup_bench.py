"""The start-up benchmark (experiments/bench/startup.py) at a test's size: its workflow
runs under `hpcflow run` and writes the first task's start, and the command prints a row
for Pool and for each mapping, both ways. Timings are the benchmark's business."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

BENCH = ROOT / "experiments" / "bench" / "startup.py"


def test_the_first_task_writes_its_start_once(tmp_path, monkeypatch):
    stamp = tmp_path / "stamp"
    monkeypatch.setenv("HPCFLOW_STARTUP_STAMP", str(stamp))
    done = subprocess.run(
        [sys.executable, "-m", "hpcflow", "run", str(BENCH), "--mapping", "dyn_multi", "--cpus", "2",
         "--oversubscribe", "-q", "--run-dir", str(tmp_path / "run")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert float(stamp.read_text()) > 0  # the source's call wrote it; the stage's later write was refused


def test_the_command_prints_pool_and_every_mapping_both_ways(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPYCACHEPREFIX", str(tmp_path / "pycache"))  # its bytecode, not in the tree
    done = subprocess.run(
        [sys.executable, str(BENCH), "--processes", "2", "--repeats", "1", "--mappings", "dyn_multi,multi"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = {line[:34].strip() for line in done.stdout.splitlines()[2:]}
    for way in ("api", "cli"):
        assert {f"{way} Pool", f"{way} hpcflow dyn_multi", f"{way} hpcflow multi"} <= rows
    assert {"api Pool (warm)", "api hpcflow dyn_multi (warm)"} <= rows
