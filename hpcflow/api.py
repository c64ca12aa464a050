"""`run()`: validate, plan, hand the job to the mapping's engine, return the result."""

from __future__ import annotations

import importlib
import numbers
from typing import Any

from . import transports
from .batch.allocation import detect_allocation
from .errors import UsageError
from .graph import WorkflowGraph
from .inputs import normalize_inputs
from .job import Job
from .mappings import get_mapping
from .metrics import Metrics
from .options import Options
from .plan import make_plan
from .result import RunResult


def run(
    graph: WorkflowGraph,
    inputs: int | dict | None = None,
    mapping: str = "simple",
    processes: int | None = None,
    **options: Any,
) -> RunResult:
    """Run `graph` on `inputs` with a mapping and a number of processes.

    Raises UsageError for input that cannot run, PEError when a PE fails (with the
    partial result on `.result`, metrics included)."""
    return execute(prepare(graph, inputs, mapping, processes, **options))


def prepare(
    graph: WorkflowGraph,
    inputs: int | dict | None = None,
    mapping: str = "simple",
    processes: int | None = None,
    here: bool = True,
    **options: Any,
) -> Job:
    """Check and plan a run without starting it: every UsageError of bad input is raised
    here, so a caller (the CLI) can report it before it announces the run. `here` False:
    the run will start elsewhere (a batch job), with `processes` as given; what only that
    place can tell (its MPI ranks, its reach to a Redis server) is not checked."""
    if not isinstance(graph, WorkflowGraph):
        raise UsageError(f"run() takes a WorkflowGraph, not {type(graph).__name__}; connect the PEs in one first")
    graph = graph.flattened()  # no plan or engine sees a composite
    opts = Options.from_kwargs(options)
    spec = get_mapping(mapping)
    if (opts.checkpoint_dir or opts.resume) and not spec.checkpoints:
        raise UsageError(
            f"mapping {mapping} takes no checkpoints; multi and the dyn_*, hybrid_* and *_redis mappings do"
        )
    if processes is not None and (isinstance(processes, bool) or not isinstance(processes, numbers.Integral)):
        raise UsageError(f"processes must be a whole number of at least 1, got {processes!r}")
    engine = importlib.import_module(spec.engine)
    resolve = getattr(engine, "resolve_processes", None)  # an engine whose processes are given (mpi: the ranks)
    if resolve is not None and here:
        processes = resolve(processes)
    elif processes is None:
        processes = detect_allocation().cpus
    plan = make_plan(graph, spec.plan_kind, int(processes), mapping)
    if here:
        transports.check(spec.transport, opts)
    job = Job(graph=graph, plan=plan, feeds=normalize_inputs(graph, inputs), mapping=spec, options=opts)
    check = getattr(engine, "check", None)  # what only this engine refuses (what it cannot pickle)
    if check is not None:
        check(job)
    graph.check_logic()  # last: a malformed graph or mapping says what is wrong with it first
    return job


def execute(job: Job) -> RunResult:
    """Run a prepared job on its mapping's engine."""
    opts, plan = job.options, job.plan
    allocation = detect_allocation()
    engine = importlib.import_module(job.mapping.engine)
    outcome = engine.execute(job)
    metrics = Metrics(
        workflow=opts.workflow or "custom",
        params=dict(opts.params),
        mapping=job.mapping.name,
        processes=plan.processes,
        runtime_s=outcome.runtime_s,
        process_time_s=outcome.process_time_s,
        cpu_time_s=outcome.cpu_time_s,
        items={n: outcome.items.get(n, 0) for n in plan.order},
        timeline=outcome.timeline,
        allocation=allocation.to_dict(),
        extra={
            **opts.extra_metrics,
            **outcome.extra,
            "errors": len(outcome.errors),
            "status": "failed" if outcome.failure else "ok",
        },
    )
    if opts.metrics_out:
        metrics.write(opts.metrics_out)
    outputs = outcome.outputs
    for pe, port in job.graph.unconnected_outputs():  # every unconnected port, written to or not
        outputs.setdefault(pe, {}).setdefault(port, [])
    result = RunResult(outputs=outputs, metrics=metrics, errors=outcome.errors)
    if outcome.failure is not None:
        outcome.failure.result = result
        raise outcome.failure
    return result
