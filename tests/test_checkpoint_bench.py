"""The checkpoint benchmark (experiments/bench/checkpoint.py) at a test's size: its
checkpointed runs give the plain run's outputs, its SIGTERMed run stops with a
checkpoint and resumes to the same outputs, and it prints and writes its table. The
figures are the benchmark's business, not the tests'."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT

pytestmark = pytest.mark.timeout(240)


def test_the_command_checks_its_runs_and_writes_its_table(tmp_path):
    cmd = [sys.executable, str(ROOT / "experiments" / "bench" / "checkpoint.py"), "--quick"]
    proc = subprocess.run([*cmd, "--output", str(tmp_path)], capture_output=True, text=True, timeout=200)
    assert proc.returncode == 0, proc.stderr
    assert "checkpointed / plain: " in proc.stdout
    record = json.loads((tmp_path / "checkpoint-quick.json").read_text())
    assert [r["interval_s"] for r in record["runs"]] == [None, 1.0]
    assert all(r["same_outputs"] for r in record["runs"])
    assert record["runs"][1]["checkpoints"] >= 1  # a run of seconds wrote one at 1 s intervals
    (stopped,) = record["stops"]
    assert stopped["exit_code"] == 143 and stopped["written_s"] is not None and stopped["bytes"] > 0
    assert stopped["resumed_exit"] == 0 and stopped["same_outputs"]
    assert "| --checkpoint-interval 1.0 |" in (tmp_path / "checkpoint-quick.md").read_text()
