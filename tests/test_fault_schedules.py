"""Randomized fault schedules (issue 25; tests/faultsim): 200 seeded schedules, each a
stateful workflow with a known answer on multi, hybrid_multi, dyn_multi (its stateless
part) or hybrid_redis, struck by signals (several, during the stop, during a checkpoint
write), SIGKILLs of the launcher, of pinned instances and of pool workers, a full disk,
damaged checkpoint files, a resume with other settings, a lost or stopped Redis server;
then resumed as a user would until done or refused. The invariant (faultsim/runner.py):
no run ends `ok` unless its outputs equal `simple`'s exactly, and every other end is
resumed to the exact result or refused with one clear line.

The schedules are played two at a time (each drives its own processes), one test a
schedule, named by its seed. `HPCFLOW_FAULT_SEED=N` plays schedule N alone;
`HPCFLOW_FAULT_KINDS=a,b` draws from those fault kinds only; `HPCFLOW_FAULT_SCHEDULES`
and `HPCFLOW_FAULT_BASE` play others than seeds 0..199; `HPCFLOW_FAULT_LANES` how many at once. More, and the table:
experiments/bench/faults.py.
"""

from __future__ import annotations

import json
import os

import pytest
from conftest import require
from faultsim.inject import SmallDisk
from faultsim.schedule import KINDS, draw
from faultsim.suite import Lanes, redis_binary, seeds_to_run

BASE = int(os.environ.get("HPCFLOW_FAULT_BASE", "0"))
COUNT = int(os.environ.get("HPCFLOW_FAULT_SCHEDULES", "200"))
LANES = int(os.environ.get("HPCFLOW_FAULT_LANES", "2"))  # schedules at once: each mostly waits on its runs

# Every kind is in the CI set; a kind that still ends a run WRONG against the merged fixes
# is left out here with the seed and the defect named, and kept in the bench.
CI_KINDS = tuple(KINDS)


def kinds() -> tuple[str, ...]:
    given = os.environ.get("HPCFLOW_FAULT_KINDS")
    chosen = tuple(given.split(",")) if given else CI_KINDS
    unknown = [k for k in chosen if k not in KINDS]
    assert not unknown, f"HPCFLOW_FAULT_KINDS: unknown kinds {unknown}; known: {list(KINDS)}"
    if not SmallDisk.possible() and os.environ.get("HPCFLOW_REQUIRE_SERVICES") != "1":
        chosen = tuple(k for k in chosen if k != "disk_full")  # a tmpfs mount needs root (CI is root)
    return chosen


SCHEDULES = [draw(seed, kinds=kinds()) for seed in seeds_to_run(range(BASE, BASE + COUNT))]
print(f"fault schedules: seeds {SCHEDULES[0].seed}..{SCHEDULES[-1].seed}" if SCHEDULES else "no fault schedules")


def name(schedule) -> str:
    return f"seed{schedule.seed}-{schedule.mapping}-" + ("+".join(sorted(set(schedule.kinds()))) or "none")


@pytest.fixture(scope="module")
def played(tmp_path_factory):
    """Every schedule handed to the lanes at once; a test waits for its own."""
    binary = redis_binary()
    if any(s.mapping.endswith("_redis") for s in SCHEDULES):
        require(binary is not None, "redis-server")
    if any("disk_full" in s.kinds() for s in SCHEDULES):
        require(SmallDisk.possible(), "root (the disk_full schedules mount a tmpfs)")
    lanes = Lanes(tmp_path_factory.mktemp("faults"), LANES)
    futures = {s.seed: lanes.submit(s) for s in SCHEDULES}
    yield futures
    lanes.close()


@pytest.mark.parametrize("schedule", SCHEDULES, ids=name)
def test_no_fault_ends_a_run_ok_with_a_wrong_result(schedule, played):
    outcome = played[schedule.seed].result(timeout=600)
    assert outcome.holds, outcome.report()
    assert outcome.result in ("exact", "resumed-exact", "refused")
    if outcome.result == "refused":  # a refusal is one line that says why, never a wrong answer
        assert outcome.problem and "Traceback" not in outcome.problem


def test_the_bench_plays_schedules_and_writes_the_table(tmp_path):
    """experiments/bench/faults.py, as the README's Reliability section runs it, on two cheap schedules."""
    import subprocess
    import sys

    from conftest import ROOT

    bench = ROOT / "experiments" / "bench" / "faults.py"
    args = ["--schedules", "2", "--seed", "7", "--kinds", "signal,kill_launcher", "--mappings", "multi"]
    out = subprocess.run(
        [sys.executable, str(bench), *args, "--output", str(tmp_path)], capture_output=True, text=True, timeout=240
    )
    assert out.returncode == 0, out.stdout + out.stderr
    table = (tmp_path / "faults.md").read_text()
    assert table.startswith("2 schedules in ") and "| all | 2 |" in table
    rows = [json.loads(line) for line in (tmp_path / "faults.jsonl").read_text().splitlines()]
    assert [r["seed"] for r in rows] == [7, 8] and all(r["result"] in ("exact", "resumed-exact") for r in rows)
