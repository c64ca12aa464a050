"""Shared test fixtures. A test that needs a component (redis-server, mpiexec, SLURM)
calls `require(...)`: it skips on a developer machine without it, and fails in CI, where
`.ci/run` sets HPCFLOW_REQUIRE_SERVICES=1 so that a missing service is never a silent skip."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from hpcflow.transports import find_server_binary

ROOT = Path(__file__).resolve().parents[1]
SESSION_PIDS: set[int] = set()  # servers the session's fixtures keep for every test: no run left them


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


def python_without_mpiexec(where: Path) -> Path:
    """A virtualenv's `python` in WHERE/venv/bin, with no mpiexec beside it, that sees this
    interpreter's packages (through a .pth file naming its site-packages) and never the
    machine's own Python's: a bare symlink to sys.executable would be the base interpreter,
    whose packages are whatever the machine happens to have (none on a fresh one)."""
    import site
    import venv

    root = where / "venv"
    venv.create(root, with_pip=False, symlinks=True)
    [target] = (root / "lib").glob("python*/site-packages")
    dirs = [d for d in site.getsitepackages() if Path(d).is_dir()]
    target.joinpath("hpcflow-test-parent.pth").write_text(
        "import site; " + "; ".join(f"site.addsitedir({d!r})" for d in dirs) + "\n"
    )
    return root / "bin" / "python"


@pytest.fixture
def cli(tmp_path):
    """`cli("run", ...)` runs the hpcflow command in a temporary directory."""

    def call(*args: str, **kw):
        kw.setdefault("cwd", tmp_path)
        return run_cli(*args, **kw)

    return call


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server on a free loopback port for the session: its URL (no password)."""
    binary = find_server_binary()
    require(binary is not None, "redis-server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workdir = tmp_path_factory.mktemp("redis")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen([*args, "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    SESSION_PIDS.add(proc.pid)
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"redis-server did not start on port {port}")
            time.sleep(0.05)
    client.close()
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def in_process(tmp_path, monkeypatch, capsys):
    """`in_process(*args)` calls the same main() as `python -m hpcflow` in a temporary
    directory and returns (exit code, stdout, stderr): a subprocess costs a second of
    interpreter start, so only the end-to-end tests use the `cli` fixture."""
    from hpcflow.cli import main

    return main_caller(main, tmp_path, monkeypatch, capsys)


def main_caller(main, tmp_path, monkeypatch, capsys):
    """A caller of the command-line entry point `main(argv)` in `tmp_path`: see `in_process`."""
    monkeypatch.chdir(tmp_path)

    def call(*args):
        with pytest.raises(SystemExit) as exit_info:
            main(list(args))
        out = capsys.readouterr()
        return exit_info.value.code, out.out, out.err

    return call


@pytest.fixture
def no_leftover_processes():
    """Fails a test after which a process it started is still there (an orphaned or
    unreaped worker): `pytestmark = pytest.mark.usefixtures("no_leftover_processes")`."""
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    left = [p for p in child_processes() if p.pid not in before]
    assert not left, f"processes left behind: {left}"


def child_processes() -> list[psutil.Process]:
    """The processes this test process started and that are still there (zombies too:
    a worker not waited for), but multiprocessing's own helpers and the session's servers."""
    return [p for p in psutil.Process().children(recursive=True) if not _mp_helper(p) and p.pid not in SESSION_PIDS]


def _mp_helper(proc: psutil.Process) -> bool:
    """multiprocessing's resource tracker or fork server: started once, kept for the
    interpreter's life; not a worker of any run."""
    try:
        cmdline = " ".join(proc.cmdline())
    except psutil.Error:
        return False
    return "multiprocessing.resource_tracker" in cmdline or "multiprocessing.forkserver" in cmdline


@pytest.fixture
def multiset():
    """`multiset(result.outputs)`: every (pe, port, item) of a run as an order-free
    Counter (mappings may reorder items, never change them)."""

    def count(outputs: dict[str, dict[str, list]]) -> Counter:
        return Counter(
            json.dumps([pe, port, item], sort_keys=True)
            for pe, ports in outputs.items()
            for port, items in ports.items()
            for item in items
        )

    return count
