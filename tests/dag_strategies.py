"""Random workflow DAGs for the property tests: a hypothesis strategy that draws a
`DagSpec` (plain data, so hypothesis can shrink and print it) and `build(spec)`, which
makes the graph and its inputs out of the PEs below.

Every item is a `(key, value)` pair: group-by groupings take the key (index 0). A PE's
output depends only on the item it got, never on its instance or on the order of its
items, and the aggregates that `postprocess()` writes are counts and sums per key, so a
correct mapping reproduces `simple`'s outputs exactly (as multisets). What a mapping may
legitimately do differently is ruled out by construction:

- a PE with `postprocess()` and more than one instance has no shuffle input: round-robin
  differs between mappings (each worker routes on its own), so its per-instance
  aggregates would too;
- a root is called in order by one instance in every mapping, so a source counts its calls.

The PEs live in this importable module so that spawned workers can unpickle them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hypothesis import assume
from hypothesis import strategies as st

from hpcflow import GenericPE, WorkflowGraph

GROUPINGS = {"shuffle": None, "key": [0], "global": "global", "all": "all"}
KEYS = 5  # distinct keys: few, so group-by instances each get several
MAX_ITEMS = 1500  # a graph whose PEs could process more than this (in all) is drawn again


def item(value: int, salt: int, port: int, copy: int) -> tuple[str, int]:
    v = (value * 31 + salt * 7 + port * 3 + copy) % 1009
    return (f"k{v % KEYS}", v)


class Source(GenericPE):
    """A root: numbers its calls (or takes `seed` from list inputs) and writes `writes`
    items on each output port per call, unless `drop` divides the number."""

    def __init__(self, n_out: int, writes: int, drop: int, salt: int, seeded: bool):
        super().__init__()
        if seeded:
            self._add_input("seed")
        for j in range(n_out):
            self._add_output(f"out{j}")
        self.n_out, self.writes, self.drop, self.salt = n_out, writes, drop, salt
        self.calls = 0

    def process(self, inputs):
        self.calls += 1
        v = inputs.get("seed", self.calls)
        if self.drop and v % self.drop == 0:
            return None
        for j in range(self.n_out):
            for w in range(self.writes):
                self.write(f"out{j}", item(v, self.salt, j, w))
        return None


class TallySource(Source):
    """A root with state: postprocess() writes how many calls it had."""

    def postprocess(self):
        self.write("out0", ("calls", self.calls))


class Map(GenericPE):
    """Any number of inputs and outputs; a filter (returns None when `drop` divides the
    value) and `writes` items per output port otherwise."""

    def __init__(self, groupings: tuple[str, ...], n_out: int, writes: int, drop: int, salt: int):
        super().__init__()
        for i, g in enumerate(groupings):
            self._add_input(f"in{i}", grouping=GROUPINGS[g])
        for j in range(n_out):
            self._add_output(f"out{j}")
        self.n_out, self.writes, self.drop, self.salt = n_out, writes, drop, salt

    def process(self, inputs):
        ((port, (_, v)),) = inputs.items()
        v += int(port[2:])  # which input port it came in on shows in the output
        if self.drop and v % self.drop == 0:
            return None
        if self.n_out == 1 and self.writes == 1:
            return {"out0": item(v, self.salt, 0, 0)}  # the return-a-dict path
        for j in range(self.n_out):
            for w in range(self.writes):
                self.write(f"out{j}", item(v, self.salt, j, w))
        return None


class Aggregate(Map):
    """Counts and sums per key; postprocess() writes one aggregate per key on every output
    port, and `passthrough` also runs the Map behaviour on every item."""

    def __init__(self, *args, passthrough: bool = False):
        super().__init__(*args)
        self.passthrough = passthrough
        self.count: dict[str, int] = {}
        self.total: dict[str, int] = {}

    def process(self, inputs):
        ((_, (key, v)),) = inputs.items()
        self.count[key] = self.count.get(key, 0) + 1
        self.total[key] = self.total.get(key, 0) + v
        return super().process(inputs) if self.passthrough else None

    def postprocess(self):
        for key in sorted(self.count):
            for j in range(self.n_out):
                self.write(f"out{j}", (key, self.count[key] * 1_000_000 + self.total[key]))


@dataclass(frozen=True)
class NodeSpec:
    kind: str  # source | tally_source | map | aggregate
    groupings: tuple[str, ...] = ()  # one per input port (none for sources)
    n_out: int = 1
    writes: int = 1
    drop: int = 0  # 0: keep everything
    salt: int = 0
    numprocesses: int | None = None  # None: left to the plan
    stateful: bool = False  # an explicit `stateful = True` (map)
    passthrough: bool = False  # aggregate
    feed: int | tuple[int, ...] = 0  # sources: a number of calls, or the seeds of list inputs


@dataclass(frozen=True)
class DagSpec:
    nodes: tuple[NodeSpec, ...]
    edges: tuple[tuple[int, int, int, int], ...]  # (src node, src port, dst node, dst port)

    @property
    def stateful(self) -> bool:
        """Whether a pure dyn_* mapping must refuse it (roots may keep state)."""
        return any(
            n.kind == "aggregate" or n.stateful or any(g != "shuffle" for g in n.groupings)
            for n in self.nodes
            if not n.kind.endswith("source")
        )


def build(spec: DagSpec) -> tuple[WorkflowGraph, dict]:
    graph = WorkflowGraph()
    pes = []
    for node in spec.nodes:
        args = (node.n_out, node.writes, node.drop, node.salt)
        if node.kind in ("source", "tally_source"):
            cls = TallySource if node.kind == "tally_source" else Source
            pe = cls(*args, seeded=isinstance(node.feed, tuple))
        elif node.kind == "aggregate":
            pe = Aggregate(node.groupings, *args, passthrough=node.passthrough)
        else:
            pe = Map(node.groupings, *args)
        if node.numprocesses is not None:
            pe.numprocesses = node.numprocesses
        if node.stateful:
            pe.stateful = True
        pes.append(graph.add(pe))
    for src, sp, dst, dp in spec.edges:
        graph.connect(pes[src], f"out{sp}", pes[dst], f"in{dp}")
    inputs = {}
    for pe, node in zip(pes, spec.nodes, strict=True):
        if node.kind.endswith("source"):
            inputs[pe.name] = [{"seed": s} for s in node.feed] if isinstance(node.feed, tuple) else node.feed
    return graph, inputs


def _bound(nodes: list[NodeSpec], edges: list[tuple[int, int, int, int]]) -> int:
    """An upper bound of the items all PEs process (filters ignored)."""
    out: dict[tuple[int, int], int] = {}  # (node, port) -> items written at most
    total = 0
    for i, node in enumerate(nodes):
        if node.kind.endswith("source"):
            n = node.feed if isinstance(node.feed, int) else len(node.feed)
        else:
            instances = node.numprocesses or 1
            n = 0
            for src, sp, dst, dp in edges:
                if dst == i:
                    n += out[(src, sp)] * (instances if node.groupings[dp] == "all" else 1)
        total += n
        per_port = n * node.writes
        if node.kind == "aggregate":
            per_port = (n * node.writes if node.passthrough else 0) + KEYS * (node.numprocesses or 1)
        for j in range(node.n_out):
            out[(i, j)] = per_port + (1 if node.kind == "tally_source" and j == 0 else 0)
    return total


@st.composite
def dags(draw, stateless: bool = False, max_nodes: int = 6) -> DagSpec:
    """A random DAG: 1-2 roots, then PEs each fed by earlier PEs' output ports (fan-in
    and fan-out, several ports); with `stateless`, one a pure dyn_* mapping can run."""
    nodes: list[NodeSpec] = []
    edges: list[tuple[int, int, int, int]] = []
    for _ in range(draw(st.integers(1, 2))):
        feed = draw(st.integers(0, 12) | st.lists(st.integers(1, 500), max_size=10).map(tuple))
        kind = draw(st.sampled_from(["source", "source", "tally_source"]))
        nodes.append(
            NodeSpec(
                kind,
                n_out=draw(st.integers(1, 2)),
                writes=draw(st.sampled_from([1, 1, 2])),
                drop=draw(st.sampled_from([0, 0, 3])),
                salt=draw(st.integers(0, 9)),
                numprocesses=draw(st.none() | st.integers(1, 2)),  # a root gets one instance anyway
                feed=feed,
            )
        )
    for i in range(len(nodes), len(nodes) + draw(st.integers(1, max_nodes - len(nodes)))):
        kind = "map" if stateless else draw(st.sampled_from(["map", "map", "aggregate"]))
        n_in = draw(st.integers(1, 3))
        numprocesses = draw(st.none() | st.integers(1, 3))
        if stateless:
            groupings = ("shuffle",) * n_in
        elif kind == "aggregate" and (numprocesses or 1) > 1:  # see the module docstring
            groupings = tuple(draw(st.sampled_from(["key", "key", "global", "all"])) for _ in range(n_in))
        else:
            groupings = tuple(
                draw(st.sampled_from(["shuffle", "shuffle", "key", "global", "all"])) for _ in range(n_in)
            )
        ports = [(s, p) for s in range(i) for p in range(nodes[s].n_out)]
        for dp in range(n_in):  # each input port fed by 1-2 upstream output ports (fan-in)
            for s, p in draw(st.lists(st.sampled_from(ports), min_size=1, max_size=2, unique=True)):
                edges.append((s, p, i, dp))
        nodes.append(
            NodeSpec(
                kind,
                groupings=groupings,
                n_out=draw(st.integers(1, 2)),
                writes=draw(st.sampled_from([1, 1, 2])),
                drop=draw(st.sampled_from([0, 0, 2, 5])),
                salt=draw(st.integers(0, 9)),
                numprocesses=numprocesses,
                stateful=kind == "map" and not stateless and draw(st.sampled_from([False, False, True])),
                passthrough=kind == "aggregate" and draw(st.booleans()),
            )
        )
    if _bound(nodes, edges) > MAX_ITEMS:  # too big to run quickly: one call per root, one write each
        nodes = [
            replace(n, feed=min(n.feed, 1) if isinstance(n.feed, int) else n.feed[:1], writes=1)
            if n.kind.endswith("source")
            else replace(n, writes=1)
            for n in nodes
        ]
        assume(_bound(nodes, edges) <= MAX_ITEMS)
    return DagSpec(tuple(nodes), tuple(edges))
