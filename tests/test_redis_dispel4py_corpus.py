"""A subset of the dispel4py-style corpus on the Redis mappings, against a real
redis-server: stateless workflows on dyn_*, stateful ones on hybrid_*, and a stateful one
refused by dyn_redis. (In a file of its own, after the engine tests: the session's
redis-server must not be running while those check that no child process is left.)"""

from __future__ import annotations

import pytest
from test_dispel4py_corpus import check

pytestmark = pytest.mark.timeout(300)


REDIS_CASES = [
    ("pipeline", "dyn_redis"),
    ("composites", "dyn_redis"),
    ("iterative_chain", "dyn_auto_redis"),
    ("wordcount_composite", "hybrid_redis"),
    ("aggregates", "hybrid_redis"),
    ("sieve", "hybrid_auto_redis"),
    ("sieve", "dyn_redis"),  # refused: stateful
]


@pytest.mark.parametrize("case,mapping", REDIS_CASES)
def test_corpus_workflow_on_redis(redis_server, case, mapping):
    check(case, mapping, redis_url=redis_server)
