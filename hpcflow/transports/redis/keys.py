"""The names of a run's Redis keys, all under `hpcflow:{RUN_ID}:` so that one server can
hold several runs and a run's keys can be found and deleted together. The braces make
the run id a Redis Cluster hash tag: every key of a run lives in one slot, as the
MULTI/EXEC of a worker's report requires.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from ...errors import UsageError

GROUP = "hpcflow"  # the consumer group of every stream that workers read
HEARTBEAT_S = 1.0  # how often the coordinator and each `hpcflow worker` say they are alive
HEARTBEAT_TTL_MS = 10_000  # silent this long, a node is taken as lost (its workers' work is replayed)
RUN_ID = re.compile(r"[A-Za-z0-9._-]{1,200}")


def new_run_id() -> str:
    return f"run-{secrets.token_hex(6)}"


def run_id_of(name: str) -> str:
    """The run id of a run directory's name (what `hpcflow run` and `hpcflow worker
    --run` both use): its characters outside the allowed ones become `_`."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:200] or "_"


def check_run_id(run_id: str) -> str:
    if not RUN_ID.fullmatch(run_id):
        raise UsageError(f"run id {run_id!r} must be 1-200 letters, digits, '.', '_' or '-'")
    return run_id


@dataclass(frozen=True)
class RunKeys:
    run_id: str

    @property
    def prefix(self) -> str:
        return f"hpcflow:{{{self.run_id}}}:"

    @property
    def pattern(self) -> str:
        """SCAN MATCH pattern of every key of the run (glob: escape the brackets)."""
        return self.prefix + "*"

    @property
    def setup(self) -> str:
        """The signed, pickled (graph, plan, options) a joining worker starts from."""
        return self.prefix + "setup"

    @property
    def key_file(self) -> str:
        """Where the run's HMAC key file is, for a joining worker that was given none."""
        return self.prefix + "keyfile"

    @property
    def ids(self) -> str:
        """Counter of worker ids: every worker, local or joined, has its own."""
        return self.prefix + "ids"

    @property
    def events(self) -> str:
        """Workers -> coordinator: READY, DONE (the report), FAILED, BYE, JOINED, EXITED."""
        return self.prefix + "events"

    @property
    def service(self) -> str:
        """Hash of measured seconds per task of each PE, written by the coordinator."""
        return self.prefix + "service"

    def pool(self, pe: str) -> str:
        """Stream of the chunks for a PE the pool runs (any pool worker takes them)."""
        return f"{self.prefix}pool:{pe}"

    def pinned(self, pe: str, instance: int) -> str:
        """Stream of the chunks for one pinned instance (a root or a stateful instance)."""
        return f"{self.prefix}pin:{pe}:{instance}"

    def control(self, wid: int) -> str:
        """Stream of one worker's commands: FINALIZE, STOP, PARK, WAKE."""
        return f"{self.prefix}ctl:{wid}"

    def lease(self, wid: int) -> str:
        """A worker's incarnation: the token its every write must show (see `fenced`)."""
        return f"{self.prefix}lease:{wid}"

    @property
    def seen(self) -> str:
        """Set of the unique ids of the work and command entries taken so far: a copy of
        one is dropped, never run twice."""
        return self.prefix + "seen"

    def alive(self, group: str) -> str:
        """Heartbeat of a group of joined workers; expires when its node stops answering."""
        return f"{self.prefix}alive:{group}"

    @property
    def coordinator_alive(self) -> str:
        """The coordinator's heartbeat: joined workers leave a run whose coordinator died."""
        return f"{self.prefix}coordinator"

    def client(self, wid: int) -> str:
        """A worker's Redis client name, unique on the server, to find its connections."""
        return f"hpcflow.{self.run_id}.{consumer(wid)}"

    def stream_of(self, pe: str, instance: int | None) -> str:
        return self.pool(pe) if instance is None else self.pinned(pe, instance)


def delete_run_keys(r: Any, keys: RunKeys) -> None:
    """Delete every key of a run (in batches: a run may have many streams)."""
    names = list(r.scan_iter(match=keys.pattern, count=1000))
    for i in range(0, len(names), 1000):
        r.unlink(*names[i : i + 1000])


def consumer(wid: int) -> str:
    """A worker's consumer name in every group, and its Redis client name."""
    return f"w{wid}"
