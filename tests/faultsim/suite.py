"""Many schedules at once (a few lanes in parallel) and the table of what they found."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from .runner import Outcome, play
from .schedule import KINDS, Schedule

RESULTS = ("exact", "resumed-exact", "refused", "WRONG", "crash", "hang", "linger", "unfinished")
SEED_ENV = "HPCFLOW_FAULT_SEED"


def seeds_to_run(default: Iterable[int]) -> list[int]:
    """HPCFLOW_FAULT_SEED=N replays schedule N alone; otherwise `default`."""
    one = os.environ.get(SEED_ENV)
    return [int(one)] if one not in (None, "") else list(default)


def redis_binary() -> str | None:
    from hpcflow.transports import find_server_binary

    return find_server_binary()


class Lanes:
    """Plays schedules on `lanes` threads (each drives its own processes); one future a schedule."""

    def __init__(self, base: Path, lanes: int, keep: bool = False):
        self.base, self.keep = base, keep
        self.pool = ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="faults")
        self.redis = redis_binary()

    def submit(self, schedule: Schedule) -> Future:
        return self.pool.submit(play, schedule, self.base, self.redis, self.keep)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def table(outcomes: list[Outcome], seconds: float | None = None) -> str:
    """Markdown: faults injected by kind, and outcomes by mapping."""
    injected = Counter()
    for o in outcomes:
        injected.update(o.injected)
    by_mapping: dict[str, Counter] = {}
    for o in outcomes:
        by_mapping.setdefault(o.schedule.mapping, Counter())[o.result] += 1
    shown = [r for r in RESULTS if any(c[r] for c in by_mapping.values()) or r in RESULTS[:4]]
    lines = [f"{len(outcomes)} schedules" + (f" in {seconds:.0f} s" if seconds is not None else "") + "."]
    lines += ["", "| fault | injected |", "|---|---|"]
    lines += [f"| {kind} | {injected[kind]} |" for kind in KINDS]
    lines += ["", "| mapping | schedules | " + " | ".join(shown) + " |", "|---" * (len(shown) + 2) + "|"]
    total = Counter()
    for mapping in sorted(by_mapping):
        c = by_mapping[mapping]
        total.update(c)
        lines.append(f"| {mapping} | {sum(c.values())} | " + " | ".join(str(c[r]) for r in shown) + " |")
    lines.append(f"| all | {sum(total.values())} | " + " | ".join(str(total[r]) for r in shown) + " |")
    bad = [o for o in outcomes if not o.holds]
    if bad:
        lines += ["", "Violations (seed: result, faults):"]
        for o in bad:
            lines.append(f"- {o.schedule.seed}: {o.result} ({o.problem}); {' '.join(map(str, o.schedule.faults))}")
    return "\n".join(lines)
