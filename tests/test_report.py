"""`hpcflow report`: the PNG files it draws from a runs file, and its one-line errors."""

from __future__ import annotations

import json
import sys

import pytest

from hpcflow.errors import UsageError
from hpcflow.report import write_report

PNG = b"\x89PNG\r\n\x1a\n"


def row(mapping, cpus, repeat, runtime, process, scale=1, auto=False, status="ok"):
    r = {
        "workflow": "galaxy",
        "params": {"scale": scale, "heavy": True},
        "mapping": mapping,
        "cpus": cpus,
        "repeat": repeat,
        "status": status,
        "runtime_s": runtime,
        "process_time_s": process,
        "timeline": [[0.0, 1, 0], [0.1, 3, 12], [0.2, 4, 6], [0.3, 2, 0]],
    }
    if auto:
        r["autoscale"] = "backlog"
        r["autoscale_timeline"] = [[0.0, 1], [0.1, 3], [0.2, 3], [0.3, 1]]
    return r


@pytest.fixture
def results(tmp_path):
    rows = [
        row(mapping, cpus, repeat, 10.0 / cpus + repeat, 5.0 + cpus, scale, auto=mapping == "dyn_auto_multi")
        for scale in (1, 5)
        for mapping in ("multi", "dyn_multi", "dyn_auto_multi")
        for cpus in (4, 8, 16)
        for repeat in (0, 1)
    ]
    rows.append(row("multi", 2, 0, 0, 0, status="failed"))
    out = tmp_path / "results"
    out.mkdir()
    (out / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def test_report_draws_scaling_and_timeline_plots(results):
    *paths, page = write_report(results)
    names = sorted(p.name for p in paths)
    assert names == [
        "scaling-scale=1.png",  # named after the parameters that vary
        "scaling-scale=5.png",
        "timeline-dyn_auto_multi-scale=1.png",
        "timeline-dyn_auto_multi-scale=5.png",
    ]
    for path in paths:
        assert path.parent == results / "plots" and path.read_bytes()[:8] == PNG
    assert page == results / "report.html" and page.read_text().count("data:image/png;base64,") == 4


def test_report_from_the_command_line_prints_the_files(in_process, results):
    code, out, err = in_process("report", str(results))
    assert code == 0, err
    *pngs, page = out.splitlines()
    assert len(pngs) == 4 and all(line.endswith(".png") for line in pngs) and page.endswith("report.html")


def test_without_matplotlib_report_names_the_extra(in_process, results, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _, err = in_process("report", str(results))
    assert code == 2
    assert err == (
        "hpcflow: error: hpcflow report draws with matplotlib, which is not installed: "
        "pip install -e '.[plot]' in hpcflow's source tree\n"
    )


def test_nothing_to_report_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="is not a directory"):
        write_report(tmp_path / "nope")
    with pytest.raises(UsageError, match="has neither a sweep's runs.jsonl nor a run's metrics.json"):
        write_report(tmp_path)


def test_a_sweep_whose_runs_all_failed_gets_a_page_of_its_failures_and_no_plots(tmp_path):
    failed = row("multi", 2, 0, 0, 0, status="failed")
    failed["error"] = "needs at least 16 processes"
    (tmp_path / "runs.jsonl").write_text(json.dumps(failed) + "\n")
    (page,) = write_report(tmp_path)
    text = page.read_text()
    assert "needs at least 16 processes" in text and "scale=1, heavy=true" in text
    assert not (tmp_path / "plots").exists()


def test_without_plots_the_page_says_how_to_draw_them(results):
    (page,) = write_report(results, plots=False)
    assert f"pip install -e &#x27;.[plot]&#x27;, then hpcflow report {results}" in page.read_text()
    assert not (results / "plots").exists()


def test_report_on_a_run_directory_writes_its_report_again(in_process, tmp_path):
    run_dir = tmp_path / "run"
    code, _, err = in_process("run", "pipeline", "-p", "items=5", "-m", "simple", "--run-dir", str(run_dir), "-q")
    assert code == 0, err
    (run_dir / "report.html").unlink()
    code, out, err = in_process("report", str(run_dir))
    assert code == 0, err
    assert out.splitlines() == [str(run_dir / "report.html")]
    text = (run_dir / "report.html").read_text()
    assert "pipeline on simple" in text and "items=5" in text  # params as key=value, not JSON
