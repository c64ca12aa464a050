"""Shared test fixtures. A test that needs a component (redis-server, mpiexec, SLURM)
calls `require(...)`: it skips on a developer machine without it, and fails in CI, where
`.ci/run` sets HPCFLOW_REQUIRE_SERVICES=1 so that a missing service is never a silent skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def require(ok: bool, what: str) -> None:
    if ok:
        return
    if os.environ.get("HPCFLOW_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{what} is required in CI (HPCFLOW_REQUIRE_SERVICES=1) but missing")
    pytest.skip(f"{what} not available")


def run_cli(*args: str, cwd: str | os.PathLike | None = None, env: dict | None = None, timeout: float = 120):
    """Run `python -m hpcflow ARGS` in a subprocess; returns CompletedProcess (text)."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "hpcflow", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def cli(tmp_path):
    """`cli("run", ...)` runs the hpcflow command in a temporary directory."""

    def call(*args: str, **kw):
        kw.setdefault("cwd", tmp_path)
        return run_cli(*args, **kw)

    return call


@pytest.fixture
def cli_here(tmp_path, monkeypatch, capsys):
    """`cli_here(*args)` runs the hpcflow command in this process, in a temporary
    directory, and returns (exit code, stdout, stderr): no interpreter start to pay."""
    from hpcflow.cli import main

    monkeypatch.chdir(tmp_path)

    def call(*args: str):
        with pytest.raises(SystemExit) as exit_info:
            main(list(args))
        out = capsys.readouterr()
        return exit_info.value.code, out.out, out.err

    return call
