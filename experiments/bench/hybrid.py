"""The stateful hybrid mapping against the static one, on an unbalanced stateful graph.

    Source -> Slow (sleeps --latency s) -> Cheap x3 -> CountByKey (group-by, 2 instances)
           -> Total (global)

The static mapping splits the processes left after the stateful instances evenly over
the four stateless PEs, so the slow one gets a quarter of them; the hybrid mapping pins
the stateful instances and lets its whole pool work on whatever is queued. Prints
runtime and process-time ratios of hybrid_multi and hybrid_auto_multi over multi at 8,
12 and 16 processes (medians over --repeats), and checks every run's result equals
simple's. Target: hybrid_multi / multi runtime <= 0.5.

    python experiments/bench/hybrid.py [--items 400] [--latency 0.02] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

from hpcflow import GenericPE, IterativePE, ProducerPE, WorkflowGraph, run


class Source(ProducerPE):
    def __init__(self):
        super().__init__()
        self.n = 0

    def _process(self, inputs):
        self.n += 1
        return (self.n % 10, self.n)


class Slow(IterativePE):
    def __init__(self, latency):
        super().__init__()
        self.latency = latency

    def _process(self, item):
        time.sleep(self.latency)
        return item


class Cheap(IterativePE):
    def _process(self, item):
        return item


class CountByKey(GenericPE):
    numprocesses = 2

    def __init__(self):
        super().__init__()
        self._add_input("input", grouping=[0])
        self._add_output("output")
        self.counts = {}

    def process(self, inputs):
        key = inputs["input"][0]
        self.counts[key] = self.counts.get(key, 0) + 1

    def postprocess(self):
        for item in sorted(self.counts.items()):
            self.write("output", item)


class Total(GenericPE):
    def __init__(self):
        super().__init__()
        self._add_input("input", grouping="global")
        self._add_output("output")
        self.counts = {}

    def process(self, inputs):
        key, n = inputs["input"]
        self.counts[key] = n

    def postprocess(self):
        self.write("output", dict(sorted(self.counts.items())))


def build(latency: float):
    graph = WorkflowGraph()
    pes = [Source(), Slow(latency), Cheap(), Cheap(), Cheap(), CountByKey(), Total()]
    for a, b in zip(pes, pes[1:], strict=False):
        graph.connect(a, "output", b, "input")
    return graph, pes[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=400)
    ap.add_argument("--latency", type=float, default=0.02)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--processes", default="8,12,16")
    args = ap.parse_args()

    graph, source = build(args.latency)
    expected = run(graph, {source: args.items}, "simple").outputs
    print(f"unbalanced stateful graph, {args.items} items, slow stage {args.latency} s/item, median of {args.repeats}")
    print(
        f"{'processes':>9} {'mapping':<18} {'runtime s':>9} {'process s':>9} {'runtime ratio':>13} "
        f"{'process ratio':>13}"
    )
    for processes in map(int, args.processes.split(",")):
        medians = {}
        for mapping in ("multi", "hybrid_multi", "hybrid_auto_multi"):
            runs = []
            for _ in range(args.repeats):
                result = run(graph, {source: args.items}, mapping, processes)
                assert result.outputs == expected, f"{mapping} differs from simple"
                runs.append(result.metrics)
            medians[mapping] = (
                statistics.median(m.runtime_s for m in runs),
                statistics.median(m.process_time_s for m in runs),
            )
        base_rt, base_pt = medians["multi"]
        for mapping, (rt, pt) in medians.items():
            print(f"{processes:>9} {mapping:<18} {rt:>9.2f} {pt:>9.2f} {rt / base_rt:>13.2f} {pt / base_pt:>13.2f}")


if __name__ == "__main__":
    main()
