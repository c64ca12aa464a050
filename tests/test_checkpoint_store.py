"""Checkpoints on disk (engines/checkpoint.py), the snapshot contract (snapshot.py) and
what a run refuses about them."""

import os
import pickle

import pytest
from graphs import Count, CountPerKey, GlobalSum, KeyBy, canonical, chain

from hpcflow import GenericPE, run
from hpcflow.engines.checkpoint import CheckpointStore, Cut, state_file
from hpcflow.engines.protocol import Chunk
from hpcflow.engines.termination import Termination
from hpcflow.errors import PEError, UsageError
from hpcflow.snapshot import restore_snapshot, take_snapshot


def cut(n: int) -> Cut:
    return Cut(
        feeds={"Source": n},
        pending=[Chunk("Work", None, 2, pickle.dumps([("input", n), ("input", n + 1)]), id=n, resume=1)],
        finalized={},
        items={"Source": n},
        errors=[],
        service={"Work": 0.01},
        totals={"runtime_s": float(n)},
        instances={"Source": 1, "Work": 1},
        pinned=[("Work", 0)],  # the instance whose state each generation holds
    )


def write(store: CheckpointStore, n: int, sinks: list, sinks_bytes: int) -> Cut:
    c = cut(n)
    c.sinks_bytes = sinks_bytes
    store.write(c, {("Work", 0): pickle.dumps({"total": n})}, sinks)
    return c


def test_generations_are_numbered_the_two_newest_kept_and_the_newest_read(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoint")
    written = 0
    for n in range(1, 5):
        written = write(store, n, [("Sink", "output", pickle.dumps([n]))], written).sinks_bytes
    assert store.generations() == [3, 4]
    loaded, path = store.latest()
    assert loaded.generation == 4 and loaded.feeds == {"Source": 4}
    assert loaded.pending[0].resume == 1 and pickle.loads(loaded.pending[0].blob) == [("input", 4), ("input", 5)]
    assert pickle.loads(state_file(path, "Work", 0).read_bytes()) == {"total": 4}
    assert [pickle.loads(blob) for _, _, blob in store.sinks(loaded.sinks_bytes)] == [[1], [2], [3], [4]]


@pytest.mark.parametrize("tear", ["truncate a state", "drop the manifest", "garble the cut"])
def test_a_torn_generation_is_passed_over_for_the_one_before_and_its_outputs_cut_off(tmp_path, tear):
    store = CheckpointStore(tmp_path / "checkpoint")
    first = write(store, 1, [("Sink", "output", pickle.dumps(["a"]))], 0)
    write(store, 2, [("Sink", "output", pickle.dumps(["b"]))], first.sinks_bytes)
    newest = store.path(2)
    if tear == "truncate a state":
        path = state_file(newest, "Work", 0)
        path.write_bytes(path.read_bytes()[:3])
    elif tear == "drop the manifest":
        (newest / "manifest.json").unlink()
    else:
        (newest / "coordinator.pkl").write_bytes(b"\x80\x05garbage")
    loaded, path = store.latest()
    assert loaded.generation == 1 and path == store.path(1)
    assert [pickle.loads(blob) for _, _, blob in store.sinks(loaded.sinks_bytes)] == [["a"]]
    assert (store.root / "sinks.log").stat().st_size == loaded.sinks_bytes  # the torn one's outputs are gone


def test_a_half_written_generation_directory_is_not_a_generation(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoint")
    write(store, 1, [], 0)
    (store.root / ".tmp-00000002-123").mkdir()  # a crash before the rename
    assert store.generations() == [1]
    store.clear()
    assert store.latest() is None and not list(store.root.iterdir())


class Totals(GenericPE):
    def __init__(self):
        super().__init__()
        self._add_input("input", grouping="global")
        self.total = 0

    def process(self, inputs):
        self.total += inputs["input"]


def test_the_default_snapshot_is_the_instances_own_attributes_not_the_frameworks():
    pe = Totals()
    pe.total, pe.instance = 41, 3
    fresh = Totals()
    restore_snapshot(fresh, take_snapshot(pe))
    assert fresh.total == 41 and fresh.instance == 0 and "input" in fresh.inputconnections


class WithLog(Totals):
    """State that does not pickle (an open file) kept through snapshot()/restore()."""

    def __init__(self, path):
        super().__init__()
        self.path = str(path)

    def preprocess(self):
        self.log = open(self.path, "a")

    def snapshot(self):
        return {"total": self.total}

    def restore(self, state):
        self.total = state["total"]


def test_a_pe_with_snapshot_and_restore_keeps_what_it_chooses(tmp_path):
    pe = WithLog(tmp_path / "log")
    pe.preprocess()
    pe.total = 7
    fresh = WithLog(tmp_path / "log")
    fresh.preprocess()
    restore_snapshot(fresh, take_snapshot(pe))
    assert fresh.total == 7 and not fresh.log.closed


def test_state_that_does_not_pickle_names_the_pe_and_the_way_out(tmp_path):
    pe = Totals()
    pe.log = open(tmp_path / "log", "w")
    with pytest.raises(PEError, match=r"PE Totals\[0\].*cannot be pickled.*define snapshot\(\) and restore"):
        take_snapshot(pe)


def test_termination_restored_finalizes_only_the_instances_that_had_not():
    term = Termination(["A", "B"], {"B": ["A"]}, {"A": 1, "B": 3})
    term.restore({"A": 0, "B": 0}, {"A": [0], "B": [1]})
    assert term.is_done("A") and not term.is_done("B")
    assert term.ready_to_finalize() == ["B"]
    assert not term.was_finalized("B", 0) and term.was_finalized("B", 1)
    term.finalized("B", 0)
    term.finalized("B", 2)
    assert term.all_done


class KillOnceWithLog(CountPerKey):
    """A stateful instance whose process is SIGKILLed once, on its 150th item (a marker
    file), holding an open file it cannot pickle: snapshot()/restore() keep the counts."""

    def __init__(self, marker):
        super().__init__()
        self.marker = str(marker)

    def preprocess(self):
        self.log = open(self.marker + ".log", "a")
        self.seen = 0

    def snapshot(self):
        return dict(self.counts), self.seen

    def restore(self, state):
        self.counts, self.seen = dict(state[0]), state[1]

    def process(self, inputs):
        self.seen += 1
        if self.seen == 150 and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os.kill(os.getpid(), 9)
        return super().process(inputs)


class SlowKey(KeyBy):
    def _process(self, x):
        import time

        time.sleep(0.002)
        return super()._process(x)


@pytest.mark.parametrize("mapping", ["multi", "hybrid_multi"])
def test_a_killed_instance_with_snapshot_and_restore_goes_back_to_a_checkpoint_with_the_exact_result(tmp_path, mapping):
    def graph(pe):
        src = Count()
        return chain(src, SlowKey(), pe, GlobalSum()), {src: 600}

    expected = run(*graph(CountPerKey()), "simple")
    marker = tmp_path / "killed"
    result = run(
        *graph(KillOnceWithLog(marker)), mapping, 6, checkpoint_dir=str(tmp_path / "ck"), checkpoint_interval=0.05
    )
    assert marker.exists()
    assert canonical(result.outputs) == canonical(expected.outputs)
    assert result.metrics.extra["recoveries"] == 1


def test_checkpoints_are_refused_where_the_mapping_takes_none(tmp_path):
    def graph():
        src = Count()
        return chain(src, Totals()), {src: 3}

    with pytest.raises(UsageError, match="mapping simple takes no checkpoints"):
        run(*graph(), "simple", checkpoint_dir=str(tmp_path))
    with pytest.raises(UsageError, match="checkpoint_interval needs a checkpoint_dir"):
        run(*graph(), "multi", 2, checkpoint_interval=5)
    with pytest.raises(UsageError, match="checkpoint_interval must be 0"):
        run(*graph(), "multi", 2, checkpoint_dir=str(tmp_path), checkpoint_interval=-1)
