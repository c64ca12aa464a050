"""Workflow shapes shared by the mapping tests: each builder returns (graph, inputs).

Every mapping must give the same outputs as `simple` on each of them (as multisets).
PEs live in this importable module so that spawned workers can unpickle them."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import select
import sys
import time

from hpcflow import ConsumerPE, GenericPE, IterativePE, ProducerPE, UsageError, WorkflowGraph, run


class Count(ProducerPE):
    def __init__(self):
        super().__init__()
        self.n = 0

    def _process(self, inputs):
        self.n += 1
        return self.n


class Add(IterativePE):
    def __init__(self, k=1, sleep=0.0):
        super().__init__()
        self.k = k
        self.sleep = sleep

    def _process(self, x):
        if self.sleep:
            time.sleep(self.sleep)
        return x + self.k


class EvensOnly(IterativePE):
    """A filter: returns None for odd items."""

    def _process(self, x):
        return x if x % 2 == 0 else None


class Split(GenericPE):
    """Two output ports and several writes per input."""

    def __init__(self):
        super().__init__()
        self._add_input("input")
        self._add_output("small")
        self._add_output("big")

    def process(self, inputs):
        x = inputs["input"]
        for i in range(x % 3):
            self.write("small" if x < 50 else "big", (x, i))


class Merge(GenericPE):
    """Two input ports (fan-in)."""

    def __init__(self):
        super().__init__()
        self._add_input("a")
        self._add_input("b")
        self._add_output("output")

    def process(self, inputs):
        ((port, x),) = inputs.items()
        return {"output": (port, x)}


class Tag(IterativePE):
    def _process(self, x):
        return ("tag", x)


class KeyBy(IterativePE):
    def _process(self, x):
        return (f"k{x % 7}", x)


class CountPerKey(GenericPE):
    numprocesses = 3

    def __init__(self):
        super().__init__()
        self._add_input("input", grouping=[0])
        self._add_output("output")
        self.counts = {}

    def process(self, inputs):
        key, _ = inputs["input"]
        self.counts[key] = self.counts.get(key, 0) + 1

    def postprocess(self):
        for key in sorted(self.counts):
            self.write("output", (key, self.counts[key]))


class GlobalSum(GenericPE):
    def __init__(self):
        super().__init__()
        self._add_input("input", grouping="global")
        self._add_output("output")
        self.total = 0
        self.n = 0

    def process(self, inputs):
        item = inputs["input"]
        self.total += item[1] if isinstance(item, tuple) else item
        self.n += 1

    def postprocess(self):
        self.write("output", {"total": self.total, "n": self.n})


class Broadcast(GenericPE):
    """Every instance sees every item ("all") and reports how many it saw."""

    numprocesses = 2

    def __init__(self):
        super().__init__()
        self._add_input("input", grouping="all")
        self._add_output("output")
        self.seen = 0

    def process(self, inputs):
        self.seen += 1

    def postprocess(self):
        self.write("output", ("saw", self.seen))


class Sink(ConsumerPE):
    """A consumer with no outputs: its effect is only the item count."""

    def _process(self, data):
        pass


def chain(*pes):
    graph = WorkflowGraph()
    for a, b in zip(pes, pes[1:], strict=False):
        graph.connect(a, "output", b, "input")
    return graph


def linear(n=60):
    src = Count()
    return chain(src, Add(1), Add(10), Add(100)), {src: n}


def fan_out(n=60):
    src, a, b, c = Count(), Add(1), Add(2), Add(3)
    g = WorkflowGraph()
    for pe in (a, b, c):
        g.connect(src, "output", pe, "input")
    return g, {src: n}


def fan_in(n=60):
    s1, s2, m = Count(), Count(), Merge()
    g = WorkflowGraph()
    g.connect(s1, "output", m, "a")
    g.connect(s2, "output", m, "b")
    return g, {s1: n, s2: n // 2}


def diamond(n=60):
    src, left, right, m, last = Count(), Add(1), Add(2), Merge(), Sink()
    g = WorkflowGraph()
    g.connect(src, "output", left, "input")
    g.connect(src, "output", right, "input")
    g.connect(left, "output", m, "a")
    g.connect(right, "output", m, "b")
    g.connect(m, "output", last, "input")
    return g, {src: n}


def multiple_ports(n=80):
    src, split, tag = Count(), Split(), Tag()
    g = WorkflowGraph()
    g.connect(src, "output", split, "input")
    g.connect(split, "small", tag, "input")  # "big" stays unconnected: collected as output
    return g, {src: n}


def filters(n=80):
    src = Count()
    return chain(src, EvensOnly(), Add(1)), {src: n}


def group_by(n=100):
    src = Count()
    return chain(src, KeyBy(), CountPerKey()), {src: n}


def global_sum(n=100):
    src = Count()
    return chain(src, Add(5), GlobalSum()), {src: n}


def broadcast(n=50):
    src = Count()
    return chain(src, Broadcast()), {src: n}


def word_count_pipeline(n=100):
    src = Count()
    return chain(src, KeyBy(), CountPerKey(), GlobalSum()), {src: n}


STATELESS = {
    "linear": linear,
    "fan_out": fan_out,
    "fan_in": fan_in,
    "diamond": diamond,
    "multiple_ports": multiple_ports,
    "filters": filters,
}
STATEFUL = {
    "group_by": group_by,
    "global_sum": global_sum,
    "broadcast": broadcast,
    "group_then_global": word_count_pipeline,
}
ALL_SHAPES = {**STATELESS, **STATEFUL}


def run_fitting(graph, inputs, mapping, processes, **options):
    """Run with `processes`, or with the minimum the plan asks for when that is more."""
    try:
        return run(graph, inputs, mapping, processes, **options)
    except UsageError as exc:
        needed = re.search(r"needs at least (\d+) processes", str(exc))
        assert needed, exc
        assert int(needed.group(1)) > processes
        return run(graph, inputs, mapping, int(needed.group(1)), **options)


def canonical(outputs):
    """Outputs as comparable multisets: {pe: {port: sorted JSON of each item}}."""
    return {
        pe: {port: sorted(json.dumps(x, sort_keys=True, default=repr) for x in items) for port, items in ports.items()}
        for pe, ports in outputs.items()
    }


def helping_another_pe(pe: GenericPE) -> bool:
    """Whether `pe` runs as a pool task in another PE's pinned process (one that runs
    pool tasks when it has nothing of its own to do)."""
    name = multiprocessing.current_process().name
    return name.endswith("]") and not name.startswith(f"hpcflow-{pe.name}[")


class KillOnce(IterativePE):
    """SIGKILLs its own worker process on the first item from `at` on, once per run (a
    marker file). Another PE's pinned process that runs pool tasks is spared: its death
    ends the run (test_a_pool_task_killing_a_pinned_process_ends_the_run)."""

    def __init__(self, marker, at=20, sleep=0.0):
        super().__init__()
        self.marker = str(marker)
        self.at = at
        self.sleep = sleep

    def _process(self, x):
        if self.sleep:
            time.sleep(self.sleep)
        if x >= self.at and not helping_another_pe(self):
            try:
                fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return x * 2
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            os.kill(os.getpid(), 9)
        return x * 2


class FailOn(IterativePE):
    def __init__(self, at=13):
        super().__init__()
        self.at = at

    def _process(self, x):
        if x == self.at:
            raise ValueError(f"bad item {x}")
        return x


class KillOnceByKey(CountPerKey):
    """A stateful instance (group-by, pinned in hybrid) that SIGKILLs its own process on item `at`."""

    def __init__(self, at=30):
        super().__init__()
        self.at = at

    def process(self, inputs):
        if inputs["input"][1] == self.at:
            os.kill(os.getpid(), 9)
        return super().process(inputs)


class ExitOn(IterativePE):
    """Leaves through sys.exit() or os._exit() on item `at`."""

    def __init__(self, how, at=7, code=3):
        super().__init__()
        self.how = how
        self.at = at
        self.code = code

    def _process(self, x):
        if x == self.at:
            if self.how == "sys.exit":
                sys.exit(self.code)
            os._exit(self.code)
        return x


class ExitInPreprocess(IterativePE):
    def preprocess(self):
        os._exit(7)

    def _process(self, x):
        return x


class FailInPreprocess(IterativePE):
    def preprocess(self):
        raise RuntimeError("no calibration file")

    def _process(self, x):
        return x


class FailInPostprocess(GlobalSum):
    def postprocess(self):
        raise RuntimeError("cannot write the summary")


class CountFailInPostprocess(Count):
    """A producer (pinned in every mapping, even dyn_*) whose postprocess() fails."""

    def postprocess(self):
        raise RuntimeError("cannot close the source")


class WriteLambda(IterativePE):
    def _process(self, x):
        return lambda: x


class WriteOpenFile(IterativePE):
    def _process(self, x):
        return open(os.devnull)


class BigArray(ProducerPE):
    """Writes arrays of `mb` megabytes, each filled with its call number."""

    def __init__(self, mb=50):
        super().__init__()
        self.mb = mb
        self.n = 0

    def _process(self, inputs):
        import numpy as np

        self.n += 1
        return np.full(self.mb * 2**20 // 8, float(self.n))


class Bump(IterativePE):
    """Adds 1 to the first element of an array (a copy)."""

    def _process(self, a):
        a = a.copy()
        a[0] += 1
        return a


class Digest(IterativePE):
    def _process(self, a):
        return (a.size, float(a[0]), float(a[-1]))


class WriteInPreprocess(IterativePE):
    def preprocess(self):
        self.write("output", "header")

    def _process(self, x):
        return x


class CountKilledAt(Count):
    """A producer that SIGKILLs its own process on call `at`."""

    def __init__(self, at=10):
        super().__init__()
        self.at = at

    def _process(self, inputs):
        if self.n + 1 == self.at:
            os.kill(os.getpid(), 9)
        return super()._process(inputs)


class KillMidCall(GenericPE):
    """For each input x writes `n` items (x, j), one a millisecond; on an input from `at` on
    its pool worker is SIGKILLed after `after` writes, once per run (a marker file): with outputs
    streaming out, some of that call's writes were delivered before it died."""

    def __init__(self, marker, at=5, n=40, after=30):
        super().__init__()
        self._add_input("input")
        self._add_output("output")
        self.marker, self.at, self.n, self.after = str(marker), at, n, after

    def process(self, inputs):
        x = inputs["input"]
        for j in range(self.n):
            if x >= self.at and j == self.after and not helping_another_pe(self):
                try:
                    os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                except FileExistsError:
                    pass
                else:
                    os.kill(os.getpid(), 9)
            time.sleep(0.001)
            self.write("output", (x, j))


class WriteThenWait(ProducerPE):
    """Writes `n` items in one call, then waits (up to `timeout` s) for a byte on the FIFO
    `fifo` from a downstream PE that got one of them, and writes whether it came."""

    def __init__(self, fifo, n=50, timeout=60.0):
        super().__init__()
        self.fifo, self.n, self.timeout = str(fifo), n, timeout

    def _process(self, inputs):
        fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
        keep = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)  # a writer always there: no early EOF
        try:
            for i in range(self.n):
                self.write("output", ("item", i))
            readable, _, _ = select.select([fd], [], [], self.timeout)
            seen = bool(readable) and os.read(fd, 1) == b"x"
        finally:
            os.close(keep)
            os.close(fd)
        self.write("output", ("seen during the call", seen))


class SignalFirst(IterativePE):
    """Writes a byte to the FIFO `fifo` for the first item it gets (if a reader is there)."""

    def __init__(self, fifo):
        super().__init__()
        self.fifo = str(fifo)
        self.signalled = False

    def _process(self, item):
        if not self.signalled:
            self.signalled = True
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # the writer's call is over
                return item
            os.write(fd, b"x")
            os.close(fd)
        return item


class KillInHelper(IterativePE):
    """Sleeps `sleep` s an item; SIGKILLs its process if that is another PE's pinned
    process helping the pool."""

    def __init__(self, sleep=0.01):
        super().__init__()
        self.sleep = sleep

    def _process(self, x):
        if helping_another_pe(self):
            os.kill(os.getpid(), 9)
        time.sleep(self.sleep)
        return x
