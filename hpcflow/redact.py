"""Secrets never reach a run directory's files: a password in a URL
(`redis://:PASSWORD@host:port/db`) is masked wherever hpcflow writes text a user may
share (metrics.json, status.json, run.log, errors.jsonl, checkpoint/run.json, the error
line on stderr, which a batch job's output file keeps), and the run key
(`HPCFLOW_RUN_KEY`) and variables named like secrets are never recorded at all.

A masked URL still says which server a run used; `hpcflow resume` asks for the
password again (engines/README.md, "Secrets").
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

MASK = "***"
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:@/\s]*:)(?P<password>[^@/\s]+)(?P<at>@)")
_SECRET_NAME = re.compile(r"KEY|PASSWORD|PASSWD|SECRET|TOKEN", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` with the password of every URL in it masked."""
    if "://" not in text:
        return text
    return _URL_PASSWORD.sub(lambda m: m["head"] + MASK + m["at"], text)


def redact_all(value: Any) -> Any:
    """A JSON-like value with every string in it `redact`ed (keys too)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_all(k): redact_all(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_all(v) for v in value]
    return value


def has_mask(value: Any) -> bool:
    """Whether a JSON-like value holds a URL `redact` masked."""
    return f":{MASK}@" in json.dumps(value, default=str)


def is_masked(url: str | None) -> bool:
    """Whether `url` is one `redact` masked (its password must be asked for again)."""
    if not url or "://" not in url:
        return False
    try:
        return urlsplit(url).password == MASK
    except ValueError:
        return False


def recordable_env(env: dict[str, str]) -> dict[str, str]:
    """The HPCFLOW_* settings worth recording for a resume, without a secret: no
    variable named like one (HPCFLOW_RUN_KEY), every URL's password masked."""
    return {k: redact(v) for k, v in env.items() if k.startswith("HPCFLOW_") and not _SECRET_NAME.search(k)}


def write_private(path: str | os.PathLike, text: str) -> None:
    """Write a file that must hold a secret, readable by its owner only (created 0600,
    never world-readable for a moment)."""
    path = Path(path)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
