"""Checkpoints: a consistent cut of a running workflow, kept so that a crash while one is
written leaves the previous one usable. Why the cut is consistent is told in
engines/README.md ("Checkpoints"); in short: every pinned instance (and, on Redis, every
worker) stops at the end of its current batch and sends its state; at the moment the
last state arrives the coordinator holds every task created and not yet done (queued,
or held by a pool worker with how many of its writes were delivered) and the roots'
positions, and no paused instance can change what it holds. The run then goes on.

On disk, RUN_DIR/checkpoint/ holds:

    run.json          how `hpcflow resume` runs the workflow again (the CLI writes it)
    sinks.log         the run's outputs, appended at each checkpoint (length-prefixed)
    00000007/         a generation: manifest.json (sha256 of each file), coordinator.pkl
                      (feeds, tasks, counts), states/<PE>.<instance>.pkl

A generation is written into a hidden directory and renamed into place; a generation
whose files do not match its manifest (torn by a crash, a full disk) is passed over for
the one before it, and sinks.log is cut back to the length that one recorded. The two
newest generations are kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RunAborted
from ..snapshot import restore_snapshot
from .protocol import PROTOCOL, Chunk

KEEP = 2  # generations kept: the newest, and the one before in case the newest is torn
MANIFEST = "manifest.json"
SINKS = "sinks.log"
RUN_FILE = "run.json"
_LENGTH = struct.Struct(">Q")


@dataclass
class Cut:
    """What a checkpoint holds besides the instances' states."""

    feeds: dict[str, int]  # root -> inputs handed out
    pending: list[Chunk]  # every task created and not done; `resume`: writes already delivered
    finalized: dict[str, list[int]]  # instances that ran postprocess()
    items: dict[str, int]
    errors: list[dict[str, Any]]
    service: dict[str, float]  # measured seconds per task, so the resumed run sizes chunks at once
    totals: dict[str, float]  # runtime_s, process_time_s, cpu_time_s of this attempt and those before
    instances: dict[str, int]  # the plan's, which a resumed run keeps (its states are per instance)
    pinned: list[tuple[str, int]]
    attempt: int = 1
    replays_resumed: int = 0
    sinks_bytes: int = 0  # how much of sinks.log holds the outputs of the run so far
    generation: int = 0
    written_at: float = field(default_factory=time.time)
    fingerprint: dict[str, str] = field(default_factory=dict)  # what the run depends on (fingerprint.py)


def state_file(generation_dir: Path | str, pe: str, instance: int) -> Path:
    return Path(generation_dir) / "states" / f"{pe}.{instance}.pkl"


def restore_instance(generation_dir: str | None, pe: Any) -> None:
    """In a pinned worker, after preprocess(): the instance's state from the checkpoint
    the run resumes from (a PE without a saved state, as a stateless root, keeps its own)."""
    if generation_dir is None:
        return
    path = state_file(generation_dir, pe.name, pe.instance)
    if path.exists():
        restore_snapshot(pe, path.read_bytes())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(path: Path, data: bytes) -> str:
    """Write and fsync `data`; its sha256 for the manifest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return hashlib.sha256(data).hexdigest()


class CheckpointStore:
    """The generations in one checkpoint directory."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def generations(self) -> list[int]:
        if not self.root.is_dir():
            return []
        return sorted(int(p.name) for p in self.root.iterdir() if p.is_dir() and p.name.isdigit())

    def clear(self) -> None:
        """A new run in this directory: no generation or output of an earlier one is kept."""
        for old in self.generations():
            shutil.rmtree(self.path(old), ignore_errors=True)
        for tmp in self.root.glob(".tmp-*") if self.root.is_dir() else ():
            shutil.rmtree(tmp, ignore_errors=True)
        (self.root / SINKS).unlink(missing_ok=True)

    def path(self, generation: int) -> Path:
        return self.root / f"{generation:08d}"

    # -- writing ------------------------------------------------------------------
    def write(self, cut: Cut, states: dict[tuple[str, int], bytes], new_sinks: list) -> Path:
        """Append the outputs made since the last checkpoint to sinks.log, then write the
        next generation (fsynced, renamed into place) and drop the older ones."""
        self.root.mkdir(parents=True, exist_ok=True)
        cut.sinks_bytes = self._append_sinks(new_sinks, cut.sinks_bytes)
        cut.generation = max(self.generations(), default=0) + 1
        cut.written_at = time.time()
        final = self.path(cut.generation)
        tmp = self.root / f".tmp-{cut.generation:08d}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        files = {"coordinator.pkl": _write(tmp / "coordinator.pkl", pickle.dumps(cut, PROTOCOL))}
        for (pe, instance), blob in states.items():
            path = state_file(tmp, pe, instance)
            files[str(path.relative_to(tmp))] = _write(path, blob)
        manifest = {
            "generation": cut.generation,
            "written_at": cut.written_at,
            "attempt": cut.attempt,
            "tasks_pending": sum(c.count for c in cut.pending),
            "feeds": cut.feeds,
            "sinks_bytes": cut.sinks_bytes,
            "files": files,
        }
        _write(tmp / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
        _fsync_dir(tmp)
        os.rename(tmp, final)
        _fsync_dir(self.root)
        for old in self.generations()[:-KEEP]:
            shutil.rmtree(self.path(old), ignore_errors=True)
        return final

    def _append_sinks(self, sinks: list, expected: int) -> int:
        """Append one record to sinks.log at `expected` bytes (what the last checkpoint
        recorded: anything after it is a torn write of a checkpoint that never landed)."""
        path = self.root / SINKS
        with open(path, "ab") as f:
            if f.tell() != expected:
                f.truncate(expected)
                f.seek(expected)
            if sinks:
                blob = pickle.dumps(sinks, PROTOCOL)
                f.write(_LENGTH.pack(len(blob)) + blob)
            f.flush()
            os.fsync(f.fileno())
            return f.tell()

    # -- reading ------------------------------------------------------------------
    def latest(self) -> tuple[Cut, Path] | None:
        """The newest generation whose files match its manifest, or None."""
        for generation in reversed(self.generations()):
            loaded = self._load(self.path(generation))
            if loaded is not None:
                return loaded, self.path(generation)
        return None

    @staticmethod
    def _load(path: Path) -> Cut | None:
        try:
            manifest = json.loads((path / MANIFEST).read_text())
            for name, digest in manifest["files"].items():
                if hashlib.sha256((path / name).read_bytes()).hexdigest() != digest:
                    return None
            cut = pickle.loads((path / "coordinator.pkl").read_bytes())
        except (OSError, ValueError, KeyError, TypeError, pickle.UnpicklingError, EOFError):
            return None
        return cut if isinstance(cut, Cut) else None

    def sinks(self, nbytes: int) -> list:
        """The outputs recorded up to `nbytes` of sinks.log, which is cut back to that."""
        path = self.root / SINKS
        out: list = []
        if not path.exists():
            if nbytes:
                raise RunAborted(f"{path} is missing: the checkpoint's outputs are lost")
            return out
        with open(path, "r+b") as f:
            data = f.read(nbytes)
            if len(data) < nbytes:
                raise RunAborted(f"{path} is shorter than its checkpoint says ({len(data)} < {nbytes} bytes)")
            f.truncate(nbytes)
        at = 0
        while at < nbytes:
            (n,) = _LENGTH.unpack_from(data, at)
            out.extend(pickle.loads(data[at + _LENGTH.size : at + _LENGTH.size + n]))
            at += _LENGTH.size + n
        return out
