"""One sweep at a time on an output directory, and no run outliving its sweep.

The lock is an flock on OUTPUT/.sweep.lock: the kernel drops it when the last process
holding it dies, however it dies, so a stale lock cannot outlive a killed sweep. Each
cell's `hpcflow run` inherits the locked file and is asked (PR_SET_PDEATHSIG) to get
SIGTERM when the sweep dies: a SIGKILLed sweep's current run drains, writes its metrics
and exits, and until it has, the directory stays locked, so a resumed sweep never runs
beside it in the same directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import UsageError
from ..lockfile import try_lock

LOCK_FILE = ".sweep.lock"


@contextmanager
def output_lock(output: Path) -> Iterator[int]:
    """Hold OUTPUT's lock for the block: the open file's descriptor, for the cells to inherit."""
    output.mkdir(parents=True, exist_ok=True)
    fd, holder = try_lock(output / LOCK_FILE)
    if fd is None:
        raise UsageError(
            f"another sweep (or a run it started, still ending) is using {output} (pid {holder}); "
            "wait for it to end, or give another --output"
        )
    try:
        yield fd
    finally:
        os.close(fd)
