"""The ratio arithmetic of the paper's tables, on a hand-made runs file."""

from __future__ import annotations

import csv
import json
import statistics

import pytest

from hpcflow.sweep.ratios import ratio_tables, write_ratios_csv
from hpcflow.sweep.runsfile import RunsFile
from hpcflow.sweep.spec import SweepSpec
from hpcflow.sweep.summary import summary_markdown

A, B = {"scale": 1}, {"scale": 5}


def run(params, mapping, cpus, repeat, runtime, process, status="ok", **extra):
    return {
        "params": params,
        "mapping": mapping,
        "cpus": cpus,
        "repeat": repeat,
        "status": status,
        "runtime_s": runtime,
        "process_time_s": process,
        **extra,
    }


ROWS = [
    # cell (A, 4): auto 10 and 14 (mean 12) vs dyn 8 and 8 -> runtime 1.5; process 6/12 -> 0.5
    run(A, "dyn_auto_multi", 4, 0, 10.0, 5.0),
    run(A, "dyn_auto_multi", 4, 1, 14.0, 7.0),
    run(A, "dyn_multi", 4, 0, 8.0, 12.0),
    run(A, "dyn_multi", 4, 1, 8.0, 12.0),
    # cell (A, 8): runtime 4/5 = 0.8, process 9/10 = 0.9; a failed repeat does not count
    run(A, "dyn_auto_multi", 8, 0, 4.0, 9.0),
    run(A, "dyn_auto_multi", 8, 1, 0.1, 0.1, status="failed", error="boom"),
    run(A, "dyn_multi", 8, 0, 5.0, 10.0),
    # cell (B, 4): runtime 1.0, process 0.25
    run(B, "dyn_auto_multi", 4, 0, 20.0, 5.0),
    run(B, "dyn_multi", 4, 0, 20.0, 20.0),
    # cell (B, 8): dyn_multi only failed -> missing
    run(B, "dyn_auto_multi", 8, 0, 3.0, 3.0),
    run(B, "dyn_multi", 8, 0, 1.0, 1.0, status="failed", error="mapping dyn_multi needs at least 9 processes"),
]
CELLS = [(A, 4), (A, 8), (B, 4), (B, 8)]


def test_ratio_of_means_per_cell_best_mean_and_std():
    (table,) = ratio_tables(ROWS, [("dyn_auto_multi", "dyn_multi")], CELLS)
    got = [(c.params, c.cpus, round(c.runtime, 6), round(c.process_time, 6)) for c in table.cells]
    assert got == [(A, 4, 1.5, 0.5), (A, 8, 0.8, 0.9), (B, 4, 1.0, 0.25)]
    assert table.missing == ((B, 8),)
    assert (table.best_runtime.params, table.best_runtime.cpus) == (A, 8)
    assert (table.best_process_time.params, table.best_process_time.cpus) == (B, 4)
    mean, std = table.mean(), table.std()
    assert mean == pytest.approx((statistics.fmean([1.5, 0.8, 1.0]), statistics.fmean([0.5, 0.9, 0.25])))
    assert std == pytest.approx((statistics.stdev([1.5, 0.8, 1.0]), statistics.stdev([0.5, 0.9, 0.25])))
    assert table.cells[0].numerator.runs == 2 and table.cells[1].numerator.runs == 1


def test_without_given_cells_they_come_from_the_runs_in_order():
    (table,) = ratio_tables(list(reversed(ROWS)), [("dyn_auto_multi", "dyn_multi")])
    assert [(p, n) for p, n, _ in table.entries] == [(B, 4), (B, 8), (A, 4), (A, 8)]


def test_one_cell_has_a_mean_and_no_std():
    (table,) = ratio_tables(ROWS, [("dyn_auto_multi", "dyn_multi")], [(A, 8)])
    assert table.mean() == pytest.approx((0.8, 0.9)) and table.std() is None


def test_nothing_to_compare_gives_an_empty_table():
    (table,) = ratio_tables(ROWS, [("multi", "dyn_multi")], CELLS)
    assert table.cells == () and table.best_runtime is None and table.mean() is None


def test_the_csv_has_the_papers_rows(tmp_path):
    tables = ratio_tables(ROWS, [("dyn_auto_multi", "dyn_multi")], CELLS)
    write_ratios_csv(tables, tmp_path / "ratios.csv")
    rows = list(csv.DictReader((tmp_path / "ratios.csv").open()))
    assert [r["row"] for r in rows] == ["cell"] * 3 + ["best (runtime)", "best (process time)", "mean", "std"]
    assert rows[0]["runtime_ratio"] == "1.5" and rows[0]["process_time_ratio"] == "0.5"
    assert json.loads(rows[0]["params"]) == A and rows[0]["cpus"] == "4"
    assert rows[0]["numerator_runtime_s"] == "12.0" and rows[0]["denominator_process_time_s"] == "12.0"
    assert (rows[3]["params"], rows[3]["cpus"]) == (json.dumps(A), "8")
    assert float(rows[5]["runtime_ratio"]) == pytest.approx(statistics.fmean([1.5, 0.8, 1.0]), abs=1e-4)


def test_the_summary_shows_the_tables_runs_and_failures(tmp_path):
    spec = SweepSpec(
        name="demo",
        workflow="galaxy",
        params={"scale": [1, 5]},
        mappings=("dyn_multi", "dyn_auto_multi"),
        cpus=(4, 8),
        repeats=2,
        compare=(("dyn_auto_multi", "dyn_multi"),),
    )
    tables = ratio_tables(ROWS, spec.compare, CELLS)
    text = summary_markdown(spec, ROWS, tables)
    assert "## dyn_auto_multi / dyn_multi" in text
    assert "| scale=1, 4 cpus | 1.500 | 0.500 |" in text
    assert "| scale=5, 8 cpus | — | — |" in text
    assert "| **best (runtime)**: scale=1, 8 cpus | 0.800 | 0.900 |" in text
    assert "| **best (process time)**: scale=5, 4 cpus | 1.000 | 0.250 |" in text
    assert "| **mean** | 1.100 | 0.550 |" in text
    assert "| scale=1, 4 cpus | dyn_auto_multi | 2 / 2 | 12.00 ± 2.83 | 6.00 ± 1.41 |" in text
    assert "| scale=1, 8 cpus | dyn_auto_multi | 1 / 2 | 4.00 ± 0.00 | 9.00 ± 0.00 |" in text
    assert "- dyn_multi, scale=5, 8 cpus: mapping dyn_multi needs at least 9 processes" in text
    assert "11 runs: 9 ok, 2 failed" in text


def test_the_runs_file_round_trips_and_drops_failed_runs(tmp_path):
    runs = RunsFile(tmp_path)
    assert runs.rows() == [] and runs.keys() == set()
    for row in ROWS:
        runs.append(row)
    assert runs.rows() == ROWS and len(runs.keys()) == len(ROWS)
    assert runs.drop_failed() == 2
    assert all(r["status"] == "ok" for r in runs.rows()) and len(runs.rows()) == len(ROWS) - 2


def test_a_damaged_runs_file_is_a_usage_error_naming_the_line(tmp_path):
    from hpcflow.errors import UsageError

    (tmp_path / "runs.jsonl").write_text(json.dumps(ROWS[0]) + "\n{truncated\n")
    with pytest.raises(UsageError, match=r"runs.jsonl line 2 is not a run of a sweep"):
        RunsFile(tmp_path).rows()
