"""A second "node" for the multi-node tests: a network namespace joined to this one by a
veth pair, 10.201.17.1/30 here and 10.201.17.2/30 inside, and no other route (traffic
only between the two ends and each side's loopback). Needs root and `ip netns`."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass

HOST_ADDR, NODE_ADDR, PREFIX = "10.201.17.1", "10.201.17.2", 30
IP_TIMEOUT_S = 20


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT_S, check=check)


def unavailable() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if shutil.which("ip") is None:
        return "iproute2's ip command"
    if os.geteuid() != 0:
        return "root (for ip netns)"
    return None


@dataclass
class Node:
    name: str  # the namespace
    host_if: str  # the veth end on this side
    node_if: str  # the end inside the namespace

    @property
    def exec(self) -> list[str]:
        """The prefix that runs a command on this node."""
        return ["ip", "netns", "exec", self.name]

    def link(self, up: bool) -> None:
        """Cut (or restore) the node's only link, from inside it, as a cable would."""
        ip("netns", "exec", self.name, "ip", "link", "set", self.node_if, "up" if up else "down")

    def pids(self) -> list[int]:
        out = ip("netns", "pids", self.name, check=False).stdout
        return [int(p) for p in out.split()]


@contextmanager
def node(tag: str):
    """A namespace with its veth pair, deleted on the way out whatever happened, after
    killing what is still running in it (only the test's own processes run there)."""
    n = Node(f"hpcflow-{tag}", f"hf{tag}h", f"hf{tag}n")
    _delete(n)  # what a test killed mid-way may have left
    try:
        ip("netns", "add", n.name)
        ip("link", "add", n.host_if, "type", "veth", "peer", "name", n.node_if)
        ip("link", "set", n.node_if, "netns", n.name)
        ip("addr", "add", f"{HOST_ADDR}/{PREFIX}", "dev", n.host_if)
        ip("link", "set", n.host_if, "up")
        ip("netns", "exec", n.name, "ip", "addr", "add", f"{NODE_ADDR}/{PREFIX}", "dev", n.node_if)
        ip("netns", "exec", n.name, "ip", "link", "set", n.node_if, "up")
        ip("netns", "exec", n.name, "ip", "link", "set", "lo", "up")
        yield n
    finally:
        _delete(n)


def _delete(n: Node) -> None:
    for pid in n.pids():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    ip("netns", "del", n.name, check=False)
    ip("link", "del", n.host_if, check=False)  # gone with the namespace, unless that is still under way
