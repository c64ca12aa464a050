"""`hpcflow report RESULTS`: a sweep's plots, drawn from RESULTS/runs.jsonl into RESULTS/plots/
(or, given a run directory, that run's report.html written again from its metrics.json).

- `scaling-<params>.png`: runtime, process time and speed-up over `simple` against
  processes, one line per mapping (mean over the successful repeats, bars of one
  standard deviation; `simple`, one process, a dashed level; failed cells a red x;
  oversubscribed CPU counts starred): the paper's Figures 8, 11 and 12.
- `report.html`: the ratio tables, these plots, every cell with links to its runs'
  report.html, and the failed runs in one offline page (`hpcflow sweep` writes it too).
- `timeline-<mapping>-<params>.png`, for auto-scaled runs: active workers and queued
  tasks over time, with the auto-scaler's target (from the metrics' `timeline` and
  `autoscale_timeline`), one panel per CPU count: the paper's Figure 13.

matplotlib is an extra (`pip install -e '.[plot]' in hpcflow's source tree`) imported only here, with the Agg
backend, so a compute node without a display draws the same files.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from .errors import UsageError
from .htmlreport import write_run_report, write_sweep_report
from .sweep.ratios import cell_means
from .sweep.runsfile import RunsFile
from .sweep.spec import params_key, params_slug, params_text

PLOTS_DIR = "plots"
DPI = 100  # small files: a sweep's plots are committed next to its tables
FEW_SAMPLES = 12  # a timeline this short (the coordinator samples every 0.1 s) is drawn with its points


def load_pyplot():
    try:
        import matplotlib
    except ImportError:
        raise UsageError(
            "hpcflow report draws with matplotlib, which is not installed: "
            "pip install -e '.[plot]' in hpcflow's source tree"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plots_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_report(results: Path, plots: bool = True) -> list[Path]:
    """Draw every plot of the sweep in `results` (with `plots`) and write its report.html;
    the files written. A run directory gets its report.html written again instead."""
    results = Path(results)
    if not results.is_dir():
        raise UsageError(f"{results} is not a directory (give the output directory of `hpcflow sweep`, or a run's)")
    runs = RunsFile(results)
    if not runs.path.is_file() and (results / "metrics.json").is_file():
        return [write_run_report(results)]
    rows = runs.rows()
    if not rows:
        raise UsageError(
            f"{results} has neither a sweep's runs.jsonl nor a run's metrics.json (run `hpcflow sweep` first)"
        )
    ok = [row for row in rows if row.get("status") == "ok"]
    paths: list[Path] = []
    if plots and ok:
        paths = _draw(load_pyplot(), rows, ok, results / PLOTS_DIR)
    note = (
        None
        if plots
        else f"No plots: matplotlib is not installed (pip install -e '.[plot]', then hpcflow report {results})."
    )
    return [*paths, write_sweep_report(results, rows, paths, note)]


def _draw(plt, rows: list[dict[str, Any]], ok: list[dict[str, Any]], out: Path) -> list[Path]:
    out.mkdir(exist_ok=True)
    shown = _varying(ok)
    mappings = list(dict.fromkeys(row["mapping"] for row in rows))  # the sweep's order, failed runs included
    paths = [_scaling_plot(plt, rows, mappings, params, shown, out) for params in _param_sets(ok)]
    for (mapping, _), group in _timelines(ok).items():
        paths.append(_timeline_plot(plt, group, mapping, group[0]["params"], shown, out))
    return paths


def _param_sets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return list({params_key(r["params"]): r["params"] for r in rows}.values())


def _varying(rows: list[dict[str, Any]]) -> list[str]:
    values: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        for key, value in row["params"].items():
            values[key].add(json.dumps(value, sort_keys=True))
    return [key for key, seen in values.items() if len(seen) > 1]


def _title(rows: list[dict[str, Any]], params: dict[str, Any]) -> str:
    text = params_text(params)
    return f"{rows[0].get('workflow', '')}" + (f" ({text})" if text else "")


def _name(prefix: str, params: dict[str, Any], shown: list[str]) -> str:
    """The file of a plot, named after the parameters that vary in the sweep."""
    slug = params_slug({k: v for k, v in params.items() if k in shown})
    return f"{prefix}-{slug}.png" if slug else f"{prefix}.png"


def _scaling_plot(plt, rows, mappings: list[str], params: dict[str, Any], shown: list[str], out: Path) -> Path:
    """Runtime, process time and speed-up against processes, one line per mapping.

    `simple` runs one process whatever the cell's cpus: it is drawn as a dashed level,
    the reference of the speed-up panel, not as a line over processes. A cell whose runs
    all failed is a red x on the axis; a CPU count above the allocation's is starred."""
    key = params_key(params)
    mine = [r for r in rows if params_key(r["params"]) == key]
    means = {k: m for k, m in cell_means(mine).items()}
    cpus = sorted({int(r["cpus"]) for r in mine})
    failed = {(int(r["cpus"]), r["mapping"]) for r in mine if (key, int(r["cpus"]), r["mapping"]) not in means}
    oversubscribed = {int(r["cpus"]) for r in mine if int(r["cpus"]) > (r.get("allocation") or {}).get("cpus", 1e9)}
    reference = [m.runtime_s for (_, _, mapping), m in means.items() if mapping == "simple"]
    simple_s = sum(reference) / len(reference) if reference else None
    panels = ("runtime", "Runtime (s)"), ("process_time", "Process time (s)"), ("speedup", "Speed-up over simple")
    fig, axes = plt.subplots(1, 3 if simple_s else 2, figsize=(13 if simple_s else 10, 4.4), dpi=DPI)
    for ax, (field, title) in zip(axes, panels, strict=False):
        for i, mapping in enumerate(mappings):
            color = f"C{i}"
            points = [(n, means[key, n, mapping]) for n in cpus if (key, n, mapping) in means]
            if mapping == "simple":
                if points and field != "speedup":
                    level = sum(getattr(m, f"{field}_s") for _, m in points) / len(points)
                    ax.axhline(level, color=color, linestyle="--", label="simple (1 process)")
                continue
            if points:
                xs = [n for n, _ in points]
                if field == "speedup":
                    ax.plot(xs, [simple_s / m.runtime_s for _, m in points], marker="o", color=color, label=mapping)
                else:
                    ys = [getattr(m, f"{field}_s") for _, m in points]
                    errs = [getattr(m, f"{field}_sd") for _, m in points]
                    ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, color=color, label=mapping)
            lost = [n for n in cpus if (n, mapping) in failed]
            if lost:
                ax.plot(lost, [0] * len(lost), "x", color="red", markersize=9, clip_on=False, label="_failed")
        if field == "speedup":
            ax.plot(cpus, cpus, color="grey", linestyle=":", label="ideal (= processes)")
        ax.set_title(title)
        ax.set_xlabel("processes (cpus)")
        if len(cpus) > 1 and cpus[-1] / cpus[0] >= 4:
            ax.set_xscale("log", base=2)
        ax.set_xticks(cpus)
        ax.set_xticklabels([f"{n}*" if n in oversubscribed else str(n) for n in cpus])
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    if simple_s:
        more = axes[2].get_legend_handles_labels()
        handles, labels = handles + more[0][-1:], labels + more[1][-1:]
    if failed:
        handles.append(plt.Line2D([], [], color="red", marker="x", linestyle="none"))
        labels.append("all runs of the cell failed")
    fig.legend(handles, labels, loc="lower center", ncol=min(5, len(labels)), frameon=False)
    notes = ["bars: \u00b11 standard deviation over the successful repeats"]
    if oversubscribed:
        notes.append("* more processes than the allocation's CPUs (oversubscribed)")
    fig.text(0.01, 0.01, "; ".join(notes), fontsize="small", color="dimgrey")
    fig.suptitle(_title(rows, params))
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    path = out / _name("scaling", params, shown)
    fig.savefig(path)
    plt.close(fig)
    return path


def _timelines(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Auto-scaled runs by (mapping, params): the lowest repeat of each CPU count."""
    chosen: dict[tuple[str, str, int], dict[str, Any]] = {}
    for row in rows:
        if not row.get("autoscale_timeline") or not row.get("timeline"):
            continue
        key = (row["mapping"], params_key(row["params"]), int(row["cpus"]))
        if key not in chosen or row["repeat"] < chosen[key]["repeat"]:
            chosen[key] = row
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for (mapping, key, _), row in sorted(chosen.items(), key=lambda item: item[0][2]):
        groups[mapping, key].append(row)
    return groups


def _timeline_plot(plt, group, mapping: str, params: dict[str, Any], shown: list[str], out: Path) -> Path:
    from matplotlib.ticker import MaxNLocator  # matplotlib is there: plt came from load_pyplot()

    cols = min(3, len(group))
    nrows = math.ceil(len(group) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.5 * cols, 3.2 * nrows), dpi=DPI, squeeze=False)
    for ax, row in zip(axes.flat, group, strict=False):  # more panels than runs: the rest is hidden
        t, active, queued = ([s[i] for s in row["timeline"]] for i in range(3))
        few = len(t) < FEW_SAMPLES  # a run of a second or less: show where the samples are
        marker = "." if few else None
        pool = {round(s[0], 4): s[1] for s in row.get("pool_timeline") or []}
        if pool:  # the target counts pool workers: the pinned instances are drawn apart
            in_pool = [pool.get(round(x, 4), 0) for x in t]
            ax.step(t, in_pool, where="post", label="pool workers (active)", marker=marker)
            pinned = [a - p for a, p in zip(active, in_pool, strict=True)]
            ax.step(t, pinned, where="post", label="pinned instances (active)", marker=marker)
        else:
            ax.step(t, active, where="post", label="active workers", marker=marker)
        targets = row["autoscale_timeline"]
        label = "auto-scaler target (pool workers)"
        ax.step([s[0] for s in targets], [s[1] for s in targets], where="post", linestyle="--", label=label)
        ax.set_xlabel("seconds")
        ax.set_ylabel("workers")
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # workers are counted, not measured
        ax.set_title(f"{row['cpus']} cpus (repeat {row['repeat']})" + (f", {len(t)} samples only" if few else ""))
        ax.grid(alpha=0.3)
        queue_ax = ax.twinx()
        queue_ax.plot(t, queued, color="grey", alpha=0.6, linewidth=1, label="queued tasks")
        queue_ax.set_ylabel("queued tasks")
        queue_ax.set_ylim(bottom=0)
        queue_ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        if ax is axes.flat[0]:  # one legend for all panels, below them, over no data
            handles = ax.get_legend_handles_labels()[0] + queue_ax.get_legend_handles_labels()[0]
            fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    for ax in list(axes.flat)[len(group) :]:
        ax.set_visible(False)
    fig.suptitle(f"{mapping}: {_title(group, params)}")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    path = out / _name(f"timeline-{mapping}", params, shown)
    fig.savefig(path)
    plt.close(fig)
    return path
