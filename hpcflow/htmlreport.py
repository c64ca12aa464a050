"""report.html: one self-contained page per run (RUN_DIR/report.html, written however
the run ended) and per sweep (OUTPUT/report.html, written at the end of the sweep and
again by `hpcflow report`, beside its PNGs; each cell links to its runs' pages).

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
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .attempts import ended_text, gaps, summary
from .durable import replace_file
from .sweep.spec import params_text

REPORT_FILE = "report.html"
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 980px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5em 0; } td, th { padding: .2em .8em; border-bottom: 1px solid #eee; }
th { text-align: left; background: #f5f5f5; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
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


class Markup(str):
    """Text that is already HTML (a link), put into a table cell as it is."""


def esc(value: Any) -> str:
    return value if isinstance(value, Markup) else html.escape(str(value), quote=True)


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


def _count_ticks(value: float) -> list[int]:
    """Ticks of an axis that counts (workers, tasks): whole numbers, at most 6, from 0 to at least `value`."""
    top = max(1, math.ceil(value))
    step = next(m * 10**e for e in range(12) for m in (1, 2, 5) if m * 10**e * 5 >= top)
    return list(range(0, step * math.ceil(top / step) + 1, step))


def line_chart(
    series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    xlabel: str,
    ylabel: str,
    width: int = 900,
    height: int = 260,
    counts: bool = False,
    dashed: Sequence[str] = (),
    gaps: Sequence[tuple[float, float]] = (),
) -> str:
    """An inline SVG chart of step lines (a value holds until the next sample), the
    legend above the plot area so it never covers the data. `counts`: the y axis counts
    things, so its ticks are whole numbers; `dashed`: the series drawn dashed (a target
    over the line it steers, both visible where they meet); `gaps` (x from, x to) are
    shaded, and no line crosses one: nothing ran there (the time between attempts)."""
    left, right, top, bottom = 60, 15, 30, 40
    pw, ph = width - left - right, height - top - bottom
    xs = [x for _, pts in series for x, _ in pts]
    ys = [y for _, pts in series for _, y in pts]
    xmax = _nice_max(max(xs, default=1.0))
    if counts:  # headroom, so that a line at the maximum does not run along the frame
        yticks: list[float] = list(_count_ticks(max(ys, default=1.0) * 1.1))
    else:
        top_y = _nice_max(max(ys, default=1.0))
        yticks = [top_y * i / 5 for i in range(6)]
    ymax = yticks[-1]

    def sx(x: float) -> float:
        return left + pw * x / xmax

    def sy(y: float) -> float:
        return top + ph * (1 - y / ymax)

    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img'>"]
    for i in range(6):
        gx = xmax * i / 5
        parts.append(f"<line x1='{sx(gx):.1f}' y1='{top}' x2='{sx(gx):.1f}' y2='{top + ph}' stroke='#eee'/>")
        parts.append(f"<text x='{sx(gx):.1f}' y='{top + ph + 14}' text-anchor='middle'>{gx:g}</text>")
    for gy in yticks:
        parts.append(f"<line x1='{left}' y1='{sy(gy):.1f}' x2='{left + pw}' y2='{sy(gy):.1f}' stroke='#eee'/>")
        parts.append(f"<text x='{left - 6}' y='{sy(gy) + 4:.1f}' text-anchor='end'>{gy:g}</text>")
    for g0, g1 in gaps:
        gw = sx(g1) - sx(g0)
        parts.append(f"<rect x='{sx(g0):.1f}' y='{top}' width='{gw:.1f}' height='{ph}' fill='#f0f0f0'/>")
        if gw > 60:
            mid = (sx(g0) + sx(g1)) / 2
            parts.append(f"<text x='{mid:.1f}' y='{top + 14}' text-anchor='middle' fill='#888'>between attempts</text>")
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
            joined = j > 0 and not any(pts[j - 1][0] <= g0 and x >= g1 for g0, g1 in gaps)
            if joined:
                path.append(f"L{sx(x):.1f},{sy(pts[j - 1][1]):.1f}")
            path.append(f"{'L' if joined else 'M'}{sx(x):.1f},{sy(y):.1f}")
        dash = " stroke-dasharray='6 4'" if name in dashed else ""
        if path:
            parts.append(f"<path d='{' '.join(path)}' fill='none' stroke='{color}' stroke-width='1.5'{dash}/>")
        parts.append(f"<line x1='{lx}' y1='10' x2='{lx + 14}' y2='10' stroke='{color}' stroke-width='4'{dash}/>")
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
    settings = _settings(metrics)
    body += ["<h2>Settings</h2>", table(("setting", "value", "from"), settings)]
    body += attempts_section(metrics)
    stats = metrics.get("pe_stats") or {}
    failed = Counter(e.get("pe") for e in errors)
    if metrics.get("failed_item"):  # the item the run failed on is its PE's error too
        failed[metrics["failed_item"].get("pe")] += 1
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
    body.append("<h2>Processing elements</h2>")
    if stats:
        body += [
            table(("PE", "items", "errors", "mean service", "p95 service", "busy share"), rows, (0, 1, 1, 1, 1, 1)),
            "<p class='note'>Service time: the time a worker spends in process() per item, as workers report it "
            "(the coordinator's running mean, sampled every 0.1 s; mean and 95th percentile of those samples). "
            f"Busy share: items × mean service time over the run's process time ({process_time:.4g} s).</p>",
        ]
    else:  # simple and mpi have no coordinator to measure them
        body += [
            table(("PE", "items", "errors"), [r[:3] for r in rows], (0, 1, 1)),
            f"<p class='note'>{esc(metrics.get('mapping'))} reports no service times (only the mappings with a "
            "coordinator measure them).</p>",
        ]
    elastic = metrics.get("elastic")
    if elastic:
        shown = ("jobs_submitted", "jobs_started", "jobs_cancelled", "jobs_failed", "job_process_s", "gave_up")
        body += [
            f"<h2>Worker jobs (--elastic, {esc(elastic.get('scheduler', '?'))})</h2>",
            table(
                ("figure", "value"),
                [(k.replace("_", " "), elastic[k]) for k in shown if elastic.get(k) not in (None, False)],
            ),
            "<p class='note'>Jobs the run submitted while its backlog outgrew its workers, and cancelled when "
            "they stayed idle or the run ended; job process s: CPUs × seconds the jobs held.</p>",
        ]
    body.append("<h2>Timeline</h2>")
    body += _timeline(metrics)
    return page(f"hpcflow: {title}", "\n".join(body))


TARGET = "auto-scaler target (pool workers)"
FEW_SAMPLES = 5  # a timeline of fewer samples (0.1 s apart) is a sentence, not two empty charts


def _settings(metrics: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """The settings table: each row shown when it means something for this run."""
    sources = (metrics.get("config") or {}).get("sources", {})
    params = metrics.get("params") or {}
    rows = [
        ("workflow", metrics.get("workflow"), sources.get("workflow", "")),
        (
            "params",
            params_text(params) or "the workflow's defaults",
            sources.get("params", ""),
        ),
        ("mapping", metrics.get("mapping"), sources.get("mapping", "")),
        ("processes", metrics.get("processes"), sources.get("cpus", "")),
    ]
    if metrics.get("autoscale"):  # only an auto-scaled run has a policy
        rows.append(("autoscale", metrics["autoscale"], sources.get("autoscale", "")))
    rows += [
        ("runtime", _seconds(metrics.get("runtime_s")), ""),
        ("process time", _seconds(metrics.get("process_time_s")), "sum over processes of their active wall time"),
        ("CPU time", _seconds(metrics.get("cpu_time_s")), "user + system"),
    ]
    on_error = metrics.get("on_error")
    if on_error:
        rows.append(("on error", on_error, ""))
    skipped = metrics.get("skipped", metrics.get("errors", 0)) or 0
    if skipped or (on_error and on_error.endswith("skip")):  # skip, retry:N,skip: a failed item is skipped
        rows.append(("items skipped", skipped, "errors.jsonl holds each, with its traceback"))
    rows.append(("host", metrics.get("host"), _allocation(metrics.get("allocation") or {})))
    if metrics.get("worker_hosts"):
        hosts = ", ".join(f"{host} {n}" for host, n in metrics["worker_hosts"].items())
        rows.append(("workers by host", hosts, "where the workers (mpi: the ranks) ran"))
    rows.append(("hpcflow", metrics.get("hpcflow_version"), ""))
    return [row for row in rows if row[1] is not None]  # a figure the metrics lack is no row


def _allocation(a: dict[str, Any]) -> str:
    """`SLURM job 123, 2 nodes, 64 CPUs (from SLURM_JOB_CPUS_PER_NODE)`, not the JSON."""
    if not a:
        return ""
    scheduler = a.get("scheduler", "?")
    text = f"{scheduler} job {a['job_id']}" if a.get("job_id") else f"{scheduler} (no batch job)"
    nodes = a.get("nodes") or 1
    cpus = a.get("total_cpus") or a.get("cpus")
    text += f", {nodes} node{'s' if nodes != 1 else ''}, {cpus} CPUs"
    return text + (f" (from {a['source']})" if a.get("source") else "")


def _timeline(metrics: dict[str, Any]) -> list[str]:
    """The workers and the queued tasks over time; on an auto-scaled run the pool (which
    the auto-scaler's target counts) apart from the pinned instances; a sentence for a
    run too short to sample."""
    timeline = metrics.get("timeline") or []
    if metrics.get("mapping") == "mpi" and len(timeline) > 1:  # a sample where each rank ended, no queue
        ranks = [(t, a) for t, a, _ in timeline]
        caption = "MPI ranks still running: each ends when its PE instance is done. mpi has no queue to sample."
        return [
            figure(line_chart([("ranks running", ranks)], "seconds since the start", "ranks", counts=True), caption)
        ]
    if len(timeline) < FEW_SAMPLES:
        why = (
            "simple runs in one process and samples no timeline"
            if metrics.get("mapping") == "simple"
            else f"the run took {_seconds(metrics.get('runtime_s'))}, too short for a timeline "
            f"(sampled every 0.1 s: {len(timeline)} samples)"
        )
        return [f"<p class='note'>No charts: {esc(why)}.</p>"]
    pool = {round(t, 4): n for t, n in metrics.get("pool_timeline") or []}
    if pool:
        workers = [
            ("pool workers (active)", [(t, pool.get(round(t, 4), 0)) for t, _, _ in timeline]),
            ("pinned instances (active)", [(t, a - pool.get(round(t, 4), 0)) for t, a, _ in timeline]),
            (TARGET, [(t, n) for t, n in metrics.get("autoscale_timeline") or []]),
        ]
        caption = (
            "Workers over time. Pool workers run any stateless PE; the auto-scaler parks and wakes them, and its "
            "target is a number of pool workers. Pinned instances (the roots, stateful instances) have a process "
            "each and count as active while they run something; they are not part of the target."
        )
    else:
        workers = [("active workers", [(t, a) for t, a, _ in timeline])]
        caption = "Workers over time: the processes running a task or holding their CPU."
    queued = [(t, q) for t, _, q in timeline]
    log = metrics.get("attempt_log") or []  # several attempts: one axis over them all, the time between shaded
    axis, between = (
        ("seconds since the first attempt started", gaps(log)) if len(log) > 1 else ("seconds since the start", [])
    )
    return [
        figure(line_chart(workers, axis, "workers", counts=True, dashed=[TARGET], gaps=between), caption),
        figure(
            line_chart([("queued tasks", queued)], axis, "tasks", counts=True, gaps=between),
            "Tasks queued for the workers over time.",
        ),
        f"<p class='note'>{len(timeline)} samples, 0.1 s apart.</p>",
    ]


def attempts_section(metrics: dict[str, Any]) -> list[str]:
    """A run of more than one attempt (Ctrl-C and resume, `submit --until-done`): each
    attempt, and how the run's figures add up over them."""
    log = metrics.get("attempt_log") or []
    if len(log) < 2:
        return []
    rows = []
    for a in log:
        length = a["end_s"] - a["start_s"] if a.get("end_s") is not None else None
        rows.append(
            (
                a.get("attempt"),
                time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(a["started_at"])),
                f"{a['start_s']:.1f}\u00a0s",  # (a no-break space: the unit stays with its figure)
                f"{length:.1f}\u00a0s" if length is not None else "—",
                a.get("job_id") or "—",
                a.get("resumed_from") or "the start",
                a.get("checkpoint") or "—",
                ended_text(a, a is log[-1]),
            )
        )
    s = summary(log)
    headers = (
        "attempt",
        "started",
        "at",
        "ran",
        "job",
        "resumed from checkpoint",
        "checkpoint written",
        "how it ended",
    )
    return [
        f"<h2>Attempts ({len(log)})</h2>",
        table(headers, rows, (1, 0, 1, 1, 0, 1, 1, 0)),
        f"<p class='note'>The run spanned {s['span_s']:.4g} s from the first attempt's start to the last one's end, "
        f"{s['between_s']:.4g} s of it between attempts (waiting in the queue, or until `hpcflow resume`). "
        "Runtime, process time and CPU time above are summed over the attempts, up to the checkpoint each "
        "resumed from; the timeline below shows every attempt on one axis.</p>",
    ]


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


def sweep_report(results: Path, rows: list[dict[str, Any]], pngs: Sequence[Path], note: str | None = None) -> str:
    """The page of a sweep: its ratio tables (ratios.csv), its plots, every cell with
    links to its runs' own report.html, its failed runs."""
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
                    [
                        (e["row"], _csv_params(e["params"]), e["cpus"], e["runtime_ratio"], e["process_time_ratio"])
                        for e in mine
                    ],
                    (0, 0, 1, 1, 1),
                )
            )
    body.append("<h2>Plots</h2>")
    if note:
        body.append(f"<p class='note'>{esc(note)}</p>")
    body += [png_figure(p) for p in pngs]
    body += _cells_section(results, rows)
    failed = [r for r in rows if r.get("status") != "ok"]
    if failed:
        body.append("<h2>Failed runs</h2>")
        body.append(
            table(
                ("mapping", "cpus", "params", "repeat", "error"),
                [
                    (r["mapping"], r["cpus"], params_text(r["params"]), _run_link(results, r), r.get("error", ""))
                    for r in failed
                ],
            )
        )
    return page(f"hpcflow sweep {name}", "\n".join(body))


def _csv_params(text: str) -> str:
    """ratios.csv keeps a cell's params as JSON (a machine reads it); a page shows key=value."""
    try:
        params = json.loads(text)
    except ValueError:
        return text
    return params_text(params) if isinstance(params, dict) else text


def _run_link(results: Path, row: dict[str, Any], label: str | None = None) -> Markup | str:
    """`repeat N` (or `label`), linked to that run's report.html when its run directory is kept."""
    label = label or f"repeat {row.get('repeat', '?')}"
    if not row.get("run_dir"):
        return label
    target = f"runs/{Path(row['run_dir']).name}/{REPORT_FILE}"
    if not (results / target).is_file():
        return label
    return Markup(f"<a href='{esc(target)}' class='{esc(row.get('status', ''))}-run'>{esc(label)}</a>")


def _cells_section(results: Path, rows: list[dict[str, Any]]) -> list[str]:
    """One line a cell and mapping: the means over its successful repeats, and a link to
    each repeat's report.html (a run directory that is not kept has no link)."""
    seen: dict[str, set[str]] = {}
    for row in rows:
        for key, value in row["params"].items():
            seen.setdefault(key, set()).add(json.dumps(value, sort_keys=True))
    varying = [key for key, values in seen.items() if len(values) > 1]
    fixed = {k: v for k, v in rows[0]["params"].items() if k not in varying} if rows else {}
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for row in rows:
        key = (json.dumps(row["params"], sort_keys=True), int(row["cpus"]), row["mapping"])
        groups.setdefault(key, []).append(row)
    lines = []
    for (_, cpus, mapping), group in groups.items():
        good = [r for r in group if r.get("status") == "ok"]
        runtime = _mean_sd([r["runtime_s"] for r in good])
        process = _mean_sd([r["process_time_s"] for r in good])
        repeats = sorted(group, key=lambda r: r.get("repeat", 0))
        links = Markup(" · ".join(esc(_run_link(results, r, str(r.get("repeat", "?")))) for r in repeats))
        lines.append(
            (
                params_text({k: v for k, v in group[0]["params"].items() if k in varying}) or "—",
                mapping,
                cpus,
                f"{len(good)} / {len(group)}",
                runtime,
                process,
                links,
            )
        )
    linked = any("<a " in line[-1] for line in lines)
    note = (
        "Each repeat links to its run's own report (its settings, PEs and timeline)."
        if linked
        else "The run directories of these runs are not kept here, so the repeats have no reports to link."
    )
    headers = ("params", "mapping", "cpus", "ok / runs", "runtime (s)", "process time (s)", "repeats")
    numeric = (0, 0, 1, 1, 1, 1, 0)
    if not varying:  # every cell had the same params: said once above the table
        headers, numeric, lines = headers[1:], numeric[1:], [line[1:] for line in lines]
    return [
        "<h2>Cells</h2>",
        f"<p>Every run had {esc(params_text(fixed))}.</p>" if fixed else "",
        table(headers, lines, numeric),
        f"<p class='note'>Means over the successful repeats ± sample standard deviation. {note}</p>",
    ]


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "—"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.3f}"
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{mean:.3f} ± {sd:.3f}"


def write_sweep_report(
    results: Path, rows: list[dict[str, Any]], pngs: Sequence[Path], note: str | None = None
) -> Path:
    path = Path(results) / REPORT_FILE
    path.write_text(sweep_report(Path(results), rows, pngs, note))
    return path
