"""Bad input is one clear line, never a traceback: exit code 2 and one line on stderr
from the command (the traceback only with --debug), one UsageError of one line from
`run()`. Cases tests/test_cli.py, test_submit.py and test_config.py already cover are
not repeated here."""

from __future__ import annotations

import textwrap
import threading

import pytest
from graphs import Add, Count, chain

from hpcflow import IterativePE, UsageError, run

pytestmark = pytest.mark.usefixtures("no_leftover_processes")

FILES = {
    "port.py": """
        from hpcflow import IterativePE, ProducerPE, WorkflowGraph

        class Src(ProducerPE):
            def _process(self, inputs):
                return 1

        graph = WorkflowGraph()
        graph.connect(Src(), "outptu", IterativePE(), "input")
        """,
    "port_in_build.py": """
        from hpcflow import IterativePE, ProducerPE, WorkflowGraph

        class Src(ProducerPE):
            def _process(self, inputs):
                return 1

        def build():
            graph = WorkflowGraph()
            graph.connect(Src(), "output", IterativePE(), "inptu")
            return graph, 3
        """,
    "stateful.py": """
        from hpcflow import GenericPE, ProducerPE, WorkflowGraph

        class Src(ProducerPE):
            def _process(self, inputs):
                return ("k", 1)

        class CountByKey(GenericPE):
            def __init__(self):
                super().__init__()
                self._add_input("input", grouping=[0])
                self._add_output("output")

            def process(self, inputs):
                return {"output": inputs["input"]}

        def build():
            graph = WorkflowGraph()
            graph.connect(Src(), "output", CountByKey(), "input")
            return graph, 3
        """,
    "no_graph.py": "x = 1\n",
    "build_raises.py": """
        def build():
            raise RuntimeError("no data directory")
        """,
    "build_returns_junk.py": """
        def build():
            return 42
        """,
    "raises_at_import.py": """
        raise RuntimeError("set $DATA first")
        """,
    "inputs.json": "{'Source': 3}",  # not JSON: single quotes
    "afile": "",
    "only_workflow.yaml": "workflow: pipeline\n",
    "unknown_mapping.yaml": "workflow: pipeline\nmapping: warp\ncpus: 4\n",
    "unknown_workflow.yaml": "workflow: nosuchflow\nmapping: simple\ncpus: 4\n",
    "unknown_param.yaml": "workflow: pipeline\nmapping: simple\ncpus: 4\nparams: {colour: red}\n",
    "empty.yaml": "",
    "a_list.yaml": "- pipeline\n- galaxy\n",
}

DRY = ("--dry-run", "--scheduler", "slurm")

CASES = {  # name: (arguments, fragments of the one line: the problem, then the fix)
    "port": (["run", "port.py"], ["failed to import: GraphError: PE Src has no output port 'outptu'", "'output'"]),
    "port in build": (["run", "port_in_build.py"], ["PE IterativePE has no input port 'inptu'", "(ports: 'input')"]),
    "stateful on dyn_multi": (
        ["run", "stateful.py", "-m", "dyn_multi"],
        ["PE CountByKey is stateful", "use hybrid_multi"],
    ),
    "stateful on dyn_auto_multi": (
        ["run", "stateful.py", "-m", "dyn_auto_multi"],
        ["PE CountByKey is stateful", "use hybrid_auto_multi"],
    ),
    "too few for hybrid": (
        ["run", "stateful.py", "-m", "hybrid_multi", "--cpus", "2", "--oversubscribe"],
        ["mapping hybrid_multi needs at least 3 processes", "1 stateful instance(s) + 1 worker); got 2"],
    ),
    "too few for multi": (
        ["run", "pipeline", "-m", "multi", "--cpus", "2", "--oversubscribe"],
        ["mapping multi needs at least 4 processes", "got 2"],
    ),
    "no graph": (["run", "no_graph.py"], ["exposes no build(**params) and 0 WorkflowGraph", "expose build()"]),
    "build raises": (["run", "build_raises.py"], ["build() failed: RuntimeError: no data directory"]),
    "build returns junk": (["run", "build_returns_junk.py"], ["build() must return (graph, inputs)"]),
    "raises at import": (["run", "raises_at_import.py"], ["failed to import: RuntimeError: set $DATA first"]),
    "negative inputs": (["run", "pipeline", "--inputs", '{"Source": -1}'], ["PE Source must not be negative"]),
    "inputs to a fed PE": (["run", "pipeline", "--inputs", '{"Stage": 3}'], ["which a stream feeds", "(Source)"]),
    "inputs not dicts": (["run", "pipeline", "--inputs", '{"Source": [1]}'], ["must be dicts {port: data}, got 1"]),
    "inputs a float": (["run", "pipeline", "--inputs", "2.5"], ["inputs must be an int or a dict", "got float"]),
    "inputs file not JSON": (["run", "pipeline", "--inputs", "inputs.json"], ["--inputs file is not JSON"]),
    "param without key": (["run", "pipeline", "-p", "=3"], ["parameter '=3' is not key=value"]),
    "param out of range": (["run", "pipeline", "-p", "items=-5"], ["-p items=-5: items takes a whole number >= 0"]),
    "negative cpus": (["run", "pipeline", "--cpus", "-1"], ["processes must be at least 1, got -1"]),
    "start method": (["run", "pipeline", "--start-method", "threads"], ["'threads'", "use one of fork, spawn"]),
    "run dir in a file": (
        ["run", "pipeline", "--run-dir", "afile/run"],
        ["cannot create the run directory afile/run", "give --run-dir a writable path"],
    ),
    "config without cpus": (["submit", "--config", "only_workflow.yaml", *DRY], ["needs --mapping and --cpus"]),
    "config mapping": (["submit", "--config", "unknown_mapping.yaml", *DRY], ["unknown mapping 'warp'", "one of:"]),
    "config workflow": (["submit", "--config", "unknown_workflow.yaml", *DRY], ["unknown workflow 'nosuchflow'"]),
    "config param": (["submit", "--config", "unknown_param.yaml", *DRY], ["no parameter 'colour'", "(parameters:"]),
    "empty config": (["submit", "--config", "empty.yaml", *DRY], ["no WORKFLOW given and no workflow: in empty.yaml"]),
    "config a list": (["submit", "--config", "a_list.yaml", *DRY], ["a_list.yaml: the file must be a mapping"]),
}


@pytest.fixture
def files(tmp_path):
    for name, text in FILES.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    return tmp_path


def run_dirs(path):
    return [p for p in path.rglob("metrics.json")] + list((path / "runs").glob("*"))


@pytest.mark.parametrize("case", list(CASES))
def test_bad_command_line_is_one_line_and_exit_2(in_process, files, case):
    args, fragments = CASES[case]
    code, out, err = in_process(*args)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("hpcflow: error: "), err
    for fragment in fragments:
        assert fragment in err
    assert "Traceback" not in err and out == ""
    assert run_dirs(files) == []


@pytest.mark.parametrize(
    "case", ["port", "stateful on dyn_multi", "too few for multi", "build raises", "config a list"]
)
def test_debug_shows_the_traceback_and_then_the_same_line(in_process, files, case):
    args, fragments = CASES[case]
    code, _, err = in_process("--debug", *args)
    assert code == 2
    assert err.startswith("Traceback") and "UsageError" in err
    last = err.splitlines()[-1]
    assert last.startswith("hpcflow: error: ") and all(f in last for f in fragments)


# -- run() ------------------------------------------------------------------------------


class HoldsLock(IterativePE):
    """Cannot be pickled: a spawned worker cannot be given it."""

    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()


def pipeline():
    src = Count()
    return chain(src, Add(1)), src


API_CASES = {  # name: (run's arguments but the graph, fragments of the message)
    "unknown mapping": (dict(mapping="warp"), ["unknown mapping 'warp'", "choose one of: simple, multi"]),
    "unknown option": (dict(colour="red"), ["unknown run option(s) colour", "known: autoscale"]),
    "bad on_error": (dict(on_error="ignore"), ["unknown on_error 'ignore'", "use fail, skip, retry:N"]),
    "on_error not text": (dict(on_error=3), ["on_error must be text", "got 3"]),
    "unknown policy": (dict(mapping="dyn_auto_multi", autoscale="nope"), ["policy 'nope'", "one of: backlog"]),
    "unknown policy parameter": (dict(autoscale="backlog:bogus=1"), ["parameter(s) bogus", "valid: "]),
    "bad policy interval": (dict(autoscale={"policy": "backlog", "interval": 0}), ["interval must be more than 0"]),
    "policy not a spec": (dict(autoscale=5), ["autoscale must be a policy name", "not 5"]),
    "bad start_method": (dict(mapping="multi", start_method="threads"), ["'threads'", "use one of fork, spawn"]),
    "no processes": (dict(mapping="multi", processes=0), ["processes must be at least 1, got 0"]),
    "negative processes": (dict(processes=-2), ["processes must be at least 1, got -2"]),
    "processes as text": (dict(mapping="multi", processes="four"), ["processes must be a whole number", "'four'"]),
    "fractional processes": (dict(mapping="multi", processes=2.5), ["processes must be a whole number", "2.5"]),
    "processes a bool": (dict(mapping="multi", processes=True), ["processes must be a whole number", "True"]),
    "max_queued as text": (dict(max_queued="many"), ["max_queued must be a whole number", "'many'"]),
    "metrics_out a directory": (dict(metrics_out="."), ["metrics_out .: not a file", "give a file's path"]),
    "inputs as text": (dict(inputs="abc"), ["inputs must be an int or a dict", "got str"]),
    "negative inputs": (dict(inputs={"Count": -1}), ["inputs for PE Count must not be negative"]),
    "inputs of ints": (dict(inputs={"Count": [1, 2]}), ["must be dicts {port: data}, got 1"]),
    "inputs to an unknown PE": (dict(inputs={"Nope": 1}), ["no PE named 'Nope'", "(PEs: Count, Add)"]),
    "inputs to a fed PE": (dict(inputs={"Add": 1}), ["inputs name PE Add, which a stream feeds", "root PE (Count)"]),
    "inputs that cannot be pickled": (
        dict(mapping="dyn_multi", processes=2, inputs={"Count": [{"x": lambda: 1}]}),
        ["inputs for PE Count cannot be pickled", "Can't pickle"],
    ),
}


@pytest.mark.parametrize("case", list(API_CASES))
def test_bad_run_arguments_are_one_line_usage_errors(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    kwargs, fragments = API_CASES[case]
    graph, _ = pipeline()
    kwargs = {"inputs": 3, **kwargs}
    with pytest.raises(UsageError) as info:
        run(graph, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("graph", [None, Count()], ids=["None", "a PE"])
def test_run_of_something_not_a_graph(graph):
    with pytest.raises(UsageError, match=r"run\(\) takes a WorkflowGraph, not (NoneType|Count)"):
        run(graph, 3)


@pytest.mark.parametrize("mapping", ["multi", "dyn_multi", "hybrid_multi"])
def test_a_pe_that_cannot_be_pickled_for_a_spawned_worker(mapping):
    src = Count()
    with pytest.raises(UsageError) as info:
        run(chain(src, HoldsLock()), {src: 3}, mapping, 3, start_method="spawn")
    message = str(info.value)
    assert message.startswith("PE HoldsLock cannot be pickled to start a worker with start_method 'spawn'")
    assert "use start_method 'fork', or create what it holds in preprocess()" in message


def test_spawned_workers_still_run_a_graph_of_picklable_pes():
    """The check above refuses only what cannot be pickled."""
    src = Count()
    result = run(chain(src, Add(1), Add(10)), {src: 20}, "dyn_multi", 2, start_method="spawn")
    assert sorted(result.output("Add1")) == list(range(12, 32))
