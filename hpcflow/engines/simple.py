"""The `simple` mapping: sequential reference semantics, in the calling process.

Preprocess every PE; feed each root its inputs, draining everything downstream after
each call; then postprocess every PE in topological order, draining its output before
the next PE's postprocess. Every other mapping must produce the same outputs.
"""

from __future__ import annotations

import copy
import time
from collections import deque
from typing import Any

from ..errors import PEError
from ..inputs import iter_feed
from ..invoke import Invoker
from ..job import Job, Outcome, add_output
from ..metrics import cpu_seconds
from ..routing import Router


def execute(job: Job) -> Outcome:
    t0 = time.perf_counter()
    cpu0 = cpu_seconds()
    graph = copy.deepcopy(job.graph)  # one copy a run, so the caller's PEs keep no state
    router = Router(graph, job.plan)
    outputs: dict[str, dict[str, list]] = {}
    queue: deque[tuple[str, str, Any]] = deque()

    def sink(pe: str, port: str, data: Any) -> None:
        if not router.is_connected(pe, port):
            if job.options.collect:
                add_output(outputs, pe, port, data)
            return
        for dest in router.route(pe, port, data):
            queue.append((dest.pe, dest.port, data))

    invoker = Invoker(graph.pes, sink, job.options.error_policy)

    def drain() -> None:
        while queue:
            pe, port, data = queue.popleft()
            invoker.process(pe, {port: data})

    failure = None
    try:
        for name in job.plan.order:
            invoker.preprocess(name)
        for name in job.plan.roots:
            for inputs in iter_feed(job.feeds[name]):
                invoker.process(name, inputs)
                drain()
        for name in job.plan.order:
            invoker.postprocess(name)
            drain()
    except PEError as exc:
        failure = exc
    runtime = time.perf_counter() - t0
    return Outcome(
        outputs=outputs,
        items=dict(invoker.items),
        runtime_s=runtime,
        process_time_s=runtime,
        cpu_time_s=cpu_seconds() - cpu0,
        timeline=[[0.0, 1, 0], [round(runtime, 6), 1, 0]],
        errors=invoker.errors,
        failure=failure,
    )
