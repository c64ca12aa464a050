"""The `simple` mapping: sequential reference semantics, in the calling process.

Preprocess every PE instance; feed each root its inputs, draining everything downstream
after each call; then postprocess every instance in topological order, draining its
output before the next PE's postprocess. Stateful PEs get the same instances (and the
same group-by routing) as in the parallel mappings, so every mapping must produce the
same outputs as this one.
"""

from __future__ import annotations

import copy
import pickle
import time
from collections import Counter, deque
from typing import Any

from ..errors import PEError, RunAborted, UsageError
from ..inputs import iter_feed
from ..invoke import Invoker
from ..job import Job, Outcome, add_output
from ..metrics import cpu_seconds
from ..routing import Router


def ensure_picklable(port: str, data: Any) -> None:
    """Refuse what every parallel mapping could not send between processes, so that the
    reference mapping does not hide a failure that appears only at scale."""
    try:
        pickle.dumps(data)
    except Exception as exc:  # pickling raises many kinds: each is this one failure
        raise UsageError(
            f"its output to {port!r} cannot be pickled ({type(exc).__name__}: {exc}), so no parallel mapping "
            "could send it; --no-pickle-check (check_pickle=False) turns this check off"
        ) from None


def execute(job: Job) -> Outcome:
    t0 = time.perf_counter()
    cpu0 = cpu_seconds()
    plan = job.plan
    graph = job.graph
    router = Router(graph, plan)
    outputs: dict[str, dict[str, list]] = {}
    queue: deque[tuple[str, str, int, Any]] = deque()

    check_pickle = job.options.check_pickle

    def sink(pe: str, port: str, data: Any) -> None:
        if check_pickle:
            ensure_picklable(port, data)
        dests = router.route(pe, port, data)
        if not dests and job.options.collect:
            add_output(outputs, pe, port, data)
        for d in dests:
            # each of several destinations gets its own copy, as in dispel4py's simple
            # mapping and as the process mappings' pickling gives: a PE that changes its
            # input in place must not change what another branch sees
            queue.append((d.pe, d.port, d.instance or 0, copy.deepcopy(data) if len(dests) > 1 else data))

    # one copy of each PE instance a run (not a task), so the caller's PEs keep no state
    invokers = []
    for i in range(max(plan.instances.values())):
        pes = []
        for name in plan.order:
            if plan.instances[name] > i:
                pe = copy.deepcopy(graph.get(name))
                pe.instance = i
                pes.append(pe)
        invokers.append(Invoker(pes, sink, job.options.error_policy))

    def drain() -> None:
        while queue:
            pe, port, instance, data = queue.popleft()
            invokers[instance].process(pe, {port: data})

    failure = None
    try:
        for name in plan.order:
            for i in range(plan.instances[name]):
                invokers[i].preprocess(name)
        for name in plan.roots:
            for inputs in iter_feed(job.feeds[name]):
                invokers[0].process(name, inputs)
                drain()
        for name in plan.order:
            for i in range(plan.instances[name]):
                invokers[i].postprocess(name)
                drain()
    except PEError as exc:
        failure = exc
    except KeyboardInterrupt as exc:  # in this very process: stop at once, keep what is done
        name, code = getattr(exc, "signal_name", "SIGINT"), getattr(exc, "exit_code", 130)
        failure = RunAborted(f"stopped by {name}: simple stops at once (it runs in this process)", exit_code=code)
    runtime = time.perf_counter() - t0
    items: Counter[str] = Counter()
    errors: list[dict[str, Any]] = []
    for inv in invokers:
        items.update(inv.items)
        errors.extend(inv.errors)
    return Outcome(
        outputs=outputs,
        items=dict(items),
        runtime_s=runtime,
        process_time_s=runtime,
        cpu_time_s=cpu_seconds() - cpu0,
        timeline=[[0.0, 1, 0], [round(runtime, 6), 1, 0]],
        errors=errors,
        failure=failure,
    )
