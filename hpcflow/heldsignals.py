"""SIGTERM and SIGINT while no engine listens for them: in the first moments of
`hpcflow run` (status.json already says "running", the coordinator has not yet installed
its handlers), between the coordinators of a recovery, and after the run ended while the
CLI writes its files. Left to their default action there, they killed the launcher with
no metrics.json and status.json left "running" (found by the fault schedules of issue 25,
tests/faultsim). Held here instead, a signal goes to the next coordinator that installs
its handlers (the run stops with a checkpoint, as it would a moment later); one that
comes after the run ended changes nothing, so the run's files are written whole."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

HELD = (signal.SIGTERM, signal.SIGINT)
_pending: list[int] = []


def _hold(signum: int, frame: object) -> None:
    _pending.append(signum)


@contextmanager
def holding(restore: bool = True) -> Iterator[None]:
    """Hold the signals for the span of a run (call it on the main thread). `restore=False`:
    the process exits after the run, so from then on they are ignored, not given back to
    their default action (which would end a finished run's process by a signal)."""
    old = {sig: signal.signal(sig, _hold) for sig in HELD}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler if restore else signal.SIG_IGN)
        _pending.clear()


def take() -> list[int]:
    """The signals held since the last call, oldest first (an engine that now listens acts on them)."""
    taken = list(_pending)
    del _pending[: len(taken)]
    return taken
