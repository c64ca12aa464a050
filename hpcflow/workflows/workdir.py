"""Where a built-in workflow keeps its files (an input it generates, the results it writes)."""

from __future__ import annotations

import tempfile
from pathlib import Path


def work_dir(run_dir: str | None, workflow: str) -> Path:
    """The run directory the CLI gives build(), or, for a build() called from Python
    without one, a fresh temporary directory (never the caller's working directory)."""
    if run_dir is None:
        return Path(tempfile.mkdtemp(prefix=f"hpcflow-{workflow}-"))
    path = Path(run_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path
