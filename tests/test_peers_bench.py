"""The peers benchmark (experiments/bench/peers.py) gives every system the same work and
judges each by one independent answer: the expected results must be what hpcflow's
reference mapping computes, every runner must reach them, and the command must print and
write its table. Timings are the benchmark's business, not the tests'."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from importlib.util import find_spec

import pytest

from hpcflow import run
from tests.conftest import ROOT

BENCH = ROOT / "experiments" / "bench"


@pytest.fixture
def bench(monkeypatch):
    """The benchmark's modules, imported as peers.py imports them (from its directory)."""
    monkeypatch.syspath_prepend(str(BENCH))
    import peer_systems
    import peer_workloads
    import peers

    return peer_workloads, peer_systems, peers


def small(bench, name: str, items: int = 24):
    """A workload of the benchmark at a test's size: few items, no sleeps or pauses."""
    peer_workloads = bench[0]
    w = next(w for w in peer_workloads.workloads(quick=True) if w.name == name)
    return replace(w, items=items, latency=0.0, pause=0.0, processes=min(w.processes, 8))


@pytest.mark.parametrize("name", ["tiny", "latency", "bursty", "stateful"])
def test_the_expected_result_is_what_simple_computes(bench, name):
    w = small(bench, name)
    graph, inputs = w.hpcflow_graph()
    outputs = run(graph, inputs, "simple").outputs
    flat = [x for ports in outputs.values() for items in ports.values() for x in items]
    assert bench[0].result_of(w, flat) == w.expected()
    assert len(flat) == (1 if w.stateful else w.items)


def test_bursts_hold_every_item_once_in_order(bench):
    w = small(bench, "bursty", items=10)
    batches = w.batches()
    assert [len(b) for b in batches] == [4, 4, 2]
    assert [x for b in batches for x in b] == w.source_items()


@pytest.mark.parametrize("system", ["pool-c1", "pool-c100", "hpcflow dyn_multi"])
@pytest.mark.parametrize("name", ["tiny", "stateful"])
def test_runners_reach_the_expected_result(bench, system, name):
    peer_workloads, peer_systems, peers = bench
    w = small(bench, name)
    if name == "stateful" and system.startswith("hpcflow"):
        system = "hpcflow hybrid_multi"
    record = peers.child(system, w)
    assert record["ok"], record
    assert record["runtime_s"] > 0 and record["process_time_s"] > 0


@pytest.mark.parametrize("name", ["tiny", "stateful"])
def test_dispel4py_multi_runs_the_same_graph(bench, name):
    if find_spec("dispel4py") is None:
        pytest.skip("dispel4py (the optional `bench` extra) is not installed")
    record = bench[2].child("dispel4py-multi", small(bench, name))
    assert record["ok"], record
    # dispel4py's own split of 8 processes: the source 1, the rest evenly over the PEs by
    # their numprocesses (3 stages: 2 each, one left over; the stateful graph: all 8)
    assert record["processes"] == {"tiny": 7, "stateful": 8}[name]


def test_a_missing_peer_is_a_row_not_a_crash(bench, monkeypatch):
    peers = bench[2]
    w = small(bench, "tiny")
    monkeypatch.setattr(peers, "find_spec", lambda name: None)
    row = peers.summarise(w, "ray", [])
    assert row["status"] == "not installed"
    assert "| ray | | | | | | not installed |" in peers.table(w, [row], 1)


def test_the_command_prints_and_writes_its_tables(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(BENCH / "peers.py"), "--workloads", "tiny,stateful", "--items", "40"]
        + ["--systems", "hpcflow,pool-c1,pool-c100", "--repeats", "1", "--output", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    assert "hpcflow against the fastest peer" in proc.stdout
    record = json.loads((tmp_path / "peers.json").read_text())
    assert {r["workload"] for r in record["ratios"]} == {"tiny", "stateful"}
    assert all(r["best_peer"] in ("pool-c1", "pool-c100") for r in record["ratios"])
    assert all(run["ok"] for run in record["runs"]) and len(record["runs"]) == 8
    assert "| hpcflow hybrid_multi |" in (tmp_path / "peers.md").read_text()
    assert (tmp_path / "peers.csv").read_text().startswith("workload,system,processes")


def test_efficiency_is_the_injected_sleep_over_processes_times_runtime(bench):
    peers = bench[2]
    w = next(w for w in bench[0].workloads(quick=True) if w.name == "latency")
    draws = sum(
        bench[0].pipeline.beta_latency(w.latency, 0, 0, s, i + s) for s in range(w.stages) for i in range(w.items)
    )
    assert w.work_s == pytest.approx(draws)
    assert 0.5 * w.items * w.stages * w.latency < draws < 2 * w.items * w.stages * w.latency
    run = {"ok": True, "runtime_s": 2.0, "process_time_s": 1.0, "startup_s": 0.0}
    row = peers.summarise(w, "pool-c1", [run])
    assert row["efficiency"] == pytest.approx(draws / (w.processes * 2.0))
    assert peers.summarise(replace(w, latency=0.0), "pool-c1", [run])["efficiency"] is None
