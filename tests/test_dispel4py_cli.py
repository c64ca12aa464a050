"""`hpcflow-dispel4py`: dispel4py's command line (`dispel4py simple module -i 10`,
`dispel4py multi module -n 4 -d JSON`, `mpiexec -n N dispel4py mpi module`) runs the same
graph as `hpcflow run`, and bad input is one line and exit code 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from hpcflow.cli.dispel4py import translate
from hpcflow.cli.runend import duration
from tests.conftest import ROOT, main_caller, require

CORPUS = ROOT / "tests" / "dispel4py_corpus"


@pytest.fixture
def d4py(tmp_path, monkeypatch, capsys):
    """Calls hpcflow-dispel4py's main() in a temporary directory: (code, stdout, stderr)."""
    from hpcflow.cli.dispel4py import main

    return main_caller(main, tmp_path, monkeypatch, capsys)


def rows(run_dir: Path) -> Counter:
    lines = (run_dir / "outputs.jsonl").read_text().splitlines()
    return Counter((r["pe"], r["port"], json.dumps(r["data"])) for r in map(json.loads, lines))


def test_dispel4py_flags_become_an_hpcflow_run():
    assert translate(["simple", "mod.py", "-i", "10"]) == [
        *("run", "mod.py", "--mapping", "simple", "--oversubscribe", "--print-results", "--inputs", "10"),
    ]
    assert translate(["multi", "pkg.mod", "-n", "4", "-a", "g", "-d", '{"P": 3}', "-s"]) == [
        *("run", "pkg.mod:g", "--mapping", "multi", "--oversubscribe", "--cpus", "4", "--inputs", '{"P": 3}'),
    ]
    # -f wins over -d, as in dispel4py; mpi takes its ranks from the MPI job; other flags go on to `hpcflow run`
    assert translate(["dispel4py.new.mpi_process", "m.py", "-n", "9", "-f", "in.json", "-d", "{}", "-q"]) == [
        *("run", "m.py", "--mapping", "mpi", "--oversubscribe", "--inputs", "in.json", "-q"),
    ]


def test_simple_with_iterations_runs_the_composite_chain(d4py, tmp_path):
    code, out, err = d4py("simple", str(CORPUS / "iterative_chain.py"), "-i", "4", "--run-dir", "r")
    assert code == 0, err
    assert out.splitlines()[-1] == str(tmp_path / "r")
    assert rows(tmp_path / "r") == Counter(
        ("PE_subtract", "output", json.dumps((i + 2) * 2 - 1.0)) for i in range(1, 5)
    )


def test_simple_prints_inputs_and_outputs_as_dispel4py_does(d4py, tmp_path):
    """dispel4py's simple prints `Inputs: {id: data}` and `Outputs: {id: {port: [items]}}`
    on stdout; the run directory stays stdout's last line, and the time is not `0.000 s`."""
    code, out, err = d4py("simple", str(CORPUS / "pipeline.py"), "-i", "3", "--run-dir", "r")
    assert code == 0, err
    assert out.splitlines() == [
        "Inputs: {'NumberProducer': 3}",
        "Outputs: {'Identity1': {'output': [1, 2, 3]}}",
        str(tmp_path / "r"),
    ]
    done = next(line for line in err.splitlines() if line.startswith("hpcflow: done in"))
    assert "0.000 s" not in done


@pytest.mark.parametrize(
    "seconds,text", [(12.3456, "12.346 s"), (0.1, "0.100 s"), (0.0123, "12.3 ms"), (0.0000412, "0.0412 ms")]
)
def test_a_duration_keeps_its_digits_under_a_tenth_of_a_second(seconds, text):
    assert duration(seconds) == text


def test_multi_with_processes_and_data_runs_the_word_count(d4py, tmp_path):
    data = json.dumps({"ReadLines": [{"input": "a b a"}, {"input": "B, b!"}]})
    code, _, err = d4py("multi", str(CORPUS / "wordcount_composite.py"), "-n", "8", "-d", data, "-q", "--run-dir", "r")
    assert code == 0, err
    assert rows(tmp_path / "r") == Counter(
        [("TotalCount", "output", json.dumps(["a", 2])), ("TotalCount", "output", json.dumps(["b", 3]))]
    )


def test_the_graph_attribute_picks_one_of_several(d4py, tmp_path):
    (tmp_path / "two.py").write_text(
        "from hpcflow import WorkflowGraph\n"
        "from tests.dispel4py_corpus.pes import Identity, NumberProducer\n"
        "first = WorkflowGraph()\n"
        "first.connect(NumberProducer(), 'output', Identity(), 'input')\n"
        "second = WorkflowGraph()\n"
        "second.connect(NumberProducer(), 'output', Identity(), 'input')\n"
    )
    code, _, err = d4py("simple", "two.py", "-i", "2")
    assert code == 2
    assert (
        err
        == "hpcflow: error: workflow two exposes no build(**params) and 2 WorkflowGraph attributes outside composites "
        "(first, second; pick one with two:NAME); expose build() or exactly one graph\n"
    )
    code, _, err = d4py("simple", "two.py", "-a", "second", "-i", "2", "--run-dir", "r")
    assert code == 0, err
    assert rows(tmp_path / "r") == Counter([("Identity", "output", "1"), ("Identity", "output", "2")])


def test_a_pe_with_no_logic_is_exit_2_naming_it(d4py, tmp_path):
    """dispel4py would run this graph and print empty outputs; hpcflow refuses it before the run."""
    (tmp_path / "empty.py").write_text(
        "from hpcflow import GenericPE, WorkflowGraph\n"
        "from tests.dispel4py_corpus.pes import NumberProducer\n"
        "class Forgot(GenericPE):\n"
        "    def __init__(self):\n"
        "        GenericPE.__init__(self)\n"
        "        self._add_input('input')\n"
        "        self._add_output('output')\n"
        "    def proces(self, inputs):\n"  # the typo that makes a PE do nothing
        "        return {'output': inputs['input']}\n"
        "graph = WorkflowGraph()\n"
        "graph.connect(NumberProducer(), 'output', Forgot(), 'input')\n"
    )
    code, out, err = d4py("simple", "empty.py", "-i", "3")
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith("hpcflow: error: PE Forgot overrides neither process() nor _process()")
    assert not list(tmp_path.glob("runs/*"))  # refused before the run: no run directory


@pytest.mark.parametrize(
    "args,message",
    [
        (["storm", "m.py"], "target 'storm' (Storm, Spark) has no hpcflow mapping"),
        (["simple", "m.py", "-i", "x"], "argument -i/--iter: invalid int value: 'x'"),
        (["simple", "m.py", "-i", "-2"], "argument -i/--iter: must not be negative, got -2"),
        (["simple"], "the following arguments are required: module"),
        (["nosuch", str(CORPUS / "pipeline.py")], "unknown mapping"),
    ],
)
def test_bad_dispel4py_command_line_is_one_line_and_exit_2(d4py, args, message):
    code, _, err = d4py(*args)
    assert code == 2
    assert err.count("\n") == 1 and message in err, err


def test_mpiexec_runs_the_dispel4py_command(tmp_path):
    """`mpiexec -n 3 dispel4py mpi module -i 5`, renamed: every rank runs, rank 0 writes."""
    mpiexec = shutil.which("mpiexec")
    require(mpiexec is not None, "mpiexec")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "PMIX_", "OMPI_", "SLURM_"))}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    module = str(CORPUS / "pipeline.py")
    cmd = [mpiexec, "-n", "4", sys.executable, "-m", "hpcflow.cli.dispel4py", "mpi", module, "-i", "5", "-q"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    run_dir = tmp_path / proc.stdout.strip().splitlines()[-1]
    assert rows(run_dir) == Counter(("Identity1", "output", str(i)) for i in range(1, 6))
