"""The `hpcflow` command: run directories, exit codes, and one clear line for bad input."""

from __future__ import annotations

import json
import textwrap

import pytest

import hpcflow

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

graph = WorkflowGraph()
graph.connect(Numbers(), "output", Invert(), "input")
"""

CYCLE = """
from hpcflow import IterativePE, WorkflowGraph

a, b = IterativePE(), IterativePE()
graph = WorkflowGraph()
graph.connect(a, "output", b, "input")
graph.connect(b, "output", a, "input")
"""

BUILD = """
from hpcflow import ProducerPE, WorkflowGraph

class Hello(ProducerPE):
    def __init__(self, who):
        super().__init__()
        self.who = who
    def _process(self, inputs):
        return f"hello {self.who}"

def build(who="world", times=2):
    graph = WorkflowGraph()
    hello = graph.add(Hello(who))
    return graph, {hello: times}, {"work_s": 0.5}
"""


STUCK = """
import time

from hpcflow import IterativePE, ProducerPE, WorkflowGraph

class Numbers(ProducerPE):
    def _process(self, inputs):
        return 1

class Stuck(IterativePE):
    def _process(self, data):
        time.sleep(60)

graph = WorkflowGraph()
graph.connect(Numbers(), "output", Stuck(), "input")
"""


def write(tmp_path, name, source):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return str(path)


def run_dirs(tmp_path):
    runs = tmp_path / "runs"
    return sorted(p.name for p in runs.iterdir()) if runs.exists() else []


def test_run_writes_a_run_directory_and_prints_it_last(cli, tmp_path):
    out = cli("run", "pipeline", "-p", "items=7", "-p", "stages=2")
    assert out.returncode == 0, out.stderr
    (name,) = run_dirs(tmp_path)
    assert name.endswith("-pipeline-simple")
    assert out.stdout.splitlines() == [str(tmp_path / "runs" / name)]  # absolute: batch logs name it
    run_dir = tmp_path / "runs" / name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert (metrics["workflow"], metrics["mapping"]) == ("pipeline", "simple")
    assert metrics["params"] == {"items": 7, "stages": 2}
    assert metrics["items"] == {"Source": 7, "Stage": 7, "Stage1": 7}
    assert metrics["work_s"] == 0 and metrics["status"] == "ok"
    rows = [json.loads(line) for line in (run_dir / "outputs.jsonl").read_text().splitlines()]
    assert len(rows) == 7 and {(r["pe"], r["port"]) for r in rows} == {("Stage1", "output")}
    assert sorted(r["data"][1] for r in rows) == [2, 3, 4, 5, 6, 7, 8]
    log = (run_dir / "run.log").read_text()
    assert "running pipeline on simple with 1 process" in log and "done in" in log
    progress = out.stderr.splitlines()
    start = "hpcflow: running pipeline on simple with 1 process (workflow from command line, "
    assert progress[0].startswith(start + "mapping from the built-in default, cpus from the allocation")
    assert progress[-2].startswith("hpcflow: done in") and progress[-1] == f"hpcflow: run directory runs/{name}"


def test_quiet_silences_progress(in_process, tmp_path):
    assert in_process("run", "pipeline", "-p", "items=3", "--quiet", "--run-dir", "here") == (
        0,
        f"{tmp_path}/here\n",
        "",
    )
    assert (tmp_path / "here" / "metrics.json").exists()


def test_a_build_workflow_file_with_params_and_info(in_process, tmp_path):
    path = write(tmp_path, "hello.py", BUILD)
    code, _, err = in_process("run", path, "-p", "who=you", "-p", "times=3", "-q", "--run-dir", "out")
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "out" / "outputs.jsonl").read_text().splitlines()]
    assert rows == [{"pe": "Hello", "port": "output", "data": "hello you"}] * 3
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert (metrics["workflow"], metrics["work_s"], metrics["params"]) == ("hello", 0.5, {"who": "you", "times": 3})


def test_inputs_from_a_json_file(in_process, tmp_path):
    path = write(tmp_path, "hello.py", BUILD)
    (tmp_path / "inputs.json").write_text('{"Hello": 4}')
    code, _, err = in_process("run", path, "--inputs", "inputs.json", "-q", "--run-dir", "out")
    assert code == 0, err
    assert len((tmp_path / "out" / "outputs.jsonl").read_text().splitlines()) == 4


def test_a_module_path_names_the_run_directory_after_the_module(in_process, tmp_path):
    code, _, err = in_process("run", "hpcflow.workflows.pipeline", "-p", "items=2", "-q")
    assert code == 0, err
    (name,) = run_dirs(tmp_path)
    assert name.endswith("-hpcflow.workflows.pipeline-simple")


def test_bare_run_without_a_configured_workflow_shows_the_usage(in_process, tmp_path):
    code, out, err = in_process("run")
    assert code == 2
    assert out.startswith("Usage: hpcflow run [OPTIONS] [WORKFLOW]") and "--mapping" in out
    assert err == "hpcflow: error: no WORKFLOW given and no workflow: in configs/default.yaml (there is none here)\n"
    assert run_dirs(tmp_path) == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "nosuchflow"], "unknown workflow 'nosuchflow': not a built-in ("),
        (["run", "missing.py"], "workflow file missing.py does not exist"),
        (["run", "pipeline", "-m", "warp"], "unknown mapping 'warp'; choose one of: simple"),
        (["run", "pipeline", "-p", "items"], "parameter 'items' is not key=value"),
        (["run", "pipeline", "-p", "colour=red"], "workflow pipeline has no parameter 'colour'"),
        (["run", "pipeline", "-p", "items=many"], "-p items=many: items takes a whole number >= 0"),
        (["run", "pipeline", "--inputs", "{oops"], "--inputs is neither JSON nor a JSON file"),
        (["run", "pipeline", "--inputs", "[1, 2]"], "inputs must be an int or a dict"),
        (["run", "pipeline", "--inputs", '{"Sauce": 3}'], "no PE named 'Sauce'"),
        (["run", "pipeline", "--inputs", '{"x": "' + "y" * 5000 + '"'], "--inputs is neither JSON nor a JSON file"),
        (["run", "pipeline", "--cpus", "0"], "processes must be at least 1, got 0"),
        (["run", "pipeline", "--on-error", "ignore"], "unknown on_error 'ignore'"),
        (["run", "cycle.py"], "the workflow graph has a cycle: IterativePE -> IterativePE1 -> IterativePE"),
        (["run", "broken.py"], "workflow file broken.py failed to import: ModuleNotFoundError"),
        (["run", "syntax.py"], "workflow file syntax.py failed to import: SyntaxError"),
        (["run", "pipeline", "--colour"], "No such option"),
        (["launch"], "No such command 'launch'"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(in_process, tmp_path, args, message):
    write(tmp_path, "cycle.py", CYCLE)
    write(tmp_path, "broken.py", "import nosuchmodule_for_hpcflow_tests\n")
    write(tmp_path, "syntax.py", "def broken(:\n")
    code, out, err = in_process(*args)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("hpcflow: error: "), err
    assert message in err
    assert "Traceback" not in err and out == ""
    assert run_dirs(tmp_path) == []  # a run that never started leaves no run directory


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "cycle.py"], "the workflow graph has a cycle"),
        (["run", "pipeline", "-m", "warp"], "unknown mapping 'warp'"),
        (["run", "broken.py"], "failed to import: ModuleNotFoundError"),
    ],
)
def test_bad_input_through_the_real_command(cli, tmp_path, args, message):
    write(tmp_path, "cycle.py", CYCLE)
    write(tmp_path, "broken.py", "import nosuchmodule_for_hpcflow_tests\n")
    out = cli(*args)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and message in out.stderr and out.stdout == ""
    assert run_dirs(tmp_path) == []


def test_a_failing_pe_is_exit_1_naming_the_pe_with_metrics_written(cli, tmp_path):
    path = write(tmp_path, "failing.py", FAILING)
    out = cli("run", path, "--inputs", "5", "--run-dir", "out")
    assert out.returncode == 1
    last = out.stderr.splitlines()[-1]
    assert last == "hpcflow: error: PE Invert[0] failed on item {'input': 3}: ZeroDivisionError: division by zero"
    assert "Traceback" not in out.stderr and out.stdout == ""
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["status"] == "failed" and metrics["items"] == {"Numbers": 3, "Invert": 3}
    rows = [json.loads(line)["data"] for line in (tmp_path / "out" / "outputs.jsonl").read_text().splitlines()]
    assert rows == [-0.5, -1.0]
    log = (tmp_path / "out" / "run.log").read_text()
    assert "PE Invert[0] failed" in log and "Traceback" in log and "ZeroDivisionError" in log


def test_on_error_skip_writes_the_skipped_items(in_process, tmp_path):
    path = write(tmp_path, "failing.py", FAILING)
    code, out, err = in_process("run", path, "--inputs", "5", "--run-dir", "out", "--on-error", "skip", "-q")
    assert code == 3, err  # exits.SKIPPED_EXIT: finished, but not with every item
    assert out.strip().endswith("out")  # the run finished: stdout names its directory
    first = "PE Invert[0] failed on item {'input': 3}: ZeroDivisionError: division by zero"
    assert f"hpcflow: 1 item(s) skipped (on_error skip), all in out/errors.jsonl; first: {first}" in err
    (error,) = [json.loads(line) for line in (tmp_path / "out" / "errors.jsonl").read_text().splitlines()]
    assert (error["pe"], error["item"]) == ("Invert", "{'input': 3}")
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert (metrics["status"], metrics["errors"], metrics["skipped"]) == ("ok", 1, 1)
    assert metrics["error"] == f"1 item(s) skipped (on_error skip); first: {first}"


def test_debug_shows_the_pes_traceback(cli, tmp_path):
    path = write(tmp_path, "failing.py", FAILING)
    out = cli("--debug", "run", path, "--inputs", "5", "-q", "--run-dir", "out")
    assert out.returncode == 1
    assert "Traceback" in out.stderr
    assert "return 1 / (data - 3)" in out.stderr  # the PE's own line
    assert out.stderr.splitlines()[-1].startswith("hpcflow: error: PE Invert[0] failed")


def test_debug_shows_the_traceback_of_bad_input(in_process, tmp_path):
    write(tmp_path, "cycle.py", CYCLE)
    code, _, err = in_process("--debug", "run", "cycle.py")
    assert code == 2
    assert "Traceback" in err and "GraphError" in err
    assert err.splitlines()[-1].startswith("hpcflow: error: the workflow graph has a cycle")


def test_stall_timeout_stops_a_run_in_which_no_task_finishes(in_process, tmp_path):
    path = write(tmp_path, "stuck.py", STUCK)
    args = ["run", path, "--inputs", "2", "-m", "dyn_multi", "-n", "2", "--oversubscribe", "--run-dir", "out", "-q"]
    code, out, err = in_process(*args, "--stall-timeout", "0.5")
    assert code == 1 and out == ""
    assert err.splitlines()[-1].startswith("hpcflow: error: no task finished for 0.5 s (stall_timeout): PE Stuck holds")
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["status"] == "stalled" and metrics["config"]["stall_timeout"] == 0.5
    assert metrics["error"].startswith("no task finished for 0.5 s (stall_timeout): PE Stuck holds")
    assert metrics["config"]["sources"]["stall_timeout"] == "command line"


def test_a_negative_stall_timeout_is_exit_2(in_process, tmp_path):
    code, _, err = in_process("run", "pipeline", "--stall-timeout", "-1")
    assert code == 2 and err == "hpcflow: error: stall_timeout must be 0 (off) or more seconds, got -1.0\n"
    assert run_dirs(tmp_path) == []


def test_mappings(in_process):
    code, out, _ = in_process("mappings")
    assert code == 0
    assert out.splitlines()[0].split()[:3] == ["simple", "sequential", "in"]


def test_info(in_process):
    code, out, _ = in_process("info")
    assert code == 0
    fields = dict(line.split(None, 1) for line in out.splitlines())
    assert fields["hpcflow"] == hpcflow.__version__
    assert int(fields["allocation_cpus"]) >= 1 and fields["allocation_scheduler"] == "local"


def test_info_json(in_process):
    code, out, _ = in_process("info", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["hpcflow"] == hpcflow.__version__ and info["allocation_cpus"] >= 1
    assert {"mpi4py", "mpiexec", "redis_py", "redis_server", "sbatch", "qsub"} <= set(info)


def test_no_arguments_shows_the_help(in_process):
    code, out, _ = in_process()
    assert code == 0 and "Usage: hpcflow" in out and "run" in out


def test_version(in_process):
    code, out, _ = in_process("--version")
    assert code == 0 and hpcflow.__version__ in out
