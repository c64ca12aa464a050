"""`hpcflow sweep` and `hpcflow report`: an experiment's runs and tables, then its plots."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import RunAborted, UsageError
from ..report import plots_available, write_report
from ..sweep import SweepRun, load_sweep
from .flags import CONFIG_OPTION


@click.command("sweep")
@click.argument("experiment", type=click.Path(dir_okay=False))
@click.option("--submit", is_flag=True, help="One batch job per cell; results gathered as the jobs end.")
@click.option("-o", "--output", type=click.Path(file_okay=False), default=None, help="[default: the file's output:]")
@CONFIG_OPTION
@click.option("--retry-failed", is_flag=True, help="Run the cells recorded as failed again.")
@click.option("--max-jobs", type=click.IntRange(min=1), default=None, help="--submit: jobs queued or running at once.")
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
def sweep_cmd(experiment, submit, output, config_file, retry_failed, max_jobs, quiet):
    """Run the experiment EXPERIMENT.yaml: every cell (params x mappings x cpus x
    repeats) not yet in OUTPUT/runs.jsonl, then write OUTPUT/ratios.csv, summary.md and
    report.html (with its plots when matplotlib is installed; each run links to its own).

    Cells run one after another in this allocation, or with --submit as one batch job
    each. A failed cell is recorded with its error and the sweep goes on; the sweep then
    exits 1 (a cell whose mapping needs more processes than its cpus is recorded, without
    a run, and does not change the exit code). One sweep at a time on an OUTPUT (a second one: exit 2)."""
    if max_jobs is not None and not submit:
        raise UsageError("--max-jobs limits batch jobs: it needs --submit")
    spec = load_sweep(experiment)
    outcome = SweepRun(
        spec,
        output=output,
        submit=submit,
        quiet=quiet,
        config_file=config_file,
        retry_failed=retry_failed,
        max_jobs=max_jobs,
    ).run()
    summary = outcome.output / "summary.md"
    page = write_report(outcome.output, plots=plots_available())[-1] if outcome.rows else None
    if not quiet:
        failed = f", {outcome.failed} failed" if outcome.failed else ""
        where = f"; report {page}" if page else ""
        click.echo(f"hpcflow sweep: {len(outcome.rows)} runs{failed}; tables in {summary}{where}", err=True)
    click.echo(str(outcome.output.absolute()))
    if outcome.failed_runs:  # so that `hpcflow sweep X && hpcflow report OUT` stops here
        raise RunAborted(
            f"{outcome.failed_runs} of {len(outcome.rows)} runs failed (their errors: {summary}); "
            "--retry-failed runs them again"
        )


@click.command("report")
@click.argument("results", type=click.Path(file_okay=False))
def report_cmd(results):
    """Draw the plots of the sweep in RESULTS (its output directory) into RESULTS/plots/
    and write RESULTS/report.html; print each file written. Given a run directory
    (RUN_DIR/metrics.json), write RUN_DIR/report.html again from its metrics."""
    for path in write_report(Path(results)):
        click.echo(str(path))
