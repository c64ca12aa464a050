"""The JSON files of a run directory are read as untrusted input: `hpcflow status` on a
status.json and `hpcflow resume` on a checkpoint/run.json that is not what hpcflow wrote
(a list, null, a number, a field of the wrong type, cut short) end with one line on
stderr and exit 2, never a Python error; a damaged metrics.json does not stop a resume
(the checkpoint decides). `--checkpoint-interval` takes positive, finite seconds only."""

from __future__ import annotations

import json
import math

import pytest

from hpcflow.jsonfile import DamagedFile, check_shape
from hpcflow.progress import Snapshot


def one_line(code: int, err: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err and lines[0].startswith("hpcflow: error: "), err
    return lines[0]


@pytest.fixture
def finished_run(in_process, tmp_path):
    """A run directory of a finished multi run that took checkpoints."""
    code, _, err = in_process(
        "run",
        "pipeline",
        "-p",
        "items=30",
        "-p",
        "stages=1",
        "-m",
        "multi",
        "-n",
        "2",
        "--run-dir",
        "r",
        "--checkpoint-interval",
        "5",
    )
    assert code == 0, err
    return tmp_path / "r"


BAD_STATUS = [
    "[]",
    "null",
    "42",
    '"running"',
    "{",
    '{"state": 5}',
    '{"workflow": "pipeline"}',
    '{"state": "running", "pid": "12"}',
    '{"state": "running", "elapsed_s": "1.5"}',
    '{"state": "running", "pes": {}}',
    '{"state": "running", "pes": [3]}',
    '{"state": "running", "pes": [{"done": 1}]}',
    '{"state": "running", "pes": [{"name": "A", "done": "1"}]}',
    '{"state": "running", "checkpoint": []}',
    '{"state": "running", "pinned_pids": {"A[0]": "x"}}',
    '{"state": "failed", "last_error": 7}',
    '{"state": "running", "updated_at": true}',
]


@pytest.mark.parametrize("text", BAD_STATUS)
def test_status_on_a_damaged_status_json_is_one_line_exit_2(in_process, finished_run, text):
    (finished_run / "status.json").write_text(text)
    line = one_line(*in_process("status", str(finished_run))[::2])
    assert "status.json" in line and ("damaged" in line or "not valid JSON" in line), line


def test_status_reads_the_status_json_hpcflow_wrote(in_process, finished_run):
    code, out, err = in_process("status", str(finished_run))
    assert code == 0, err
    assert out.startswith("ok pipeline on multi")


BAD_RECORD = [
    "[]",
    "null",
    '"run"',
    "{",
    '{"cwd": "/tmp"}',
    '{"argv": "run pipeline"}',
    '{"argv": ["run", 3]}',
    '{"argv": ["run", "pipeline"], "env": ["HPCFLOW_CPUS"]}',
    '{"argv": ["run", "pipeline"], "env": {"HPCFLOW_CPUS": 2}}',
    '{"argv": ["run", "pipeline"], "cwd": 5}',
    '{"argv": ["run", "pipeline"], "settings": {"mapping": 3}}',
    '{"argv": ["run", "pipeline"], "settings": {"params": []}}',
    '{"argv": ["run", "pipeline"], "fingerprint": {"mapping": null}}',
]


@pytest.mark.parametrize("text", BAD_RECORD)
def test_resume_on_a_damaged_run_json_is_one_line_exit_2(in_process, finished_run, text):
    (finished_run / "metrics.json").write_text('{"status": "interrupted"}')
    (finished_run / "checkpoint" / "run.json").write_text(text)
    line = one_line(*in_process("resume", str(finished_run))[::2])
    assert "run.json" in line, line


@pytest.mark.parametrize("text", ["[]", "null", "{", '{"status": 3}'])
def test_a_damaged_metrics_json_does_not_stop_a_resume(in_process, finished_run, text):
    want = multiset_of(finished_run)
    (finished_run / "metrics.json").write_text(text)
    code, _, err = in_process("resume", str(finished_run), "-q")
    assert code == 0, err
    assert multiset_of(finished_run) == want
    assert json.loads((finished_run / "metrics.json").read_text())["status"] == "ok"


def multiset_of(run_dir):
    return sorted((run_dir / "outputs.jsonl").read_text().splitlines())


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-1", "1e400", "soon"])
@pytest.mark.parametrize("command", ["run", "resume", "submit"])
def test_checkpoint_interval_must_be_positive_and_finite(in_process, tmp_path, command, value):
    args = {
        "run": ["run", "pipeline", "-p", "stages=1", "-m", "multi", "-n", "2", "--run-dir", "r"],
        "resume": ["resume", str(tmp_path)],
        "submit": ["submit", "pipeline", "-p", "stages=1", "-m", "multi", "-n", "2", "--dry-run"],
    }[command]
    line = one_line(*in_process(*args, "--checkpoint-interval", value)[::2])
    assert "--checkpoint-interval" in line and "positive, finite number of seconds" in line, line
    assert not (tmp_path / "r").exists()


def test_the_api_refuses_a_non_finite_interval(tmp_path):
    from hpcflow import run
    from hpcflow.errors import UsageError
    from hpcflow.workflows import load_workflow

    wf = load_workflow("pipeline", {"items": 3})
    for value in (math.nan, math.inf):
        with pytest.raises(UsageError, match="checkpoint_interval must be"):
            run(wf.graph, wf.inputs, "multi", 4, checkpoint_dir=str(tmp_path), checkpoint_interval=value)


def test_check_shape_names_the_field(tmp_path):
    with pytest.raises(DamagedFile, match=r"pes\[0\]\.rate is a string, not a number"):
        check_shape({"state": "ok", "pes": [{"name": "A", "rate": "x"}]}, Snapshot, tmp_path / "s.json", "status")
    check_shape({"state": "ok", "pes": [{"name": "A", "rate": 1}], "target": None}, Snapshot, tmp_path, "status")
