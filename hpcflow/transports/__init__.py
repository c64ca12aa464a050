"""Transports: how chunks travel between the coordinator and the workers (see `base`).

`shared memory` (the `*_multi` mappings) keeps them in the coordinator; `redis` (the
`*_redis` mappings) in Redis streams, which also lets workers on other nodes join.
"""

from __future__ import annotations

from typing import Any

from ..job import Job
from ..options import Options
from .base import Broker

REDIS = "redis"


def check(transport: str, options: Options) -> None:
    """Raise UsageError now, before the run starts, if the transport cannot be used."""
    if transport == REDIS:
        from .redis.server import check_redis

        check_redis(options)


def make_broker(job: Job, ctx: Any) -> Broker:
    """The broker for the job's mapping; Redis is imported only when asked for."""
    if job.mapping.transport == REDIS:
        from .redis.broker import RedisBroker

        return RedisBroker(job, ctx)
    from .shm import ShmBroker

    return ShmBroker(job, ctx)
