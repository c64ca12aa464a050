"""The harm a schedule does, with real parts: signals and SIGKILLs to real processes, a
real redis-server killed or stopped, a real tmpfs filled to ENOSPC, real bytes changed
on disk. Each function returns a short description of what it did (None: nothing to do,
the fault is not counted as injected)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import psutil

SIGNALS = {"TERM": signal.SIGTERM, "INT": signal.SIGINT}


def send_signals(pid: int, names: str, gap: float) -> str:
    """`names` ("TERM+INT") to `pid`, `gap` seconds apart: the later ones land during the stop."""
    sent = []
    for i, name in enumerate(names.split("+")):
        if i:
            time.sleep(gap)
        try:
            os.kill(pid, SIGNALS[name])
        except ProcessLookupError:
            break
        sent.append(name)
    return "SIG" + "+".join(sent) if sent else None


def wait_for_checkpoint_write(checkpoint_dir: Path, alive, window: float = 3.0) -> str:
    """Polls for a generation being written (a `.tmp-*` directory under checkpoint/), else
    for a new generation to appear; returns which it saw ("writing", "written" or "none")."""
    deadline = time.monotonic() + window
    before = _generations(checkpoint_dir)
    while time.monotonic() < deadline and alive():
        try:
            names = os.listdir(checkpoint_dir)
        except OSError:
            names = []
        if any(n.startswith(".tmp-") for n in names):
            return "writing"
        if _generations(checkpoint_dir, names) - before:
            return "written"
        time.sleep(0.001)
    return "none"


def _generations(checkpoint_dir: Path, names: list[str] | None = None) -> set[str]:
    if names is None:
        try:
            names = os.listdir(checkpoint_dir)
        except OSError:
            return set()
    return {n for n in names if n.isdigit()}


def kill_launcher(pid: int, group: bool) -> str:
    """SIGKILL the launcher alone (its workers are orphaned) or its whole process group (a node lost)."""
    try:
        if group:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return None
    return "group" if group else "launcher"


def kill_one(pids: list[int], pick: int) -> str | None:
    if not pids:
        return None
    victim = sorted(pids)[pick % len(pids)]
    try:
        os.kill(victim, signal.SIGKILL)
    except ProcessLookupError:
        return None
    return str(victim)


def pool_workers(launcher: int, pinned: set[int]) -> list[int]:
    """The launcher's worker processes that are not pinned instances (nor a redis-server
    or multiprocessing's resource tracker)."""
    try:
        children = psutil.Process(launcher).children(recursive=True)
    except psutil.Error:
        return []
    found = []
    for child in children:
        try:
            cmdline = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if child.pid in pinned or "redis-server" in cmdline or "multiprocessing.resource_tracker" in cmdline:
            continue
        found.append(child.pid)
    return found


def corrupt(checkpoint_dir: Path, pick: int, how: str, where: float) -> str | None:
    """Flip one bit, zero 16 bytes or cut the file at a relative position `where`, in one
    file under checkpoint/ chosen by `pick`."""
    files = sorted(p for p in checkpoint_dir.rglob("*") if p.is_file()) if checkpoint_dir.is_dir() else []
    files = [p for p in files if p.stat().st_size > 0]
    if not files:
        return None
    path = files[pick % len(files)]
    size = path.stat().st_size
    at = min(int(where * size), size - 1)
    name = str(path.relative_to(checkpoint_dir))
    if how == "cut":
        os.truncate(path, at)
        return f"cut {name} at {at}/{size}"
    with open(path, "r+b") as f:
        f.seek(at)
        old = f.read(16 if how == "zero" else 1)
        new = bytes(len(old)) if how == "zero" else bytes([old[0] ^ (1 << (pick % 8))])
        if new == old:  # zeros over zeros: flip instead, so that something changes
            new = bytes([old[0] ^ 1]) + old[1:]
        f.seek(at)
        f.write(new)
    return f"{how} {name} at {at}/{size}"


class RedisServer:
    """A redis-server of the schedule's own, on a fixed port so that it can be restarted
    (empty, as a lost server comes back) where the run's settings say it is."""

    def __init__(self, binary: str, workdir: Path):
        self.binary, self.workdir = binary, workdir
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(
            [*args, "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> str:
        self.proc.kill()
        self.proc.wait()
        return "killed"

    def pause(self, seconds: float) -> str:
        """SIGSTOP now, SIGCONT `seconds` later (from a thread: the schedule goes on)."""
        proc = self.proc
        proc.send_signal(signal.SIGSTOP)

        def wake():
            time.sleep(seconds)
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)

        threading.Thread(target=wake, daemon=True).start()
        return f"stopped {seconds} s"

    def close(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()


class SmallDisk:
    """A tmpfs mounted for the run directory (root only): `fill()` takes every free byte,
    as a full disk would at that moment, `free()` gives them back, as a user would."""

    SIZE = "32m"

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.SIZE}", "tmpfs", str(path)], check=True)
        self.filler = path / ".filler"
        self.full = False

    @staticmethod
    def possible() -> bool:
        return os.geteuid() == 0

    def fill(self) -> str:
        with open(self.filler, "ab", buffering=0) as f:
            for chunk in (1 << 20, 4096, 1):
                block = bytes(chunk)
                try:
                    while True:
                        f.write(block)
                except OSError:
                    continue
        self.full = True
        return f"full ({self.filler.stat().st_size} bytes of filler)"

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)
        self.full = False

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False, capture_output=True)
