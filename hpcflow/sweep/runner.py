"""`hpcflow sweep`: run the cells not yet in OUTPUT/runs.jsonl, here one after another
or as batch jobs, then write OUTPUT/ratios.csv and OUTPUT/summary.md.

Before anything runs, every params combination is built once and every (mapping, cpus)
planned, so a bad parameter stops the sweep at once, while a mapping that needs more
processes than a cell has is recorded as that cell's failure, without a run, and the
sweep goes on (the static baseline of a stateful workflow needs many processes, and a
sweep over CPU counts meets that limit on purpose).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import deque
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from ..batch.schedulers import find_scheduler
from ..config import BatchConfig
from ..errors import UsageError
from ..mappings import get_mapping
from ..plan import make_plan
from ..settings import resolve
from ..workflows import load_workflow
from .cellrun import cell_command, cell_row, run_here
from .jobs import cell_job, job_error, job_listed, submit_cell, submitted_job
from .lock import output_lock
from .progress import Progress
from .ratios import RatioTable, ratio_tables, write_ratios_csv
from .runsfile import RunsFile, row_key
from .spec import Cell, SweepSpec, params_key
from .summary import summary_markdown

POLL_S = 5.0  # between looks at the batch queue: far below any job's length, light on the scheduler


@dataclass
class SweepOutcome:
    output: Path
    rows: list[dict[str, Any]]  # the runs of this sweep's cells, earlier sessions included
    tables: list[RatioTable]

    @property
    def failed(self) -> int:
        return sum(1 for row in self.rows if row.get("status") != "ok")

    @property
    def failed_runs(self) -> int:
        """Failed cells that ran (or were submitted); a cell its mapping cannot plan with
        its CPUs (too few processes) is recorded as failed without a run: an expected
        limit of a sweep over CPU counts, not a failure of the sweep."""
        return sum(1 for row in self.rows if row.get("status") != "ok" and "run_dir" in row)


@dataclass
class SweepRun:
    """One `hpcflow sweep` call: `run()` runs what is left and writes the tables."""

    spec: SweepSpec
    output: Path | None = None
    submit: bool = False
    quiet: bool = False
    config_file: str | Path | None = None
    retry_failed: bool = False
    max_jobs: int | None = None
    poll_s: float = POLL_S

    def __post_init__(self) -> None:
        self.output = Path(self.output or self.spec.output)
        self.runs = RunsFile(self.output)
        self.scheduler = None  # --submit: chosen by _batch()
        self.lock_fd: int | None = None  # OUTPUT's lock while run() holds it

    def run(self) -> SweepOutcome:
        spec = self.spec
        plan_errors = preflight(spec)
        batch = self._batch() if self.submit else None
        with output_lock(self.output) as self.lock_fd:  # before runs.jsonl is read: one sweep at a time
            return self._run_cells(plan_errors, batch)

    def _run_cells(self, plan_errors: dict, batch: BatchConfig | None) -> SweepOutcome:
        spec = self.spec
        if self.retry_failed:
            self.runs.drop_failed()
        done = self.runs.keys()
        cells = spec.cells()
        pending = [c for c in cells if c.key not in done]
        to_run = sum(1 for c in pending if _plan_error(plan_errors, c) is None)
        progress = Progress(len(cells), len(cells) - len(pending), to_run, self.quiet, spec.varying())
        if len(pending) < len(cells):
            progress.say(f"{len(cells) - len(pending)} of {len(cells)} runs already in {self.runs.path}: skipped")
        try:
            if batch is not None:
                self._run_batch(pending, plan_errors, progress, batch)
            else:
                self._run_here(pending, plan_errors, progress)
        finally:  # an interrupted sweep still leaves the tables of what it did
            outcome = self.write_summary()
        return outcome

    def write_summary(self) -> SweepOutcome:
        spec = self.spec
        keys = {c.key for c in spec.cells()}
        rows = [row for row in self.runs.rows() if row_key(row) in keys]
        cells = [(params, cpus) for params in spec.param_sets() for cpus in spec.cpus]
        tables = ratio_tables(rows, spec.compare, cells)
        self.output.mkdir(parents=True, exist_ok=True)
        write_ratios_csv(tables, self.output / "ratios.csv")
        (self.output / "summary.md").write_text(summary_markdown(spec, rows, tables))
        return SweepOutcome(self.output, rows, tables)

    def run_dir(self, cell: Cell) -> Path:
        return self.output / "runs" / cell.dir_name()

    def _record(self, cell: Cell, run_dir: Path | None, error: str | None, seconds: float) -> dict[str, Any]:
        row = cell_row(self.spec, cell, run_dir, error, seconds)
        self.runs.append(row)
        return row

    # -- here, one cell after another ------------------------------------------------
    def _run_here(self, pending: list[Cell], plan_errors: dict, progress: Progress) -> None:
        for cell in pending:
            progress.starting(cell)
            t0 = time.monotonic()
            error = _plan_error(plan_errors, cell)
            ran, run_dir = error is None, None
            if ran:
                run_dir = self.run_dir(cell)
                shutil.rmtree(run_dir, ignore_errors=True)  # a run interrupted before it was recorded
                command = cell_command(self.spec, cell, run_dir, self.config_file)
                error = run_here(command, self.spec.timeout, self.lock_fd)
            progress.finished(cell, self._record(cell, run_dir, error, time.monotonic() - t0), ran)

    # -- batch jobs --------------------------------------------------------------------
    def _batch(self) -> BatchConfig:
        """The configuration's batch settings with the sweep file's over them, checked."""
        base = resolve({}, self.config_file).batch
        over = self.spec.batch or BatchConfig()
        given = {f.name: getattr(over, f.name) for f in fields(BatchConfig) if getattr(over, f.name) not in (None, ())}
        batch = replace(base, **given)
        self.scheduler = find_scheduler(batch.scheduler)
        cell_job(self.spec.name, ["true"], self.output / "runs", 1, batch)  # a bad walltime or mem fails now
        return batch

    def _run_batch(self, pending: list[Cell], plan_errors: dict, progress: Progress, batch: BatchConfig) -> None:
        queue = deque(pending)
        running: dict[tuple, tuple[Cell, Path, str, str, float]] = {}  # key: (cell, run dir, scheduler, job id, since)
        try:
            while queue or running:
                while queue and (self.max_jobs is None or len(running) < self.max_jobs):
                    cell = queue.popleft()
                    job = self._start_job(cell, plan_errors, progress, batch)
                    if job is not None:
                        running[cell.key] = (cell, *job)
                if running:
                    time.sleep(self.poll_s)
                for key, (cell, run_dir, scheduler, job_id, since) in list(running.items()):
                    if job_listed(scheduler, job_id):
                        continue
                    del running[key]
                    row = self._record(cell, run_dir, job_error(run_dir), time.monotonic() - since)
                    progress.finished(cell, row, announce=True)
        except KeyboardInterrupt:
            if running:
                progress.quiet = False
                progress.say(f"{len(running)} submitted jobs go on: run the sweep again to gather them")
            raise

    def _start_job(
        self, cell: Cell, plan_errors: dict, progress: Progress, batch: BatchConfig
    ) -> tuple[Path, str, str, float] | None:
        """Submit a cell's job (or find the one submitted before); None when the cell is
        already recorded as failed."""
        error = _plan_error(plan_errors, cell)
        if error is not None:
            progress.finished(cell, self._record(cell, None, error, 0.0), ran=False, announce=True)
            return None
        run_dir = self.run_dir(cell)
        earlier = submitted_job(run_dir)
        if earlier is not None and (job_listed(*earlier) or (run_dir / "job.out").exists()):
            progress.submitted(cell, f"earlier as {earlier[0]} job {earlier[1]}: waiting for it")
            return run_dir, *earlier, time.monotonic()
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        command = cell_command(self.spec, cell, run_dir.absolute(), self.config_file)
        try:
            job_id = submit_cell(cell_job(self.spec.name, command, run_dir, cell.cpus, batch), self.scheduler)
        except UsageError as exc:  # the scheduler refused this one: record it, go on
            progress.finished(cell, self._record(cell, run_dir, str(exc), 0.0), announce=True)
            return None
        progress.submitted(cell, f"as {self.scheduler.name} job {job_id}")
        return run_dir, self.scheduler.name, job_id, time.monotonic()


def _plan_error(errors: dict[tuple[str, str, int], str], cell: Cell) -> str | None:
    return errors.get((params_key(cell.params), cell.mapping, cell.cpus))


def preflight(spec: SweepSpec) -> dict[tuple[str, str, int], str]:
    """Build every params combination (a bad one is a UsageError naming the sweep) and
    plan every (mapping, cpus): the planning errors, by (params key, mapping, cpus)."""
    errors: dict[tuple[str, str, int], str] = {}
    with tempfile.TemporaryDirectory(prefix="hpcflow-sweep-") as scratch:
        for params in spec.param_sets():
            try:
                wf = load_workflow(spec.workflow, params, run_dir=scratch, given_as="params: ")
            except UsageError as exc:
                raise UsageError(f"sweep {spec.path}: {exc}") from None
            for mapping in spec.mappings:
                kind = get_mapping(mapping).plan_kind
                for cpus in spec.cpus:
                    try:
                        make_plan(wf.graph, kind, cpus, mapping)
                    except UsageError as exc:
                        errors[params_key(params), mapping, cpus] = str(exc)
    return errors
