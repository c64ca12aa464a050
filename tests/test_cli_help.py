"""What a new user finds without reading the code: the commands' summaries whole, the
mappings in --help, the built-in workflows and their parameters, and a parameter a
workflow cannot take refused as bad input before anything runs."""

from __future__ import annotations

import importlib

import pytest

from hpcflow.mappings import MAPPINGS
from hpcflow.workflows import BUILTINS
from hpcflow.workflows.params import defaults


def test_help_lists_every_command_with_its_summary_whole(in_process):
    code, out, _ = in_process("--help")
    assert code == 0
    assert "  workflows  The built-in workflows and their parameters (-p KEY=VALUE)." in out
    assert "a module\n             or a .py file) and write a run directory." in out  # not cut at "a ."
    assert "status     How a run goes or went: state, per-PE counts, workers, last\n             error." in out


def test_run_help_shows_the_mappings_to_choose_from(in_process):
    code, out, _ = in_process("run", "--help")
    assert code == 0
    choices = " ".join(out.split("One of:")[1].split(".")[0].split())
    assert choices.replace(",", "").split() == list(MAPPINGS)


def test_workflows_lists_the_built_ins_with_their_parameters(in_process):
    code, out, _ = in_process("workflows")
    assert code == 0
    names = [line.split(":")[0] for line in out.splitlines() if not line.startswith(" ")]
    assert names == list(BUILTINS)
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("    ")}
    # each parameter: its default (from build()), what it takes and what it means (PARAMS)
    assert rows["latency"].split(None, 2)[1:] == [
        "0.0",
        "a number of seconds >= 0           each stage sleeps this per item",
    ]
    assert "1000       a whole number >= 0" in rows["items"]
    assert rows["scale"].split(None, 2)[1] == "-"  # galaxy's scale has no default
    assert "one of synthetic, obspy-examples" in rows["source"]
    assert "run_dir" not in out  # given by hpcflow, not by the user


@pytest.mark.parametrize("name", list(BUILTINS))
def test_every_built_in_parameter_is_declared(name):
    module = importlib.import_module(BUILTINS[name])
    assert set(module.PARAMS) == set(defaults(module.build))


@pytest.mark.parametrize(
    "workflow,param,message",
    [
        ("pipeline", "latency=fast", "-p latency=fast: latency takes a number of seconds >= 0"),
        ("pipeline", "items=1.5", "-p items=1.5: items takes a whole number >= 0"),
        ("pipeline", "latency_dist=gamma", "-p latency_dist=gamma: latency_dist takes one of fixed, beta"),
        ("pipeline", "stateful=3", "-p stateful=3: stateful takes true or false"),
        ("galaxy", "scale=0", "-p scale=0: scale takes a whole number >= 1"),
        ("seismic", "source=x", "-p source=x: source takes one of synthetic, obspy-examples"),
        ("sentiment", "latency=-1", "-p latency=-1: latency takes a number of seconds >= 0"),
    ],
)
def test_a_wrong_value_names_the_parameter_and_what_it_takes(in_process, tmp_path, workflow, param, message):
    code, out, err = in_process("run", workflow, "-p", param)
    assert (code, out, err) == (2, "", f"hpcflow: error: {message}\n")
    assert not list(tmp_path.glob("runs/*"))


def test_a_users_workflow_may_declare_its_parameters_or_not(in_process, tmp_path):
    body = (
        "from hpcflow import WorkflowGraph\n"
        "from tests.dispel4py_corpus.pes import Identity, NumberProducer\n"
        "def build(n=3):\n"
        "    graph = WorkflowGraph()\n"
        "    graph.connect(NumberProducer(), 'output', Identity(), 'input')\n"
        "    return graph, n + 1\n"
    )
    (tmp_path / "bare.py").write_text(body)
    (tmp_path / "declared.py").write_text(
        "from hpcflow.workflows.params import Param\n" + body + "PARAMS = {'n': Param(int, 'inputs', least=1)}\n"
    )
    assert in_process("run", "declared.py", "-p", "n=x") == (
        2,
        "",
        "hpcflow: error: -p n=x: n takes a whole number >= 1\n",
    )
    code, _, err = in_process("run", "bare.py", "-p", "n=x")  # as before: build()'s own error, named
    assert code == 2 and err.startswith("hpcflow: error: workflow bare: build() failed: TypeError")
