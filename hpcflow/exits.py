"""How a run ended, as metrics.json's `status` and the exit code of `hpcflow run`.

    ok           0   every item processed
    ok           3   the run finished, but items were skipped (on_error skip): see errors.jsonl
    failed       1   a PE failed (or hpcflow did), naming the PE and the item
    interrupted  130 / 143   SIGINT / SIGTERM: stopped with a checkpoint (mpi: drained; simple: at once)
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


@contextmanager
def signals_held() -> Iterator[None]:
    """While a run writes its end (outputs, metrics.json, status.json): SIGINT and SIGTERM
    change nothing, so a late or repeated signal cannot tear what is being written (the
    run has stopped already; its exit code says how)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in held.items():
            signal.signal(sig, handler)


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
