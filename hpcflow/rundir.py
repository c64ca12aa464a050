"""A run directory: metrics.json, outputs.jsonl, errors.jsonl, run.log and the
workflow's own result files."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .durable import replacing
from .errors import UsageError
from .metrics import to_jsonable
from .redact import redact, redact_all
from .result import RunResult


def safe_name(workflow: str) -> str:
    """A workflow's name as it may appear in a file or job name."""
    name = Path(workflow).name.removesuffix(".py")  # not .stem: a module path is a.b.c
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def run_dir_name(workflow: str, mapping: str) -> str:
    """`<UTC timestamp>-<workflow>-<mapping>`; `submit --dry-run` shows it without creating it."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return f"{stamp}-{safe_name(workflow)}-{mapping}"


def new_run_dir(workflow: str, mapping: str, root: str | Path = "runs") -> Path:
    base = Path(root) / run_dir_name(workflow, mapping)
    path, n = base, 1
    while True:
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            n += 1
            path = base.with_name(f"{base.name}-{n}")


def make_run_dir(run_dir: str | Path | None, workflow: str, mapping: str) -> tuple[bool, Path]:
    """`run_dir`, made if need be, or a new directory under runs/: (whether this call made
    it, so that a run that never starts can take it away again; the directory)."""
    created = run_dir is None or not Path(run_dir).exists()
    path = Path(run_dir) if run_dir else new_run_dir(workflow, mapping)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot create the run directory {path}: {exc.strerror or exc}; give --run-dir a writable path"
        ) from None
    return created, path


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with replacing(path) as f:
        for row in rows:
            f.write(json.dumps(row, default=to_jsonable) + "\n")


def write_result(run_dir: Path, result: RunResult) -> None:
    """outputs.jsonl and errors.jsonl, each durable and replaced whole. metrics.json, whose
    status says whether the run is done, is written after them (cli/runend.py)."""
    rows = (
        {"pe": pe, "port": port, "data": item}
        for pe, ports in result.outputs.items()
        for port, items in ports.items()
        for item in items
    )
    write_jsonl(run_dir / "outputs.jsonl", rows)
    if result.errors:  # an error text may quote a URL with its password
        write_jsonl(run_dir / "errors.jsonl", redact_all(result.errors))


class RedactingFormatter(logging.Formatter):
    """run.log's lines, with any password in a URL masked (redact.py)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class RunLog(logging.FileHandler):
    """run.log: a record that cannot be written (a full disk) is said once on stderr,
    not as a traceback for every record."""

    told = False

    def handleError(self, record: logging.LogRecord) -> None:
        if not self.told:
            self.told = True
            exc = sys.exc_info()[1]
            why = getattr(exc, "strerror", None) or exc
            print(f"hpcflow: warning: cannot write {self.baseFilename}: {why}", file=sys.stderr, flush=True)


def attach_log(run_dir: Path) -> logging.Handler:
    handler = RunLog(run_dir / "run.log")
    handler.setFormatter(RedactingFormatter("%(asctime)s %(processName)s %(name)s %(levelname)s %(message)s"))
    logger = logging.getLogger("hpcflow")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler
