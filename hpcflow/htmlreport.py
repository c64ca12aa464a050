"""report.html: one self-contained page per run (RUN_DIR/report.html, written however
the run ended) and per sweep (OUTPUT/report.html, beside the PNGs of `hpcflow report`).

Self-contained means it opens offline and can be mailed: inline CSS, figures as inline
SVG (a run's report needs no matplotlib, so every run writes one) or as PNGs inlined in
base64 (a sweep's, drawn by report.py), no script or font from the network. Modelled on
what Nextflow's `-with-report` shows: the settings, a table per task kind (here per PE),
and the timeline of the resources in use.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .durable import replace_file

REPORT_FILE = "report.html"
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 980px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5em 0; } td, th { padding: .2em .8em; border-bottom: 1px solid #eee; }
th { text-align: left; background: #f5f5f5; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.status { padding: .1em .5em; border-radius: .3em; color: #fff; }
.ok { background: #2a7d2a; } .failed, .stalled { background: #b22; } .interrupted { background: #c80; }
.error { color: #b22; white-space: pre-wrap; } .note { color: #666; font-size: .9em; }
figure { margin: 1em 0; } img { max-width: 100%; } svg text { font: 11px system-ui, sans-serif; }
"""

# A check the headless-browser test relies on: every figure is there once the page has loaded.
SCRIPT = """
window.addEventListener("load", function () {
  var figures = document.querySelectorAll("figure svg, figure img");
  document.body.setAttribute("data-figures", String(figures.length));
});
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width'><title>{esc(title)}</title>"
        f"<style>{CSS}</style></head>\n<body>\n{body}\n<script>{SCRIPT}</script>\n</body></html>\n"
    )


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[bool] | None = None) -> str:
    numeric = numeric or [False] * len(headers)
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='n'>{esc(c)}</td>" if n else f"<td>{esc(c)}</td>" for c, n in zip(row, numeric, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _nice_max(value: float) -> float:
    """The axis end: a round multiple of a power of ten, at least `value`, not far above it."""
    if value <= 0:
        return 1.0
    step = 10.0 ** math.floor(math.log10(value))
    return next(m * step for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if m * step >= value)


def line_chart(
    series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    xlabel: str,
    ylabel: str,
    width: int = 900,
    height: int = 260,
) -> str:
    """An inline SVG chart of step lines (a value holds until the next sample), the
    legend above the plot area so it never covers the data."""
    left, right, top, bottom = 60, 15, 30, 40
    pw, ph = width - left - right, height - top - bottom
    xs = [x for _, pts in series for x, _ in pts]
    ys = [y for _, pts in series for _, y in pts]
    xmax, ymax = _nice_max(max(xs, default=1.0)), _nice_max(max(ys, default=1.0))

    def sx(x: float) -> float:
        return left + pw * x / xmax

    def sy(y: float) -> float:
        return top + ph * (1 - y / ymax)

    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img'>"]
    for i in range(6):
        gx, gy = xmax * i / 5, ymax * i / 5
        parts.append(f"<line x1='{sx(gx):.1f}' y1='{top}' x2='{sx(gx):.1f}' y2='{top + ph}' stroke='#eee'/>")
        parts.append(f"<line x1='{left}' y1='{sy(gy):.1f}' x2='{left + pw}' y2='{sy(gy):.1f}' stroke='#eee'/>")
        parts.append(f"<text x='{sx(gx):.1f}' y='{top + ph + 14}' text-anchor='middle'>{gx:g}</text>")
        parts.append(f"<text x='{left - 6}' y='{sy(gy) + 4:.1f}' text-anchor='end'>{gy:g}</text>")
    parts.append(f"<rect x='{left}' y='{top}' width='{pw}' height='{ph}' fill='none' stroke='#999'/>")
    parts.append(f"<text x='{left + pw / 2}' y='{height - 6}' text-anchor='middle'>{esc(xlabel)}</text>")
    parts.append(
        f"<text transform='translate(14 {top + ph / 2}) rotate(-90)' text-anchor='middle'>{esc(ylabel)}</text>"
    )
    lx = left
    for i, (name, pts) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        path = []
        for j, (x, y) in enumerate(pts):
            if j:
                path.append(f"L{sx(x):.1f},{sy(pts[j - 1][1]):.1f}")
            path.append(f"{'L' if j else 'M'}{sx(x):.1f},{sy(y):.1f}")
        if path:
            parts.append(f"<path d='{' '.join(path)}' fill='none' stroke='{color}' stroke-width='1.5'/>")
        parts.append(f"<rect x='{lx}' y='8' width='14' height='4' fill='{color}'/>")
        parts.append(f"<text x='{lx + 18}' y='14'>{esc(name)}</text>")
        lx += 30 + 7 * len(name)
    parts.append("</svg>")
    return "".join(parts)


def figure(chart: str, caption: str) -> str:
    return f"<figure>{chart}<figcaption class='note'>{esc(caption)}</figcaption></figure>"


# -- one run ----------------------------------------------------------------------------
def _seconds(value: Any) -> str:
    return f"{value:.4g} s" if isinstance(value, (int, float)) else "—"


def run_report(metrics: dict[str, Any], errors: list[dict[str, Any]]) -> str:
    """The page of one run from its metrics.json and errors.jsonl."""
    status = metrics.get("status", "?")
    title = f"{metrics.get('workflow')} on {metrics.get('mapping')}"
    body = [f"<h1>{esc(title)} <span class='status {esc(status)}'>{esc(status)}</span></h1>"]
    if metrics.get("error"):
        body.append(f"<p class='error'>{esc(metrics['error'])}</p>")
    sources = (metrics.get("config") or {}).get("sources", {})
    settings = [
        ("workflow", metrics.get("workflow"), sources.get("workflow", "")),
        ("params", json.dumps(metrics.get("params", {})), sources.get("params", "")),
        ("mapping", metrics.get("mapping"), sources.get("mapping", "")),
        ("processes", metrics.get("processes"), sources.get("cpus", "")),
        ("autoscale", metrics.get("autoscale", "—"), sources.get("autoscale", "")),
        ("runtime", _seconds(metrics.get("runtime_s")), ""),
        ("process time", _seconds(metrics.get("process_time_s")), "sum over processes of their active wall time"),
        ("CPU time", _seconds(metrics.get("cpu_time_s")), "user + system"),
        ("items skipped", metrics.get("skipped", metrics.get("errors", 0)), "on_error skip: see errors.jsonl"),
        ("host", metrics.get("host"), json.dumps(metrics.get("allocation", {}))),
        ("hpcflow", metrics.get("hpcflow_version"), ""),
    ]
    body += ["<h2>Settings</h2>", table(("setting", "value", "from"), settings)]
    stats = metrics.get("pe_stats") or {}
    failed = Counter(e.get("pe") for e in errors)
    process_time = metrics.get("process_time_s") or 0.0
    rows = []
    for pe, n in (metrics.get("items") or {}).items():
        s = stats.get(pe, {})
        share = s.get("busy_share")
        rows.append(
            (
                pe,
                n,
                failed.get(pe, 0),
                _seconds(s.get("service_mean_s")),
                _seconds(s.get("service_p95_s")),
                f"{share:.1%}" if share is not None else "—",
            )
        )
    body += [
        "<h2>Processing elements</h2>",
        table(("PE", "items", "errors", "mean service", "p95 service", "busy share"), rows, (0, 1, 1, 1, 1, 1)),
        "<p class='note'>Service time: the time a worker spends in process() per item, as workers report it "
        "(the coordinator's running mean, sampled every 0.1 s; mean and 95th percentile of those samples). "
        f"Busy share: items × mean service time over the run's process time ({process_time:.4g} s). "
        "Mappings without a coordinator (simple, mpi) report no service times.</p>",
    ]
    elastic = metrics.get("elastic")
    if elastic:
        shown = ("jobs_submitted", "jobs_started", "jobs_cancelled", "jobs_failed", "job_process_s", "gave_up")
        body += [
            f"<h2>Worker jobs (--elastic, {esc(elastic.get('scheduler', '?'))})</h2>",
            table(("figure", "value"), [(k.replace("_", " "), elastic.get(k)) for k in shown if k in elastic]),
            "<p class='note'>Jobs the run submitted while its backlog outgrew its workers, and cancelled when "
            "they stayed idle or the run ended; job process s: CPUs × seconds the jobs held.</p>",
        ]
    body.append("<h2>Timeline</h2>")
    timeline = metrics.get("timeline") or []
    active = [(t, a) for t, a, _ in timeline]
    queued = [(t, q) for t, _, q in timeline]
    workers = [("active workers", active)]
    if metrics.get("autoscale_timeline"):
        workers.append(("auto-scaler target", [(t, n) for t, n in metrics["autoscale_timeline"]]))
    body.append(figure(line_chart(workers, "seconds since the start", "workers"), "Workers over time."))
    body.append(figure(line_chart([("queued tasks", queued)], "seconds since the start", "tasks"), "Queued tasks."))
    body.append(f"<p class='note'>{len(timeline)} samples.</p>")
    return page(f"hpcflow: {title}", "\n".join(body))


def write_run_report(run_dir: Path, metrics: dict[str, Any] | None = None) -> Path:
    """RUN_DIR/report.html from the run's metrics (metrics.json unless given) and
    errors.jsonl, if any; replaced whole."""
    run_dir = Path(run_dir)
    if metrics is None:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    errors_file = run_dir / "errors.jsonl"
    errors = [json.loads(line) for line in errors_file.read_text().splitlines()] if errors_file.is_file() else []
    path = run_dir / REPORT_FILE
    replace_file(path, run_report(metrics, errors))
    return path


# -- a sweep ----------------------------------------------------------------------------
def png_figure(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f"<figure><img alt='{esc(path.name)}' src='data:image/png;base64,{data}'></figure>"


def sweep_report(results: Path, rows: list[dict[str, Any]], pngs: Sequence[Path]) -> str:
    """The page of a sweep: its ratio tables (ratios.csv), its plots, its failed runs."""
    name = rows[0].get("sweep", results.name) if rows else results.name
    ok = sum(1 for r in rows if r.get("status") == "ok")
    body = [
        f"<h1>Sweep {esc(name)}</h1>",
        f"<p>{len(rows)} runs: {ok} ok, {len(rows) - ok} failed. "
        "Tables: summary.md and ratios.csv beside this file.</p>",
    ]
    ratios = results / "ratios.csv"
    if ratios.is_file():
        with open(ratios, newline="") as f:
            entries = list(csv.DictReader(f))
        for pair in dict.fromkeys((e["numerator"], e["denominator"]) for e in entries):
            mine = [e for e in entries if (e["numerator"], e["denominator"]) == pair]
            body.append(f"<h2>{esc(pair[0])} / {esc(pair[1])}</h2>")
            body.append(
                table(
                    ("row", "params", "cpus", "runtime ratio", "process-time ratio"),
                    [(e["row"], e["params"], e["cpus"], e["runtime_ratio"], e["process_time_ratio"]) for e in mine],
                    (0, 0, 1, 1, 1),
                )
            )
    body.append("<h2>Plots</h2>")
    body += [png_figure(p) for p in pngs]
    failed = [r for r in rows if r.get("status") != "ok"]
    if failed:
        body.append("<h2>Failed runs</h2>")
        body.append(
            table(
                ("mapping", "cpus", "params", "repeat", "error"),
                [(r["mapping"], r["cpus"], json.dumps(r["params"]), r["repeat"], r.get("error", "")) for r in failed],
            )
        )
    return page(f"hpcflow sweep {name}", "\n".join(body))


def write_sweep_report(results: Path, rows: list[dict[str, Any]], pngs: Sequence[Path]) -> Path:
    path = Path(results) / REPORT_FILE
    path.write_text(sweep_report(Path(results), rows, pngs))
    return path
