"""The best efficiency a placement allows on mpi_overhead.py's latency-bound pipeline.

    python experiments/bench/mpi_bound.py [--ranks 16]

With no cost at all but the sleeps (instant messages, exact sleeps), the runtime of
the 300 items' Beta(2,5) sleeps over 2 stages depends only on how the items are split:

- static: the staggered round robin of dispel4py's `mpi` and of hpcflow's `mpi` before
  #28 (instance i of a stage gets items i, i + n, ...; each sender starts at its own
  instance number), in FIFO order;
- demand: every item goes to the first instance of its stage that is free (a pool's
  split, what a credit-based split tends to but cannot reach without a global view);

for the `mpi` placement (the source on a rank of its own, the other ranks split over
the two stages by hpcflow's plan: 8 and 7 at 16 ranks; dispel4py's plan leaves one rank
idle: 7 and 7) and for a source rank that would also run a stage instance (8 and 8).
Efficiency as mpi_overhead.py prints it: the sleep total over (ranks - 1) x runtime.
"""

from __future__ import annotations

import argparse
import heapq
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from mpi_overhead import LATENCY_BOUND  # noqa: E402

from hpcflow.workflows.pipeline import beta_latency  # noqa: E402


def draws() -> tuple[list[float], list[float]]:
    p = LATENCY_BOUND
    first = [beta_latency(p["latency"], 0, 0, 0, i) for i in range(p["items"])]
    second = [beta_latency(p["latency"], 0, 0, 1, i + 1) for i in range(p["items"])]
    return first, second


def static(d1: list[float], d2: list[float], n1: int, n2: int) -> float:
    """Staggered round robin: the runtime."""
    arrivals = []
    for j in range(n1):
        t, dest = 0.0, j % n2
        for i in range(j, len(d1), n1):
            t += d1[i]
            arrivals.append((t, i, dest))
            dest = (dest + 1) % n2
    free = [0.0] * n2
    for t, i, dest in sorted(arrivals):
        free[dest] = max(free[dest], t) + d2[i]
    return max(free)


def demand(d1: list[float], d2: list[float], n1: int, n2: int) -> float:
    """Each item to the first free instance of its stage: the runtime."""
    free1, arrivals = [0.0] * n1, []
    for i, d in enumerate(d1):
        t = heapq.heappop(free1) + d
        heapq.heappush(free1, t)
        arrivals.append((t, i))
    free2, end = [0.0] * n2, 0.0
    for t, i in sorted(arrivals):
        f = max(heapq.heappop(free2), t) + d2[i]
        heapq.heappush(free2, f)
        end = max(end, f)
    return end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=16)
    ranks = parser.parse_args().ranks
    d1, d2 = draws()
    work = sum(d1) + sum(d2)
    workers = ranks - 1
    half = workers // 2
    print(f"sleep total {work:.3f} s; stage sleeps {sum(d1):.3f} s and {sum(d2):.3f} s")
    print(f"{'placement':<42} {'split':<7} {'runtime s':>9} {'efficiency':>10}")
    rows = [
        ("hpcflow mpi (source rank idle)", workers - half, half),
        ("dispel4py mpi (one more rank idle)", half, half),
        ("source rank also runs an instance", workers - half, workers - half),
    ]
    for name, n1, n2 in rows:
        for split, runtime in (("static", static(d1, d2, n1, n2)), ("demand", demand(d1, d2, n1, n2))):
            print(f"{name + f' {n1}/{n2}':<42} {split:<7} {runtime:>9.3f} {work / (workers * runtime):>10.3f}")


if __name__ == "__main__":
    main()
