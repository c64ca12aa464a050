"""A child process that must not outlive its parent (Linux): the kernel signals it when
the parent dies, even by SIGKILL, which no handler of the parent could forward. Used by
workers, the private Redis server, the MPI re-launch and a sweep's cells."""

from __future__ import annotations

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1  # linux/prctl.h

try:  # opened once here, so a preexec_fn (between fork and exec) makes one plain call
    _LIBC = ctypes.CDLL(None, use_errno=True)  # this process's symbols, libc's prctl among them
except OSError:
    _LIBC = None


def signal_when_parent_dies(sig: int = signal.SIGTERM, parent: int | None = None) -> None:
    """Ask for `sig` when the parent dies; call it in the child (in a worker's start or a
    Popen preexec_fn). A no-op where prctl is missing. `parent`: the process the child
    was started by; if it died before this call (a launcher SIGKILLed while its workers
    start: the request came too late to fire), `sig` comes now, so no child is orphaned."""
    prctl = getattr(_LIBC, "prctl", None)
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if parent is not None and os.getppid() != parent:
            os.kill(os.getpid(), sig)
