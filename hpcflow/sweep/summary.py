"""OUTPUT/summary.md: the ratio tables in the paper's layout, the runs behind them, and
the failed runs with their reasons, readable on GitHub or in a terminal."""

from __future__ import annotations

from collections import Counter
from typing import Any

from .. import __version__
from .ratios import CellRatio, RatioTable, cell_means, cells_of
from .spec import SweepSpec, params_key, params_text


def cell_label(params: dict[str, Any], cpus: int, shown: list[str]) -> str:
    """`scale=5, 16 cpus`: only the parameters that vary in the sweep."""
    parts = [params_text({k: params[k]}) for k in shown if k in params]
    return ", ".join([*parts, f"{cpus} cpus"])


def summary_markdown(spec: SweepSpec, rows: list[dict[str, Any]], tables: list[RatioTable]) -> str:
    shown = spec.varying()
    ok = sum(1 for r in rows if r.get("status") == "ok")
    fixed = {k: v[0] for k, v in spec.params.items() if len(v) == 1}
    lines = [
        f"# Sweep {spec.name}",
        "",
        f"Workflow `{spec.workflow}`"
        + (f" with {params_text(fixed)}" if fixed else "")
        + (f", varying {', '.join(shown)}" if shown else "")
        + f"; mappings {', '.join(spec.mappings)}; {', '.join(map(str, spec.cpus))} cpus;"
        + f" {spec.repeats} repeat{'s' if spec.repeats != 1 else ''}"
        + (f"; options {params_text(spec.options)}" if spec.options else "")
        + ".",
        f"{len(rows)} runs: {ok} ok, {len(rows) - ok} failed. Written by hpcflow {__version__}.",
        "",
    ]
    for table in tables:
        lines += _ratio_section(table, shown)
    lines += _runs_section(spec, rows, shown)
    lines += _failures_section(rows, shown)
    return "\n".join(lines).rstrip() + "\n"


def _ratio_section(table: RatioTable, shown: list[str]) -> list[str]:
    lines = [
        f"## {table.numerator} / {table.denominator}",
        "",
        f"Mean of {table.numerator} over repeats divided by the mean of {table.denominator}, per cell; "
        f"below 1, {table.numerator} is faster or uses less process time.",
        "",
        "| cell | runtime ratio | process-time ratio |",
        "|---|---:|---:|",
    ]
    for params, cpus, ratio in table.entries:
        label = cell_label(params, cpus, shown)
        lines.append(_ratio_row(label, ratio) if ratio is not None else f"| {label} | — | — |")
    for label, cell in (("best (runtime)", table.best_runtime), ("best (process time)", table.best_process_time)):
        if cell is not None:
            lines.append(_ratio_row(f"**{label}**: {cell_label(cell.params, cell.cpus, shown)}", cell))
    for label, values in (("mean", table.mean()), ("std", table.std())):
        cols = f"{values[0]:.3f} | {values[1]:.3f}" if values is not None else "— | —"
        lines.append(f"| **{label}** | {cols} |")
    if table.missing:
        lines += ["", f"— : no successful run of {table.numerator} or {table.denominator} in that cell."]
    return [*lines, ""]


def _ratio_row(label: str, cell: CellRatio) -> str:
    return f"| {label} | {cell.runtime:.3f} | {cell.process_time:.3f} |"


def _runs_section(spec: SweepSpec, rows: list[dict[str, Any]], shown: list[str]) -> list[str]:
    means = cell_means(rows)
    tried = Counter((params_key(r["params"]), int(r["cpus"]), r["mapping"]) for r in rows)
    lines = [
        "## Runs",
        "",
        "Means over the successful repeats (± sample standard deviation), in seconds.",
        "",
        "| cell | mapping | ok / runs | runtime | process time |",
        "|---|---|---:|---:|---:|",
    ]
    for params, cpus in cells_of(rows):
        for mapping in spec.mappings:
            key = (params_key(params), cpus, mapping)
            if not tried[key]:
                continue
            m = means.get(key)
            runtime = f"{m.runtime_s:.2f} ± {m.runtime_sd:.2f}" if m else "—"
            process = f"{m.process_time_s:.2f} ± {m.process_time_sd:.2f}" if m else "—"
            label = cell_label(params, cpus, shown)
            lines.append(f"| {label} | {mapping} | {m.runs if m else 0} / {tried[key]} | {runtime} | {process} |")
    return [*lines, ""]


def _failures_section(rows: list[dict[str, Any]], shown: list[str]) -> list[str]:
    failed = Counter(
        (r["mapping"], cell_label(r["params"], int(r["cpus"]), shown), r.get("error", "unknown error"))
        for r in rows
        if r.get("status") != "ok"
    )
    if not failed:
        return []
    lines = ["## Failed runs", ""]
    for (mapping, label, error), n in failed.items():
        lines.append(f"- {mapping}, {label}{f' (×{n})' if n > 1 else ''}: {error}")
    return [*lines, ""]
