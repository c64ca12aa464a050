"""report.html, per run and per sweep, opened in a real headless Chromium: it loads
offline with no console error and shows its figures; a screenshot of it is a picture."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import require, run_cli

from hpcflow.htmlreport import _count_ticks, line_chart, run_report

pytestmark = pytest.mark.timeout(180)

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]


def chromium(*args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    require(binary is not None, "chromium (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )


def console_errors(stderr: str) -> list[str]:
    """What the page logged to its console (Chromium's CONSOLE lines): a report logs nothing."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def loaded(page: Path) -> str:
    """The page's DOM once it has loaded (scripts run), after checking its console."""
    out = chromium("--dump-dom", page.absolute().as_uri())
    assert out.returncode == 0, out.stderr
    assert console_errors(out.stderr) == []
    return out.stdout


def test_the_console_check_sees_a_script_error(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>undefinedFunction();</script></body></html>")
    out = chromium("--dump-dom", page.as_uri())
    (error,) = console_errors(out.stderr)
    assert "Uncaught ReferenceError: undefinedFunction is not defined" in error


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("run") / "run"
    args = ["run", "pipeline", "-p", "items=200", "-p", "latency=0.005", "-m", "dyn_auto_multi", "-n", "2"]
    out = run_cli(*args, "--oversubscribe", "--run-dir", str(where), "-q")
    assert out.returncode == 0, out.stderr
    return where


def test_a_run_report_loads_offline_with_its_figures(run_dir):
    text = (run_dir / "report.html").read_text()
    assert not re.search(r"""(src|href)=['"]?(https?:)?//""", text)  # nothing from the network
    dom = loaded(run_dir / "report.html")
    assert 'data-figures="2"' in dom  # the workers and the queued tasks, drawn
    assert dom.count("<svg") == 2 and "auto-scaler target (pool workers)" in dom
    assert "pool workers (active)" in dom and "pinned instances (active)" in dom
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for pe, n in metrics["items"].items():
        assert re.search(rf"<td>{pe}</td><td class=\"n\">{n}</td>", dom)


def test_a_screenshot_of_the_run_report_is_a_picture(run_dir, tmp_path):
    image = pytest.importorskip("matplotlib.image")
    shot = tmp_path / "report.png"
    out = chromium("--window-size=1100,1400", f"--screenshot={shot}", (run_dir / "report.html").as_uri())
    assert out.returncode == 0 and shot.is_file(), out.stderr
    pixels = image.imread(shot)
    assert pixels.shape[:2] == (1400, 1100)
    assert pixels.std() > 0.05  # text and figures, not a blank page
    if os.environ.get("HPCFLOW_REPORT_SHOT"):  # keep it to look at
        shutil.copy(shot, os.environ["HPCFLOW_REPORT_SHOT"])


def test_a_failed_runs_report_shows_its_error_escaped():
    metrics = {"workflow": "w", "mapping": "simple", "status": "failed", "items": {"A": 1}, "timeline": []}
    metrics["error"] = "PE A failed on item <b>1</b>: ValueError"
    page = run_report(metrics, [{"pe": "A", "item": "<b>1</b>"}])
    assert "<span class='status failed'>failed</span>" in page
    assert "PE A failed on item &lt;b&gt;1&lt;/b&gt;: ValueError" in page
    assert "<tr><td>A</td><td class='n'>1</td><td class='n'>1</td>" in page  # one item, one error


def rows_of(page: str) -> dict[str, str]:
    """The settings table: {setting: the rest of its row's cells}."""
    return {m[0]: m[1] for m in re.findall(r"<tr><td>([^<]*)</td>(.*?)</tr>", page)}


TIMELINE = [[i / 10, 2, 5] for i in range(20)]
BASE = {"workflow": "w", "mapping": "dyn_multi", "status": "ok", "items": {"A": 3}, "timeline": TIMELINE}


def test_rows_shown_only_when_they_mean_something():
    page = run_report({**BASE, "on_error": "fail", "skipped": 0, "config": {"autoscale": None}}, [])
    rows = rows_of(page)
    assert "on error" in rows and "items skipped" not in rows  # nothing can be skipped under fail
    assert "autoscale" not in rows  # dyn_multi scales nothing
    skip = rows_of(run_report({**BASE, "on_error": "retry:2,skip", "skipped": 0}, []))
    assert skip["items skipped"].startswith("<td>0</td>")
    elastic = {"scheduler": "slurm", "jobs_submitted": 2, "gave_up": None}
    page = run_report({**BASE, "elastic": elastic}, [])
    assert "gave up" not in page and "None" not in page


def test_the_host_row_reads_as_words_not_json():
    alloc = {"scheduler": "slurm", "job_id": "4711", "nodes": 2, "cpus": 32, "total_cpus": 64, "source": "SLURM_*"}
    page = run_report({**BASE, "host": "node01", "allocation": alloc}, [])
    assert rows_of(page)["host"] == "<td>node01</td><td>slurm job 4711, 2 nodes, 64 CPUs (from SLURM_*)</td>"


def test_a_failed_item_under_on_error_fail_is_its_pes_error():
    metrics = {**BASE, "status": "failed", "items": {"Source": 30, "Flaky": 10}, "on_error": "fail"}
    metrics["failed_item"] = {"pe": "Flaky", "instance": 0, "item": "{'input': 10}"}
    page = run_report(metrics, [])
    assert "<tr><td>Flaky</td><td class='n'>10</td><td class='n'>1</td>" in page
    assert "<tr><td>Source</td><td class='n'>30</td><td class='n'>0</td>" in page


def test_a_short_run_has_a_sentence_instead_of_empty_charts():
    page = run_report({**BASE, "runtime_s": 0.21, "timeline": [[0.1, 1, 0], [0.2, 1, 0]]}, [])
    assert "<svg" not in page and "too short for a timeline (sampled every 0.1 s: 2 samples)" in page
    page = run_report({**BASE, "mapping": "simple", "timeline": [[0.0, 1, 0], [3.5, 1, 0]]}, [])
    assert "<svg" not in page and "simple runs in one process and samples no timeline" in page


def test_mpi_draws_its_ranks_and_no_queue_it_does_not_have():
    timeline = [[0.0, 4, 0], [0.2, 3, 0], [1.1, 0, 0]]  # mpi: a sample where each rank ended
    page = run_report({**BASE, "mapping": "mpi", "timeline": timeline}, [])
    assert page.count("<svg") == 1 and "ranks running" in page and "queued tasks" not in page


def test_counting_axes_have_whole_number_ticks():
    assert _count_ticks(4.8) == [0, 1, 2, 3, 4, 5]
    assert _count_ticks(12) == [0, 5, 10, 15]
    assert _count_ticks(0) == [0, 1]
    chart = line_chart([("w", [(0, 0), (1, 6)])], "s", "workers", counts=True)
    labels = re.findall(r"text-anchor='end'>([^<]*)<", chart)
    assert labels and all(label.isdigit() for label in labels)


def test_an_auto_scaled_run_draws_the_pool_apart_from_the_pinned_instances():
    timeline = [[i / 10, 9, 0] for i in range(10)]  # 9 active: 3 pool workers, 6 pinned instances
    metrics = {**BASE, "mapping": "hybrid_auto_multi", "autoscale": "backlog", "timeline": timeline}
    metrics.update(pool_timeline=[[t, 3] for t, _, _ in timeline], autoscale_timeline=[[0.0, 3]])
    page = run_report(metrics, [])
    assert "pool workers (active)" in page and "pinned instances (active)" in page
    assert "auto-scaler target (pool workers)" in page and "stroke-dasharray" in page
    assert "its target is a number of pool workers" in page


def test_a_sweep_report_holds_its_tables_and_plots(tmp_path):
    pytest.importorskip("matplotlib")
    sweep = "name: s\nworkflow: pipeline\nparams: {items: 20}\nmappings: [simple, dyn_multi]\ncpus: [2]\n"
    sweep += "compare: [[dyn_multi, simple]]\noversubscribe: true\n"
    (tmp_path / "s.yaml").write_text(sweep)
    out = run_cli("sweep", "s.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    page = tmp_path / "results" / "s" / "report.html"
    assert f"report {Path('results/s/report.html')}" in out.stderr  # the sweep wrote it and says where
    dom = loaded(page)
    assert "<h2>dyn_multi / simple</h2>" in dom and "<td>items=20</td>" in dom  # params as key=value
    links = re.findall(r'<a href="(runs/[^"]+/report.html)"', dom)  # each cell's run, linked
    assert len(links) == 2 and all((page.parent / link).is_file() for link in links)
    assert "pipeline on dyn_multi" in (page.parent / links[-1]).read_text()
    out = run_cli("report", "results/s", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    written = out.stdout.split()
    pngs = [p for p in written if p.endswith(".png")]
    assert written[-1] == "results/s/report.html" and pngs
    dom = loaded(page)
    assert f'data-figures="{len(pngs)}"' in dom
