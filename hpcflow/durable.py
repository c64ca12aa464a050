"""Writing files that a reader (a user, `hpcflow status`, `hpcflow resume`) trusts: each is
written beside its place, flushed and fsynced, then renamed over it, so a reader sees
the old file or the new one, never half; a failed write leaves the old one.

HPCFLOW_FAIL_WRITE is a fault-injection point for tests: `NAME` or `NAME:N` makes the
N-th write (1 by default; counted in each process) of a file named NAME, and every later
one, fail with ENOSPC, as a full disk would; `*` names every file. Unset, it does nothing.
"""

from __future__ import annotations

import errno
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

FAIL_WRITE = "HPCFLOW_FAIL_WRITE"
_writes: Counter[str] = Counter()


def check_write(path: Path | str) -> None:
    """Raise ENOSPC where HPCFLOW_FAIL_WRITE says this write fails."""
    rule = os.environ.get(FAIL_WRITE)
    if not rule:
        return
    name, _, nth = rule.partition(":")
    base = Path(path).name
    if name not in ("*", base):
        return
    _writes[base] += 1
    if _writes[base] >= int(nth or 1):
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} ({FAIL_WRITE}={rule})", str(path))


@contextmanager
def named(path: Path | str) -> Iterator[None]:
    """An OSError inside names `path` (a failed write() or fsync() names no file)."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            exc.filename = str(path)
        raise


def fsync_dir(path: Path | str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_synced(path: Path | str, data: bytes, name: Path | str | None = None) -> None:
    """Write `data` to `path` and fsync it (no rename: for a file in a directory that is
    itself renamed into place). `name`: the file this write stands for, if not `path`."""
    check_write(name or path)
    with named(name or path), open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


@contextmanager
def replacing(path: Path | str, mode: str = "w") -> Iterator[IO]:
    """A file to write `path` through: on a clean exit it is flushed, fsynced and renamed
    over `path`; on an error it is removed and the old `path` stays."""
    path = Path(path)
    check_write(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with named(path), open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def replace_file(path: Path | str, data: bytes | str) -> None:
    """Write `path` whole, durably and atomically; on failure the old file stays."""
    with replacing(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def write_error(path: Path | str, exc: OSError) -> str:
    """One line for a failed write: which file, and why."""
    return f"cannot write {path}: {exc.strerror or exc}" + (f" [errno {exc.errno}]" if exc.errno else "")
