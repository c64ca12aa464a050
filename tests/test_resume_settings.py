"""A resume continues the run that wrote the checkpoint, with its settings: the mapping,
workflow and parameters a configuration file gave at the start are kept when the file
says otherwise by then (said on stderr; the CPU count may change), and a change that
cannot be undone (the workflow's code, an --inputs file) is refused with one line naming
it, exit 2, before anything runs; the run can still be resumed as it was."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest
from conftest import ROOT
from test_checkpoint_resume import PARAMS, Runs, expected, finish, generations, wait_until
from wordcount_workflow import build, outputs_of

from hpcflow import run
from hpcflow.errors import UsageError

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def runs():
    started = Runs(None)
    yield started
    started.close()


def stop_after_a_checkpoint(proc, run_dir: Path) -> None:
    wait_until(lambda: generations(run_dir), proc, "checkpoint generation")
    proc.send_signal(signal.SIGTERM)
    finish(proc, 128 + signal.SIGTERM)


def test_resume_keeps_the_mapping_a_config_file_gave_at_the_start(tmp_path, runs):
    """The issue's case: the config said hybrid_multi at the start, `mapping: multi,
    cpus: 8` at the resume (which hung or raised KeyError)."""
    config = tmp_path / "hpcflow.yaml"
    workflow = tmp_path / "wordcount.py"
    shutil.copy(ROOT / "tests" / "wordcount_workflow.py", workflow)
    params = "".join(f"  {k}: {v}\n" for k, v in PARAMS.items())
    config.write_text(f"workflow: {workflow}\nmapping: hybrid_multi\ncpus: 6\nparams:\n{params}")
    run_dir = tmp_path / "run"
    args = ("--oversubscribe", "--run-dir", str(run_dir), "--checkpoint-interval", "1")
    proc = runs.start("run", "--config", str(config), *args)
    stop_after_a_checkpoint(proc, run_dir)

    config.write_text(f"workflow: {workflow}\nmapping: multi\ncpus: 8\nparams:\n  lines: 5\n")
    err = finish(runs.resume(run_dir))
    assert "resume keeps mapping hybrid_multi as the run started (not multi" in err, err
    assert "resume keeps params" in err, err
    assert outputs_of(run_dir / "outputs.jsonl") == expected()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["mapping"] == "hybrid_multi" and metrics["processes"] == 8 and metrics["status"] == "ok"


def one_line_exit_2(proc, *phrases: str) -> str:
    err = finish(proc, 2)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert all(p in lines[0] for p in phrases), err
    return lines[0]


CHANGES = {
    # what is edited between the stop and the resume -> what the refusal names
    "a PE's instances": (
        "Count(instances,",
        "Count(instances + 1,",
        "PE Count: its instances (numprocesses) was 3, now 4",
    ),
    "a new PE": (
        '    graph.connect(count, "output", total, "input")\n',
        '    graph.connect(count, "output", total, "input")\n    graph.connect(split, "lengths", Total(), "input")\n',
        "PE Total1 is new",
    ),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_resume_refuses_a_workflow_whose_graph_changed(tmp_path, runs, change):
    workflow = tmp_path / "wordcount.py"
    original = (ROOT / "tests" / "wordcount_workflow.py").read_text()
    workflow.write_text(original)
    run_dir = tmp_path / "run"
    args = ["run", str(workflow), "-m", "hybrid_multi", "-n", "6", "--oversubscribe", "--run-dir", str(run_dir)]
    proc = runs.start(*args, *[f"-p{k}={v}" for k, v in PARAMS.items()], "--checkpoint-interval", "1")
    stop_after_a_checkpoint(proc, run_dir)
    before = (run_dir / "metrics.json").read_text()

    old, new, said = CHANGES[change]
    assert old in original
    workflow.write_text(original.replace(old, new, 1))
    one_line_exit_2(runs.resume(run_dir, "--cpus", "8"), "cannot resume", str(run_dir), said)
    assert (run_dir / "metrics.json").read_text() == before  # nothing ran, nothing was written

    workflow.write_text(original)  # as it was: the run goes on from its checkpoint
    finish(runs.resume(run_dir))
    assert outputs_of(run_dir / "outputs.jsonl") == expected()


def test_resume_refuses_changed_inputs(tmp_path, runs):
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps({"Lines": PARAMS["lines"]}))
    run_dir = tmp_path / "run"
    args = ["run", str(ROOT / "tests" / "wordcount_workflow.py"), "-m", "multi", "-n", "6", "--oversubscribe"]
    args += [f"-p{k}={v}" for k, v in PARAMS.items()] + ["--inputs", str(inputs), "--run-dir", str(run_dir)]
    proc = runs.start(*args, "--checkpoint-interval", "1")
    stop_after_a_checkpoint(proc, run_dir)
    inputs.write_text(json.dumps({"Lines": PARAMS["lines"] + 1}))
    one_line_exit_2(runs.resume(run_dir), "cannot resume", "the inputs differ")
    inputs.write_text(json.dumps({"Lines": PARAMS["lines"]}))
    finish(runs.resume(run_dir))
    assert outputs_of(run_dir / "outputs.jsonl") == expected()


def test_the_api_refuses_to_resume_a_checkpoint_under_another_mapping(tmp_path, multiset):
    """run(..., resume=True) compares the checkpoint's own fingerprint: the same check
    without the CLI's run.json. (1200 words at 2 ms each over 3 Count instances: the run
    outlasts its first checkpoint, 0.05 s in, however fast the machine.)"""
    graph, inputs = build(lines=300, words=4, latency=0.002)
    ck = str(tmp_path / "ck")
    done = run(graph, inputs, "hybrid_multi", 6, checkpoint_dir=ck, checkpoint_interval=0.05)
    assert done.metrics.extra["checkpoints_written"] >= 1
    graph, inputs = build(lines=300, words=4, latency=0.002)
    with pytest.raises(UsageError, match=r"the mapping was hybrid_multi, now multi"):
        run(graph, inputs, "multi", 6, checkpoint_dir=ck, resume=True)
    graph, inputs = build(lines=300, words=4, latency=0.002)
    again = run(graph, inputs, "hybrid_multi", 6, checkpoint_dir=ck, resume=True)
    graph, inputs = build(lines=300, words=4, latency=0.002)
    want = multiset(run(graph, inputs, "simple").outputs)
    assert multiset(again.outputs) == multiset(done.outputs) == want
