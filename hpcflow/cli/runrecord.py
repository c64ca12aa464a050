"""What `hpcflow resume` needs of a run: how it was started (RUN_DIR/checkpoint/run.json:
its command line, directory and HPCFLOW_* settings, none of them secret; the settings it
resolved to; the fingerprint of what its checkpoints depend on) and whether a process
still runs it (an flock on RUN_DIR/checkpoint/.lock)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..durable import FAIL_WRITE, replace_file
from ..errors import UsageError
from ..jsonfile import check_shape, read_object
from ..lockfile import try_lock
from ..redact import has_mask, recordable_env, redact, redact_all
from ..settings import Settings

CHECKPOINT_DIR = "checkpoint"
RUN_RECORD = "run.json"
LOCK = ".lock"
SEAL = "sha256"
CHECKPOINTING = "multi and the dyn_*, hybrid_* and *_redis mappings do"


@dataclass
class StartedSettings:
    """The settings a run resolved at its start that shape its result: a resume keeps
    them, whatever the configuration files or the environment say by then."""

    workflow: str | None = None
    mapping: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    autoscale: str | dict[str, Any] | None = None
    stall_timeout: float | None = None


KEPT = tuple(StartedSettings.__dataclass_fields__)


@dataclass
class RunRecord:
    """The shape of run.json, which `read_run_record` checks."""

    argv: list[str]
    cwd: str = ""
    env: dict[str, str] = field(default_factory=dict)
    started_at: float = 0.0
    settings: StartedSettings = field(default_factory=StartedSettings)
    fingerprint: dict[str, str] = field(default_factory=dict)  # fingerprint.py


def started_settings(settings: Settings) -> dict[str, Any]:
    """What run.json keeps of the settings (secrets masked)."""
    return redact_all({key: getattr(settings, key) for key in KEPT})


def keep_started(settings: Settings, record: dict[str, Any], where: Path) -> tuple[Settings, list[str]]:
    """The settings of a resume: `settings` as resolved now, with those the run started
    with (run.json) in place of theirs; and a note for each that the files or the
    environment now set otherwise (the CPU count is not kept: the pool may be resized)."""
    started = record.get("settings") or {}
    kept, notes = {}, []
    for key in KEPT:
        if key not in started or has_mask(started[key]):
            continue  # an older run.json, or a value with a password in it: as resolved now
        kept[key] = started[key]
        now, source = getattr(settings, key), settings.sources.get(key)
        if started[key] != now:
            said = f"{_shown(now)}, from {source}" if source else _shown(now)
            notes.append(f"{key} {_shown(started[key])} as the run started (not {said})")
    sources = {**settings.sources, **{key: f"the run's start ({where})" for key in kept}}
    return replace(settings, **kept, sources=sources), notes


def _shown(value: Any) -> str:
    return "the default" if value is None else str(value)


def hold_run(run_dir: Path, obj: dict[str, Any], settings: dict[str, Any], fingerprint: dict[str, str]) -> int:
    """Lock the run for its span (a second launcher or a `resume` is refused) and, for a
    new run, record how it was started: the arguments, the directory they are relative
    to, the HPCFLOW_* settings of the environment (never a secret: redact.py), the
    settings they came to, and the fingerprint its checkpoints depend on."""
    where = run_dir / CHECKPOINT_DIR
    where.mkdir(parents=True, exist_ok=True)
    fd, holder = try_lock(where / LOCK)
    if fd is None:
        raise UsageError(f"run directory {run_dir} is in use by another hpcflow process (pid {holder})")
    if not obj.get("resume"):
        record = {
            "argv": [redact(arg) for arg in obj.get("argv", [])],
            "cwd": os.getcwd(),
            "env": {k: v for k, v in recordable_env(dict(os.environ)).items() if k != FAIL_WRITE},
            "started_at": time.time(),
            "settings": settings,
            "fingerprint": fingerprint,
        }
        replace_file(where / RUN_RECORD, json.dumps({**record, SEAL: seal(record)}, indent=1) + "\n")
    return fd


def path_of_record(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / RUN_RECORD


def seal(record: dict[str, Any]) -> str:
    """The checksum run.json carries of the rest of itself: a flipped bit is not trusted."""
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def read_run_record(run_dir: Path) -> dict[str, Any]:
    """How the run in `run_dir` was started; UsageError for a directory `resume` cannot continue."""
    path = path_of_record(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir} is not a directory")
    record = read_object(path, "how the run was started")
    if record is None:
        raise UsageError(
            f"{run_dir} has no {CHECKPOINT_DIR}/{RUN_RECORD}: not the run directory of a run that can be resumed "
            f"({CHECKPOINTING})"
        )
    if record.pop(SEAL, None) != seal(record):
        raise UsageError(f"{path} is damaged (it does not match its {SEAL}): the run cannot be resumed from it")
    check_shape(record, RunRecord, path, "how the run was started", required=("argv",))
    fd, holder = try_lock(run_dir / CHECKPOINT_DIR / LOCK)
    if fd is None:
        raise UsageError(f"run {run_dir} is still running (pid {holder}); nothing to resume")
    os.close(fd)
    return record
