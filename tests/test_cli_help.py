"""What a new user finds without reading the code: the commands' summaries whole, the
mappings in --help, the built-in workflows and their parameters, and a parameter a
workflow cannot take refused as bad input before anything runs."""

from __future__ import annotations

import pytest

from hpcflow.mappings import MAPPINGS
from hpcflow.workflows import BUILTINS


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
    assert "    latency        default: 0.0" in out and "    items          default: 1000" in out
    assert "    scale          default: none" in out  # galaxy's scale has no default
    assert "run_dir" not in out  # given by hpcflow, not by the user


@pytest.mark.parametrize(
    "param,message",
    [
        ("latency=-1", "pipeline needs latency >= 0, got -1"),
        ("cpu=-0.5", "pipeline needs cpu >= 0, got -0.5"),
        ("items=abc", "workflow pipeline: build() failed: TypeError"),
    ],
)
def test_a_parameter_the_workflow_cannot_take_is_bad_input(in_process, tmp_path, param, message):
    code, out, err = in_process("run", "pipeline", "-p", param)
    assert code == 2 and out == ""
    assert err.startswith("hpcflow: error: ") and message in err and err.count("\n") == 1
    assert not list(tmp_path.glob("runs/*"))  # refused before the run: no run directory
