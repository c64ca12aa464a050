"""`hpcflow sweep` end to end on tiny pipelines: runs.jsonl, resuming, failed cells, the
progress lines, and the tables written at the end."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from hpcflow.sweep.cellrun import cell_command
from hpcflow.sweep.progress import Progress, duration
from hpcflow.sweep.spec import Cell, load_sweep

TINY = """
name: tiny
workflow: pipeline
params: {items: 6, stages: 2, seed: [0, 1]}
mappings: [simple, dyn_multi, multi]
cpus: [2]
repeats: REPEATS
compare: [[dyn_multi, simple], [multi, simple]]
oversubscribe: true
"""

FAILING = """
from hpcflow import IterativePE, ProducerPE, WorkflowGraph

class Numbers(ProducerPE):
    def __init__(self):
        super().__init__()
        self.n = 0
    def _process(self, inputs):
        self.n += 1
        return self.n

class Invert(IterativePE):
    def _process(self, data):
        return 1 / (data - 3)

def build(items=5):
    graph = WorkflowGraph()
    numbers = Numbers()
    graph.connect(numbers, "output", Invert(), "input")
    return graph, {numbers: items}
"""


def rows_of(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def write(tmp_path, text, name="tiny.yaml"):
    (tmp_path / name).write_text(textwrap.dedent(text))
    return name


def test_a_sweep_records_every_cell_and_writes_the_tables(in_process, tmp_path):
    code, out, err = in_process("sweep", write(tmp_path, TINY.replace("REPEATS", "1")))
    assert code == 0, err
    assert Path(out.strip()).resolve() == (tmp_path / "results" / "tiny").resolve()
    results = tmp_path / "results" / "tiny"
    rows = rows_of(results / "runs.jsonl")
    assert [(r["mapping"], r["params"]["seed"], r["status"]) for r in rows] == [
        ("simple", 0, "ok"),
        ("dyn_multi", 0, "ok"),
        ("multi", 0, "failed"),
        ("simple", 1, "ok"),
        ("dyn_multi", 1, "ok"),
        ("multi", 1, "failed"),
    ]
    ok = rows[1]
    assert ok["params"] == {"items": 6, "stages": 2, "seed": 0} and (ok["cpus"], ok["repeat"]) == (2, 0)
    assert ok["processes"] == 2 and ok["items"] == {"Source": 6, "Stage": 6, "Stage1": 6}
    assert ok["runtime_s"] > 0 and ok["process_time_s"] > 0 and ok["workflow"] == "pipeline"
    assert (tmp_path / ok["run_dir"] / "outputs.jsonl").is_file()
    assert ok["config"]["sources"]["mapping"] == "command line"
    failed = rows[2]
    assert failed["error"].startswith("mapping multi needs at least 3 processes for this graph")
    assert "run_dir" not in failed  # refused in planning: no process was started

    summary = (results / "summary.md").read_text()
    assert "## dyn_multi / simple" in summary and "| seed=0, 2 cpus |" in summary
    assert "## Failed runs" in summary and "- multi, seed=0, 2 cpus: mapping multi needs" in summary
    ratios = (results / "ratios.csv").read_text().splitlines()
    assert ratios[0].startswith("numerator,denominator,row,params,cpus,runtime_ratio,process_time_ratio")
    assert sum(line.startswith("dyn_multi,simple,cell,") for line in ratios) == 2

    lines = err.splitlines()
    assert lines[0] == "hpcflow sweep: [1/6] simple, 2 cpus, seed=0, repeat 0 (0.0 s elapsed, ETA unknown)"
    assert "ETA" in lines[2] and "ETA unknown" not in lines[2]
    assert "hpcflow sweep:   failed: mapping multi needs at least 3 processes" in err
    assert (
        lines[-1]
        == "hpcflow sweep: 6 runs, 2 failed; tables in results/tiny/summary.md; report results/tiny/report.html"
    )
    assert "seed=0" in (results / "report.html").read_text()


def test_an_interrupted_sweep_resumes_where_it_stopped(in_process, tmp_path):
    name = write(tmp_path, TINY.replace("REPEATS", "1").replace("seed: [0, 1]", "seed: 0"))
    assert in_process("sweep", name, "-q")[0] == 0
    runs = tmp_path / "results" / "tiny" / "runs.jsonl"
    first = runs.read_text()

    code, out, err = in_process("sweep", name)  # nothing left to do
    assert code == 0 and runs.read_text() == first
    assert err.splitlines()[0] == "hpcflow sweep: 3 of 3 runs already in results/tiny/runs.jsonl: skipped"

    write(tmp_path, TINY.replace("REPEATS", "2").replace("seed: [0, 1]", "seed: 0"))  # one more repeat
    code, _, err = in_process("sweep", name, "-q")
    assert code == 0 and err == ""
    rows = rows_of(runs)
    assert runs.read_text().startswith(first)
    assert [(r["mapping"], r["repeat"]) for r in rows[3:]] == [("simple", 1), ("dyn_multi", 1), ("multi", 1)]


def test_a_failing_run_is_recorded_with_its_error_and_the_sweep_goes_on(in_process, tmp_path):
    write(tmp_path, FAILING, "failing.py")
    text = "name: f\nworkflow: failing.py\nmappings: [simple, dyn_multi]\ncpus: [2]\noversubscribe: true\n"
    name = write(tmp_path, text)
    code, _, err = in_process("sweep", name, "--output", "out")
    assert code == 1, err  # so that `sweep && report` stops
    assert "2 of 2 runs failed" in err.splitlines()[-1]
    rows = rows_of(tmp_path / "out" / "runs.jsonl")
    assert [r["status"] for r in rows] == ["failed", "failed"]
    assert rows[0]["error"] == "PE Invert[0] failed on item {'input': 3}: ZeroDivisionError: division by zero"
    assert rows[0]["items"] == {"Numbers": 3, "Invert": 3}  # the partial run's metrics are kept
    assert "failed: PE Invert" in err and "2 runs, 2 failed" in err


def test_retry_failed_runs_the_failed_cells_again(in_process, tmp_path, monkeypatch):
    name = write(tmp_path, "name: r\nworkflow: pipeline\nparams: {items: 3}\nmappings: [dyn_multi]\ncpus: [2]\n")
    monkeypatch.setenv("SLURM_JOB_ID", "9")
    monkeypatch.setenv("SLURM_CPUS_ON_NODE", "1")
    assert in_process("sweep", name, "-q")[0] == 1
    runs = tmp_path / "results" / "r" / "runs.jsonl"
    (row,) = rows_of(runs)
    assert row["status"] == "failed"
    assert row["error"].startswith("--cpus 2 is more than the 1 CPUs of this allocation")
    assert in_process("sweep", name, "-q")[0] == 1 and len(rows_of(runs)) == 1  # a failed cell is done too

    monkeypatch.setenv("HPCFLOW_OVERSUBSCRIBE", "1")
    assert in_process("sweep", name, "-q", "--retry-failed")[0] == 0
    (row,) = rows_of(runs)
    assert row["status"] == "ok" and "error" not in row


def test_a_run_past_the_timeout_is_stopped_and_failed(in_process, tmp_path):
    text = "name: t\nworkflow: pipeline\nparams: {items: 100, latency: 0.2}\nmappings: simple\ncpus: 1\ntimeout: 1\n"
    code, _, err = in_process("sweep", write(tmp_path, text), "-q")
    assert code == 1, err
    (row,) = rows_of(tmp_path / "results" / "t" / "runs.jsonl")
    assert row["status"] == "failed" and row["error"] == "timed out after 1 s (the sweep's timeout)"


def test_a_cell_is_the_command_line_a_user_would_type(tmp_path):
    options = "options: {autoscale: {policy: backlog, k: 2}, stall_timeout: 60, on_error: skip}\n"
    spec = load_sweep(tmp_path / write(tmp_path, TINY.replace("REPEATS", "1") + options))
    cell = Cell({"items": 6, "seed": 1}, "dyn_multi", 2, 0)
    command = cell_command(spec, cell, Path("/r"), "my.yaml", python="py")
    assert command == [
        *("py", "-m", "hpcflow", "run", "pipeline", "--mapping", "dyn_multi", "--cpus", "2", "--run-dir", "/r"),
        *("-p", "items=6", "-p", "seed=1", "--autoscale", "backlog:k=2", "--on-error", "skip"),
        *("--stall-timeout", "60", "--oversubscribe", "--quiet", "--config", str(Path("my.yaml").absolute())),
    ]


def test_the_eta_is_the_time_per_run_times_the_runs_left():
    now = [100.0]
    lines: list[str] = []

    class Lines:
        def write(self, text):
            lines.extend(t for t in text.splitlines() if t)

        def flush(self):
            pass

    progress = Progress(total=5, done=1, to_run=3, stream=Lines(), clock=lambda: now[0])
    cell = Cell({"n": 1}, "dyn_multi", 4, 0)
    progress.starting(cell)
    now[0] += 30
    progress.finished(cell, {"status": "ok", "runtime_s": 29.0})
    progress.finished(cell, {"status": "failed", "error": "needs 9 processes"}, ran=False)
    progress.starting(cell)
    assert lines == [
        "hpcflow sweep: [2/5] dyn_multi, 4 cpus, n=1, repeat 0 (0.0 s elapsed, ETA unknown)",
        "hpcflow sweep:   failed: needs 9 processes",
        "hpcflow sweep: [4/5] dyn_multi, 4 cpus, n=1, repeat 0 (30.0 s elapsed, ETA 1m00s)",
    ]
    assert [duration(s) for s in (3.25, 245, 3720)] == ["3.2 s", "4m05s", "1h02m"]
