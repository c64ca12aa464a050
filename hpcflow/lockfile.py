"""An flock on a file, as a sign that a process is using a directory: the kernel drops it
when the holder dies, however it dies, so no stale lock outlives a killed process."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


def try_lock(path: Path) -> tuple[int | None, str]:
    """(descriptor, "") once this process holds `path`'s lock, with its pid written in
    it; (None, the holder's pid as it wrote it) when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        return None, holder
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd, ""
