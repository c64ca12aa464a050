"""What `hpcflow resume` needs of a run: how it was started (RUN_DIR/checkpoint/run.json)
and whether a process still runs it (an flock on RUN_DIR/checkpoint/.lock)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from ..durable import FAIL_WRITE, replace_file
from ..errors import UsageError
from ..lockfile import try_lock

CHECKPOINT_DIR = "checkpoint"
RUN_RECORD = "run.json"
LOCK = ".lock"
SEAL = "sha256"
CHECKPOINTING = "multi and the dyn_*, hybrid_* and *_redis mappings do"


def hold_run(run_dir: Path, obj: dict[str, Any]) -> int:
    """Lock the run for its span (a second launcher or a `resume` is refused) and, for a
    new run, record how it was started: the arguments, the directory they are relative
    to, and the HPCFLOW_* settings of the environment."""
    where = run_dir / CHECKPOINT_DIR
    where.mkdir(parents=True, exist_ok=True)
    fd, holder = try_lock(where / LOCK)
    if fd is None:
        raise UsageError(f"run directory {run_dir} is in use by another hpcflow process (pid {holder})")
    if not obj.get("resume"):
        record = {
            "argv": obj.get("argv", []),
            "cwd": os.getcwd(),
            "env": {k: v for k, v in os.environ.items() if k.startswith("HPCFLOW_") and k != FAIL_WRITE},
            "started_at": time.time(),
        }
        replace_file(where / RUN_RECORD, json.dumps({**record, SEAL: seal(record)}, indent=1) + "\n")
    return fd


def seal(record: dict[str, Any]) -> str:
    """The checksum run.json carries of the rest of itself: a flipped bit is not trusted."""
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def read_run_record(run_dir: Path) -> dict[str, Any]:
    """How the run in `run_dir` was started; UsageError for a directory `resume` cannot continue."""
    path = run_dir / CHECKPOINT_DIR / RUN_RECORD
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir} is not a directory")
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(
            f"{run_dir} has no {CHECKPOINT_DIR}/{RUN_RECORD}: not the run directory of a run that can be resumed "
            f"({CHECKPOINTING})"
        ) from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} cannot be read: {exc}") from None
    if not isinstance(record, dict) or record.pop(SEAL, None) != seal(record):
        raise UsageError(f"{path} is damaged (it does not match its {SEAL}): the run cannot be resumed from it")
    fd, holder = try_lock(run_dir / CHECKPOINT_DIR / LOCK)
    if fd is None:
        raise UsageError(f"run {run_dir} is still running (pid {holder}); nothing to resume")
    os.close(fd)
    return record
