"""How a run ended, as metrics.json's `status` and the exit code of `hpcflow run`.

    ok           0   every item processed
    ok           3   the run finished, but items were skipped (on_error skip): see errors.jsonl
    failed       1   a PE failed (or hpcflow did), naming the PE and the item
    interrupted  130 / 143   SIGINT / SIGTERM: sources stopped, in-flight work drained
    stalled      1   no task finished for stall_timeout seconds

Exit 3 for skipped items makes `hpcflow run ... && next-step` stop unless the caller
accepts skipping on purpose (`|| [ $? = 3 ]`), while metrics.json still says `ok`.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import RunAborted

SKIPPED_EXIT = 3
INTERRUPTED_EXIT = 128 + signal.SIGINT


class Terminated(KeyboardInterrupt):
    """SIGTERM (a batch system's walltime warning, a killed sweep) in an engine that runs
    in the CLI's own process (simple): stop as Ctrl-C does, under the signal's own name."""

    signal_name = "SIGTERM"
    exit_code = 128 + signal.SIGTERM


def raise_terminated(signum: int, frame: object) -> None:
    """A SIGTERM handler for the span of a run (an engine with handlers of its own
    installs them over it)."""
    raise Terminated()


def end_state(exc: BaseException | None) -> tuple[str, int]:
    """(status, exit code) of a run that ended with `exc` (None: it finished)."""
    if exc is None:
        return "ok", 0
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", getattr(exc, "exit_code", INTERRUPTED_EXIT)
    code = getattr(exc, "exit_code", 1)
    if isinstance(exc, RunAborted) and code > 128:
        return "interrupted", code
    if isinstance(exc, RunAborted) and str(exc).startswith("stopped by signal"):  # a second signal: abort
        return "interrupted", INTERRUPTED_EXIT
    if isinstance(exc, RunAborted) and "stall_timeout" in str(exc):
        return "stalled", code
    return "failed", code


@contextmanager
def signals_held(restore: bool = True) -> Iterator[list[int]]:
    """While a run's end is written (metrics.json, status.json, the report, the last
    lines): a SIGTERM or SIGINT is noted, not obeyed, so that however a second signal or a
    batch system's kill falls, the end is on disk whole. The run's own exit code stands.
    `restore=False`: the process exits next (its interpreter's shutdown, which reaps the
    workers, is not cut short either)."""
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    noted: list[int] = []
    old = {
        sig: signal.signal(sig, lambda signum, frame: noted.append(signum)) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield noted
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler if restore else signal.SIG_IGN)
