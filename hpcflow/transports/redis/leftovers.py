"""What a launcher killed outright (SIGKILL) leaves on disk, removed by the next run.

While a run lasts, its launcher holds an exclusive flock on each thing it removes at the
end: a lock file in its private server's temporary folder, and the run directory's
`run.key`. The kernel drops a lock when its holder dies, however it dies, so a folder or
key found unlocked belongs to no live run: the next private server started on this node
removes such folders, the next run in the same run directory its `run.key` and
`redis.url`. Only the launcher's node sweeps: a joining worker on another node, where a
cluster filesystem may keep locks node-local, never deletes anything.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from pathlib import Path

from .signing import url_file

SERVER_DIR_PREFIX = "hpcflow-redis-"
LOCK_NAME = "lock"
YOUNG_S = 60  # a folder without its lock yet may be a server starting right now


def hold(path: str | os.PathLike) -> int:
    """Lock `path` (created if need be) for as long as this process lives or keeps the
    returned descriptor open; not inherited by the processes it starts."""
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def held(path: str | os.PathLike) -> bool:
    """Whether a live process holds `path`'s lock."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def server_dir() -> tuple[str, int]:
    """A new private server's temporary folder, and the descriptor that locks it, after
    removing the folders of servers whose launcher was killed."""
    sweep_server_dirs()
    path = tempfile.mkdtemp(prefix=SERVER_DIR_PREFIX)
    return path, hold(Path(path) / LOCK_NAME)


def sweep_server_dirs() -> None:
    for path in Path(tempfile.gettempdir()).glob(SERVER_DIR_PREFIX + "*"):
        try:
            st = path.stat()
        except OSError:
            continue
        if st.st_uid != os.getuid() or held(path / LOCK_NAME):
            continue
        if not (path / LOCK_NAME).exists() and time.time() - st.st_mtime < YOUNG_S:
            continue
        shutil.rmtree(path, ignore_errors=True)


def sweep_run_dir(key_file: str | os.PathLike) -> None:
    """Remove the run key and server URL a killed launcher left in this run directory."""
    if not held(key_file):
        Path(key_file).unlink(missing_ok=True)
        url_file(key_file).unlink(missing_ok=True)
