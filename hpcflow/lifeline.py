"""A child process that must not outlive its parent (Linux): the kernel signals it when
the parent dies, even by SIGKILL, which no handler of the parent could forward."""

from __future__ import annotations

import ctypes
import signal

PR_SET_PDEATHSIG = 1


def signal_when_parent_dies(sig: int = signal.SIGTERM) -> None:
    """Ask for `sig` when the parent dies; call it in the child (a Popen preexec_fn). A
    no-op where prctl is missing."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)
    except (OSError, AttributeError):
        pass
