"""Checkpoints: a consistent cut of a running workflow, kept so that a crash while one is
written leaves the previous one usable. Why the cut is consistent is told in
engines/README.md ("Checkpoints"); in short: every pinned instance (and, on Redis, every
worker) stops at the end of its current batch and sends its state; at the moment the
last state arrives the coordinator holds every task created and not yet done (queued,
or held by a pool worker with how many of its writes were delivered) and the roots'
positions, and no paused instance can change what it holds. The run then goes on.

On disk, RUN_DIR/checkpoint/ holds:

    run.json          how `hpcflow resume` runs the workflow again (the CLI writes it, with
                      a sha256 of the rest of itself)
    sinks.log         the run's outputs, appended at each checkpoint: a magic line, then
                      records of (length, crc32 of length and payload, pickled outputs)
    00000007/         a generation: manifest.json (sha256 of each file), coordinator.pkl
                      (feeds, tasks, counts), states/<PE>.<instance>.pkl

A generation is written into a hidden directory and renamed into place; a generation
whose files do not match its manifest, that lacks a pinned instance's state, or whose
part of sinks.log fails a checksum is passed over (and said so) for the one before it,
and sinks.log is cut back to the length that one recorded. The two newest generations
are kept. If every generation is damaged, CheckpointDamaged says which files.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..durable import check_write, fsync_dir, named, write_synced
from ..errors import RunAborted
from ..snapshot import restore_snapshot
from .protocol import PROTOCOL, Chunk

KEEP = 2  # generations kept: the newest, and the one before in case the newest is torn
MANIFEST = "manifest.json"
SINKS = "sinks.log"
RUN_FILE = "run.json"
SINKS_MAGIC = b"hpcflow sinks 2\n"  # sinks.log's first bytes: its record format
_LENGTH = struct.Struct(">Q")
_CRC = struct.Struct(">I")  # crc32 of a record's length and payload


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
    the run resumes from (a PE without a saved state, as a stateless root, keeps its own).
    The file is checked against the generation's manifest once more, here where it is read."""
    if generation_dir is None:
        return
    path = state_file(generation_dir, pe.name, pe.instance)
    if not path.exists():
        return
    blob = path.read_bytes()
    name = str(path.relative_to(generation_dir))
    try:
        digest = json.loads((Path(generation_dir) / MANIFEST).read_text())["files"][name]
    except (OSError, ValueError, KeyError, TypeError):
        digest = None
    if digest != hashlib.sha256(blob).hexdigest():
        raise RunAborted(f"{path} does not match its manifest: the state of PE {pe.name}[{pe.instance}] is damaged")
    restore_snapshot(pe, blob)


class Damaged(Exception):
    """Why a generation (or the outputs it counts on) cannot be trusted: one phrase."""


def _write(path: Path, data: bytes) -> str:
    """Write and fsync `data`; its sha256 for the manifest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_synced(path, data)
    return hashlib.sha256(data).hexdigest()


def _frame(blob: bytes) -> bytes:
    head = _LENGTH.pack(len(blob))
    return head + _CRC.pack(zlib.crc32(blob, zlib.crc32(head))) + blob


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
        self.clear_unfinished()
        (self.root / SINKS).unlink(missing_ok=True)

    def clear_unfinished(self) -> int:
        """Remove generations whose writing never ended (a kill, a full disk): how many."""
        found = list(self.root.glob(".tmp-*")) if self.root.is_dir() else []
        for tmp in found:
            shutil.rmtree(tmp, ignore_errors=True)
        return len(found)

    def path(self, generation: int) -> Path:
        return self.root / f"{generation:08d}"

    # -- writing ------------------------------------------------------------------
    def write(self, cut: Cut, states: dict[tuple[str, int], bytes], new_sinks: list) -> Path:
        """Append the outputs made since the last checkpoint to sinks.log, then write the
        next generation (fsynced, renamed into place) and drop the older ones. On an
        OSError nothing half-written is left but a sinks.log tail that the next write
        (or a resume) cuts off."""
        self.root.mkdir(parents=True, exist_ok=True)
        cut.sinks_bytes = self._append_sinks(new_sinks, cut.sinks_bytes)
        cut.generation = max(self.generations(), default=0) + 1
        cut.written_at = time.time()
        final = self.path(cut.generation)
        tmp = self.root / f".tmp-{cut.generation:08d}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
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
            fsync_dir(tmp)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fsync_dir(self.root)
        for old in self.generations()[:-KEEP]:
            shutil.rmtree(self.path(old), ignore_errors=True)
        return final

    def _append_sinks(self, sinks: list, expected: int) -> int:
        """Append one framed record to sinks.log at `expected` bytes (what the last
        checkpoint recorded: anything after it is a torn write of a checkpoint that never
        landed); the file's new length."""
        path = self.root / SINKS
        check_write(path)
        with named(path), open(path, "ab") as f:
            if f.tell() != expected:
                f.truncate(expected)
                f.seek(expected)
            if expected == 0:
                f.write(SINKS_MAGIC)
            if sinks:
                f.write(_frame(pickle.dumps(sinks, PROTOCOL)))
            f.flush()
            os.fsync(f.fileno())
            return f.tell()

    # -- reading ------------------------------------------------------------------
    def latest(self) -> tuple[Cut, Path] | None:
        """The newest generation whose files match its manifest and whose outputs in
        sinks.log are intact; None if there is no generation. Each newer one passed over
        is in `passed_over` (one line each); if every generation is damaged,
        CheckpointDamaged says why, naming the files."""
        self.passed_over: list[str] = []
        for generation in reversed(self.generations()):
            path = self.path(generation)
            try:
                cut = self._load(path)
                self._read_sinks(cut.sinks_bytes)
            except Damaged as why:
                self.passed_over.append(f"checkpoint {generation} ({path}) is damaged: {why}")
                continue
            return cut, path
        if self.passed_over:
            raise CheckpointDamaged("; ".join(self.passed_over) + "; no intact checkpoint is left to resume from")
        return None

    @staticmethod
    def _load(path: Path) -> Cut:
        try:
            manifest = json.loads((path / MANIFEST).read_text())
            files = manifest["files"]
        except FileNotFoundError:
            raise Damaged(f"{MANIFEST} is missing") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise Damaged(f"{MANIFEST} cannot be read ({type(exc).__name__})") from None
        if not isinstance(files, dict) or "coordinator.pkl" not in files:
            raise Damaged(f"{MANIFEST} lists no coordinator.pkl")
        for name, digest in files.items():
            try:
                data = (path / name).read_bytes()
            except OSError as exc:
                raise Damaged(f"{name} cannot be read ({exc.strerror or exc})") from None
            if hashlib.sha256(data).hexdigest() != digest:
                raise Damaged(f"{name} does not match its sha256 in {MANIFEST}")
        try:
            cut = pickle.loads((path / "coordinator.pkl").read_bytes())
        except Exception as exc:  # it matched its checksum: written so by an other version of hpcflow
            raise Damaged(f"coordinator.pkl cannot be loaded ({type(exc).__name__}: {exc})") from None
        if not isinstance(cut, Cut):
            raise Damaged("coordinator.pkl holds no checkpoint")
        finalized = {(pe, i) for pe, ids in cut.finalized.items() for i in ids}
        for pe, instance in cut.pinned:  # every pinned instance not finalized left its state
            name = str(state_file(path, pe, instance).relative_to(path))
            if (pe, instance) not in finalized and name not in files:
                raise Damaged(f"it holds no state of PE {pe}[{instance}]")
        return cut

    def _read_sinks(self, nbytes: int) -> list:
        """The outputs in the first `nbytes` of sinks.log, every record's checksum checked."""
        path = self.root / SINKS
        if nbytes == 0:
            return []
        try:
            with open(path, "rb") as f:
                data = f.read(nbytes)
        except FileNotFoundError:
            raise Damaged(f"{path} is missing") from None
        except OSError as exc:
            raise Damaged(f"{path} cannot be read ({exc.strerror or exc})") from None
        if len(data) < nbytes:
            raise Damaged(f"{path} is shorter than it recorded ({len(data)} < {nbytes} bytes)")
        if not data.startswith(SINKS_MAGIC):
            raise Damaged(f"{path} does not start as a sinks log of this hpcflow version")
        out: list = []
        at = len(SINKS_MAGIC)
        head = _LENGTH.size + _CRC.size
        while at < nbytes:
            if at + head > nbytes:
                raise Damaged(f"{path} is damaged at byte {at} (a record header is cut)")
            (n,) = _LENGTH.unpack_from(data, at)
            (crc,) = _CRC.unpack_from(data, at + _LENGTH.size)
            blob = data[at + head : at + head + n]
            if at + head + n > nbytes or zlib.crc32(blob, zlib.crc32(data[at : at + _LENGTH.size])) != crc:
                raise Damaged(f"{path} is damaged at byte {at} (the record there fails its checksum)")
            try:
                out.extend(pickle.loads(blob))
            except Exception as exc:
                raise Damaged(f"{path}: the record at byte {at} cannot be loaded ({type(exc).__name__})") from None
            at += head + n
        return out

    def sinks(self, nbytes: int) -> list:
        """The outputs recorded up to `nbytes` of sinks.log, which is cut back to that."""
        try:
            out = self._read_sinks(nbytes)
        except Damaged as why:
            raise RunAborted(str(why)) from None
        path = self.root / SINKS
        if path.exists():
            with open(path, "r+b") as f:
                f.truncate(nbytes)
        return out


class CheckpointDamaged(RunAborted):
    """Every checkpoint generation is damaged: a resume refuses (exit 2)."""

    def __init__(self, message: str):
        super().__init__(message, exit_code=2)
