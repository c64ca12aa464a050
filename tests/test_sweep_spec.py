"""Experiment files: the matrix of cells they expand to, and one clear line (exit 2) for
every malformed or incomplete one."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcflow.errors import UsageError
from hpcflow.sweep.spec import Cell, load_sweep

ROOT = Path(__file__).resolve().parents[1]

GOOD = """
name: demo
workflow: pipeline
params: {items: [10, 20], stages: 2, stateful: [false, true]}
mappings: [dyn_multi, hybrid_multi]
cpus: [4, 8]
repeats: 3
options: {autoscale: "backlog:k=2"}
compare: [[hybrid_multi, dyn_multi]]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "experiment.yaml"
    path.write_text(text)
    return path


def test_the_cells_are_the_cross_product_repeat_by_repeat(tmp_path):
    spec = load_sweep(write(tmp_path, GOOD))
    assert spec.params == {"items": [10, 20], "stages": [2], "stateful": [False, True]}
    assert spec.varying() == ["items", "stateful"]
    cells = spec.cells()
    assert len(cells) == 4 * 2 * 2 * 3
    assert len({c.key for c in cells}) == len(cells)
    assert cells[0] == Cell({"items": 10, "stages": 2, "stateful": False}, "dyn_multi", 4, 0)
    assert cells[1] == Cell({"items": 10, "stages": 2, "stateful": False}, "hybrid_multi", 4, 0)
    assert cells[2].cpus == 8
    assert [c.repeat for c in cells[::16]] == [0, 1, 2]  # every cell once, then again
    assert spec.output == Path("results/demo") and spec.compare == (("hybrid_multi", "dyn_multi"),)


def test_scalars_are_one_value_lists(tmp_path):
    spec = load_sweep(write(tmp_path, "name: s\nworkflow: pipeline\nmappings: simple\ncpus: 2\n"))
    assert (spec.mappings, spec.cpus, spec.repeats, spec.params) == (("simple",), (2,), 1, {})
    assert [c.label() for c in spec.cells()] == ["simple, 2 cpus, repeat 0"]


def test_cell_names_are_readable_and_unique(tmp_path):
    cell = Cell({"scale": 1, "heavy": True}, "dyn_multi", 8, 2)
    assert cell.dir_name() == "r2-dyn_multi-8cpus-scale=1,heavy=true"
    assert cell.label(["scale"]) == "dyn_multi, 8 cpus, scale=1, repeat 2"
    odd = [Cell({"csv": name}, "simple", 1, 0).dir_name() for name in ("a/b.csv", "a b.csv", "a_b.csv")]
    assert len(set(odd)) == 3 and all("/" not in name for name in odd)


@pytest.mark.parametrize("experiment", sorted((ROOT / "experiments").glob("*.yaml")), ids=lambda p: p.stem)
def test_the_shipped_experiments_load(experiment):
    """...and write under results/ (ignored by git), so a re-run neither skips its cells as
    already done nor overwrites the published results in experiments/results/."""
    spec = load_sweep(experiment)
    assert spec.compare and spec.output == Path("results") / spec.name


B = "name: d\nworkflow: pipeline\nmappings: [simple]\ncpus: [1]\n"  # a good base to spoil
BAD = [
    ("name: [demo\n", r"not valid YAML: line 2, column 1"),
    ("- a\n- b\n", r"the file must be a mapping"),
    ("name: d\nworkflow: pipeline\nmappings: [simple]\n", r"missing cpus"),
    ("workflow: pipeline\nmappings: [simple]\ncpus: [1]\n", r"missing name"),
    (B + "repeat: 2\n", r"unknown key repeat \(known: name,"),
    ("name: d\nworkflow: pipeline\nmappings: [warp]\ncpus: [1]\n", r"unknown mapping 'warp'"),
    ("name: d\nworkflow: pipeline\nmappings: [simple]\ncpus: [0, 2]\n", r"cpus must be whole numbers of at least 1"),
    ("name: d\nworkflow: pipeline\nmappings: [simple]\ncpus: [two]\n", r"got 'two'"),
    (B + "repeats: 0\n", r"repeats must be"),
    (B + "params: [1]\n", r"params must be a mapping"),
    (B + "params: {items: []}\n", r"params.items has no"),
    (B + "compare: [[simple, multi]]\n", r"compare names multi"),
    (B + "compare: [simple]\n", r"compare must be a list of"),
    (B + "options: {colour: red}\n", r"unknown option colour"),
    (B + "options: {autoscale: warp}\n", r"policy 'warp'"),
    (B + "options: {stall_timeout: -1}\n", r"stall_timeout must be 0 \(off\) or more seconds"),
    (B + "timeout: -1\n", r"timeout must be"),
    (B + "batch: {queue: q}\n", r"unknown key batch.queue"),
]


@pytest.mark.parametrize("text, message", BAD)
def test_a_malformed_experiment_is_one_usage_error_naming_the_file(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(UsageError, match=message) as err:
        load_sweep(path)
    assert str(err.value).startswith(f"sweep {path}: ") and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "text, message",
    [
        ("name: d\nworkflow: [\n", "not valid YAML"),
        ("name: d\nworkflow: pipeline\nmappings: [simple]\n", "missing cpus"),
        ("name: d\nworkflow: nosuchflow\nmappings: [simple]\ncpus: [1]\n", "unknown workflow 'nosuchflow'"),
        (B + "params: {size: 3}\n", "has no parameter 'size'"),
        (B + "params: {items: -1}\n", "params: items=-1: items takes a whole number >= 0"),
        ("name: d\nworkflow: pipeline\nmappings: [nope]\ncpus: [1]\n", "unknown mapping 'nope'"),
        ("name: d\nworkflow: pipeline\nmappings: [simple]\ncpus: [-4]\n", "cpus must be whole numbers"),
    ],
)
def test_bad_input_on_the_command_line_is_one_line_and_exit_2(in_process, tmp_path, text, message):
    write(tmp_path, text)
    code, out, err = in_process("sweep", "experiment.yaml")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("hpcflow: error: sweep experiment.yaml: ") and message in err
    assert not (tmp_path / "results").exists()  # nothing ran, nothing was written


def test_a_missing_file_and_max_jobs_without_submit(in_process):
    code, _, err = in_process("sweep", "nope.yaml")
    assert code == 2 and "sweep nope.yaml: cannot read it" in err
    code, _, err = in_process("sweep", "nope.yaml", "--max-jobs", "2")
    assert code == 2 and "--max-jobs limits batch jobs: it needs --submit" in err
