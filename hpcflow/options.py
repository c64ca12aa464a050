"""Run options: the keyword arguments of `run()`, the CLI flags and the config keys."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .autoscale import parse_spec
from .autoscale.elastic import ElasticConfig
from .errors import UsageError
from .invoke import ErrorPolicy

START_METHODS = ("fork", "spawn", "forkserver")
_TYPED = {  # option: (the types it takes, how to say so), checked before the values are
    "on_error": (str, "text: fail, skip, retry:N or retry:N,skip"),
    "max_queued": (int, "a whole number"),
    "max_backlog_s": ((int, float), "a number"),
    "stall_timeout": ((int, float), "a number of seconds"),
    "drain_timeout": ((int, float), "a number of seconds"),
    "checkpoint_interval": ((int, float), "a number of seconds"),
    "joining": (int, "a whole number"),
}


@dataclass
class Options:
    autoscale: Any = None  # policy name, or {"policy": name, **parameters}
    redis_url: str | None = None  # redis://[:password@]host:port/db, or "auto": a private server (the default)
    run_id: str | None = None  # names the run's Redis keys, for `hpcflow worker --run` (default: random)
    key_file: str | None = None  # where a Redis run writes its message key (0600) for `hpcflow worker`
    start_method: str | None = None  # fork by default on Linux
    on_error: str = "fail"  # fail | skip | retry:N[,skip]
    collect: bool = True  # gather unconnected outputs into the result
    check_pickle: bool = True  # simple: refuse items the parallel mappings could not pickle
    metrics_out: str | None = None  # path of a metrics JSON file to write
    max_queued: int = 10_000  # sources pause while more tasks than this are queued
    max_backlog_s: float = 1.0  # ...or while a PE has more than this much queued work per instance
    help_pool: bool = True  # pinned processes run pool tasks when idle (a crash in one then ends the run)
    chain: bool = True  # a pool worker runs cheap stateless stages in process (engines/chain.py)
    stall_timeout: float = 900.0  # stop a run in which no task has finished for this long (0: never)
    drain_timeout: float = 30.0  # mpi: a SIGTERM's drain stops at once after this long (fits SLURM's 60 s warning)
    workflow: str | None = None  # name recorded in the metrics
    params: dict[str, Any] = field(default_factory=dict)  # workflow params, for the metrics
    extra_metrics: dict[str, Any] = field(default_factory=dict)  # e.g. a workflow's work_s
    elastic: Any = None  # *_redis: worker jobs of its own, an ElasticConfig or {max_jobs: 4, ...}
    batch: Any = None  # the BatchConfig (partition, account, ...) of those worker jobs
    checkpoint_dir: str | None = None  # where checkpoints go (`hpcflow run`: RUN_DIR/checkpoint)
    checkpoint_interval: float = 0.0  # seconds between checkpoints (0: only on a stop signal)
    resume: bool = False  # continue from the newest checkpoint in checkpoint_dir (or the start)
    joining: int = 0  # *_redis: pool workers that join from other nodes (a job's); the run starts that many fewer
    restore_from: str | None = None  # set by the engine: the checkpoint generation its pinned workers restore

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> Options:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise UsageError(f"unknown run option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        opts = cls(**kwargs)
        for name, (kind, what) in _TYPED.items():
            value = getattr(opts, name)
            if isinstance(value, bool) or not isinstance(value, kind):
                raise UsageError(f"run option {name} must be {what}, got {value!r}")
        ErrorPolicy.parse(opts.on_error)  # validate early
        if opts.start_method is not None and opts.start_method not in START_METHODS:
            raise UsageError(f"unknown start_method {opts.start_method!r}; use one of {', '.join(START_METHODS)}")
        if opts.max_queued < 1:
            raise UsageError(f"max_queued must be at least 1, got {opts.max_queued}")
        if opts.autoscale is not None:
            parse_spec(opts.autoscale)  # an unknown policy or parameter fails before the run
        for name in ("help_pool", "chain"):
            if not isinstance(getattr(opts, name), bool):
                raise UsageError(f"run option {name} must be true or false, got {getattr(opts, name)!r}")
        if opts.elastic is not None:
            opts.elastic = elastic_config(opts.elastic, opts.key_file)
        if opts.max_backlog_s <= 0:
            raise UsageError(f"max_backlog_s must be positive, got {opts.max_backlog_s}")
        if not 0 <= opts.checkpoint_interval < math.inf:  # nan and inf would silently write no checkpoint
            raise UsageError(
                f"checkpoint_interval must be 0 (only on a stop signal) or more seconds, got {opts.checkpoint_interval}"
            )
        if opts.checkpoint_interval and not opts.checkpoint_dir:
            raise UsageError("checkpoint_interval needs a checkpoint_dir (`hpcflow run` gives RUN_DIR/checkpoint)")
        if opts.resume and not opts.checkpoint_dir:
            raise UsageError("resume needs the checkpoint_dir of the run to continue")
        if not 0 <= opts.drain_timeout < math.inf:
            raise UsageError(f"drain_timeout must be 0 (stop at once) or more seconds, got {opts.drain_timeout}")
        if opts.joining < 0:
            raise UsageError(f"joining must be 0 or more workers, got {opts.joining}")
        if opts.stall_timeout < 0:
            raise UsageError(f"stall_timeout must be 0 (off) or more seconds, got {opts.stall_timeout}")
        if opts.metrics_out is not None:  # found out before the run, not after it
            where = Path(opts.metrics_out)
            if where.is_dir() or not where.parent.is_dir():
                raise UsageError(
                    f"metrics_out {opts.metrics_out}: not a file in an existing directory; give a file's path"
                )
        return opts

    @property
    def error_policy(self) -> ErrorPolicy:
        return ErrorPolicy.parse(self.on_error)

    @property
    def resolved_start_method(self) -> str:
        return self.start_method or ("fork" if os.name == "posix" else "spawn")


def elastic_config(value: Any, key_file: str | None) -> ElasticConfig:
    """The `elastic` option as an ElasticConfig; it needs the run directory that
    `hpcflow run` gives a Redis run (worker jobs find the run's key and server there)."""
    if key_file is None:
        raise UsageError("elastic needs a run directory for its worker jobs: use `hpcflow run --elastic`")
    if isinstance(value, ElasticConfig):
        return value
    if not isinstance(value, dict):
        raise UsageError(f"run option elastic must be a mapping of elastic settings, got {value!r}")
    try:
        return ElasticConfig(**value)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"run option elastic: {exc}") from None
