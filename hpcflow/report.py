"""`hpcflow report RESULTS`: a sweep's plots, drawn from RESULTS/runs.jsonl into RESULTS/plots/.

- `scaling-<params>.png`: runtime and process time against processes, one line per
  mapping (mean over the successful repeats, bars of one standard deviation): the
  paper's Figures 8, 11 and 12.
- `report.html`: the ratio tables, these plots and the failed runs in one offline page.
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
from .htmlreport import write_sweep_report
from .sweep.ratios import cell_means
from .sweep.runsfile import RunsFile
from .sweep.spec import params_key, params_slug

PLOTS_DIR = "plots"
DPI = 100  # small files: a sweep's plots are committed next to its tables


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


def write_report(results: Path) -> list[Path]:
    """Draw every plot of the sweep in `results`; the PNG files written."""
    results = Path(results)
    if not results.is_dir():
        raise UsageError(f"{results} is not a directory (give the output directory of `hpcflow sweep`)")
    rows = RunsFile(results).rows()
    ok = [row for row in rows if row.get("status") == "ok"]
    if not ok:
        raise UsageError(f"{results / 'runs.jsonl'} has no successful runs to plot (run `hpcflow sweep` first)")
    plt = load_pyplot()
    out = results / PLOTS_DIR
    out.mkdir(exist_ok=True)
    shown = _varying(ok)
    mappings = list(dict.fromkeys(row["mapping"] for row in rows))  # the sweep's order, failed runs included
    paths = []
    for params in _param_sets(ok):
        paths.append(_scaling_plot(plt, ok, mappings, params, shown, out))
    for (mapping, _), group in _timelines(ok).items():
        paths.append(_timeline_plot(plt, group, mapping, group[0]["params"], shown, out))
    paths.append(write_sweep_report(results, rows, paths))
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
    text = ", ".join(f"{k}={_value(v)}" for k, v in params.items())
    return f"{rows[0].get('workflow', '')}" + (f" ({text})" if text else "")


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _name(prefix: str, params: dict[str, Any], shown: list[str]) -> str:
    """The file of a plot, named after the parameters that vary in the sweep."""
    slug = params_slug({k: v for k, v in params.items() if k in shown})
    return f"{prefix}-{slug}.png" if slug else f"{prefix}.png"


def _scaling_plot(plt, rows, mappings: list[str], params: dict[str, Any], shown: list[str], out: Path) -> Path:
    key = params_key(params)
    means = {k: m for k, m in cell_means(rows).items() if k[0] == key}
    cpus = sorted({k[1] for k in means})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=DPI)
    for ax, field, title in ((axes[0], "runtime", "Runtime"), (axes[1], "process_time", "Process time")):
        for mapping in mappings:
            points = [(n, means[key, n, mapping]) for n in cpus if (key, n, mapping) in means]
            if not points:
                continue
            xs = [n for n, _ in points]
            ys = [getattr(m, f"{field}_s") for _, m in points]
            errs = [getattr(m, f"{field}_sd") for _, m in points]
            ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=mapping)
        ax.set_title(title)
        ax.set_xlabel("processes")
        ax.set_ylabel("seconds")
        if len(cpus) > 1 and cpus[-1] / cpus[0] >= 4:
            ax.set_xscale("log", base=2)
        ax.set_xticks(cpus)
        ax.set_xticklabels([str(n) for n in cpus])
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(_title(rows, params))
    fig.tight_layout()
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
    cols = min(3, len(group))
    nrows = math.ceil(len(group) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.5 * cols, 3.2 * nrows), dpi=DPI, squeeze=False)
    for ax, row in zip(axes.flat, group, strict=False):  # more panels than runs: the rest is hidden
        t, active, queued = ([s[i] for s in row["timeline"]] for i in range(3))
        ax.step(t, active, where="post", label="active workers")
        targets = row["autoscale_timeline"]
        ax.step([s[0] for s in targets], [s[1] for s in targets], where="post", linestyle="--", label="pool target")
        ax.set_xlabel("seconds")
        ax.set_ylabel("workers")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{row['cpus']} cpus (repeat {row['repeat']})")
        ax.grid(alpha=0.3)
        queue_ax = ax.twinx()
        queue_ax.plot(t, queued, color="grey", alpha=0.6, linewidth=1, label="queued tasks")
        queue_ax.set_ylabel("queued tasks")
        queue_ax.set_ylim(bottom=0)
        if ax is axes.flat[0]:
            handles = ax.get_legend_handles_labels()[0] + queue_ax.get_legend_handles_labels()[0]
            ax.legend(handles=handles, loc="upper right", fontsize="small")
    for ax in list(axes.flat)[len(group) :]:
        ax.set_visible(False)
    fig.suptitle(f"{mapping}: {_title(group, params)}")
    fig.tight_layout()
    path = out / _name(f"timeline-{mapping}", params, shown)
    fig.savefig(path)
    plt.close(fig)
    return path
