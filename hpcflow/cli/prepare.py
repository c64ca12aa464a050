"""From the settings of `hpcflow run` to a checked, planned job: the one code path that
`run` takes before it starts and `submit` takes before it queues anything, so that what
cannot run (too few processes for the mapping, a parameter the workflow does not take,
a PE that cannot be pickled) is refused by both in the same words, exit 2."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..api import prepare as prepare_run
from ..batch.jobspec import JOINING_ENV
from ..errors import UsageError
from ..job import Job
from ..mappings import get_mapping
from ..settings import Settings
from ..transports import REDIS
from ..workflows import Workflow, load_workflow
from .flags import run_options
from .runrecord import CHECKPOINT_DIR, CHECKPOINTING


@dataclass(frozen=True)
class RunFlags:
    """The flags of `hpcflow run` beyond the settings (`submit` passes some of them on)."""

    feed: Any = None  # --inputs, parsed; None: the workflow's own
    on_error: str = "fail"
    start_method: str | None = None
    no_pickle_check: bool = False
    elastic: bool = False
    checkpoint_interval: float | None = None
    resume: bool = False


def joining_workers(env: Mapping[str, str]) -> int:
    """The pool workers a job script of several nodes says join from its other nodes (0
    elsewhere): its launcher starts that many fewer of the plan's own."""
    text = env.get(JOINING_ENV, "").strip()
    if not text:
        return 0
    if not text.isdigit():
        raise UsageError(f"{JOINING_ENV}={text!r} is not a whole number of workers")
    return int(text)


def prepare_job(settings: Settings, run_dir: Path, flags: RunFlags, here: bool = True) -> tuple[Workflow, Job]:
    """Build the workflow (its files go to `run_dir`) and check and plan the run. `here`
    False: the run is for a batch job on other nodes, so what only those nodes can tell
    (the MPI ranks it will have, whether its Redis server is reachable) is not asked here."""
    workflow, mapping, cpus, params = settings.workflow, settings.mapping, settings.cpus, settings.params
    spec = get_mapping(mapping)
    wf = load_workflow(workflow, params, run_dir=str(run_dir))
    extra = {**wf.info, "config": settings.to_dict()}
    options = dict(workflow=wf.name, params=params, extra_metrics=extra, on_error=flags.on_error)
    options.update(run_options(settings))
    if spec.transport == REDIS:  # `hpcflow worker --run <run directory name>` joins it
        from ..transports.redis.keys import run_id_of

        options.update(run_id=run_id_of(run_dir.name), key_file=str((run_dir / "run.key").absolute()))
        options.update(joining=joining_workers(os.environ))
        if flags.elastic:
            options.update(elastic=dict(settings.elastic), batch=settings.batch)
    if spec.checkpoints:
        options.update(
            checkpoint_dir=str(run_dir / CHECKPOINT_DIR),
            checkpoint_interval=flags.checkpoint_interval or 0.0,
            resume=flags.resume,
        )
    elif flags.checkpoint_interval:
        raise UsageError(f"--checkpoint-interval: mapping {mapping} takes no checkpoints; {CHECKPOINTING}")
    if flags.start_method:
        options["start_method"] = flags.start_method
    if flags.no_pickle_check:
        options["check_pickle"] = False
    feed = flags.feed if flags.feed is not None else wf.inputs
    return wf, prepare_run(wf.graph, feed, mapping, cpus, here=here, **options)
