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
import time
import uuid
from pathlib import Path

import pytest

from hpcflow.batch.hostlist import expand_hostlist
from hpcflow.cli import parse_params
from hpcflow.mappings import get_mapping
from hpcflow.plan import make_plan, own_pool
from hpcflow.progress import read_status
from hpcflow.workflows import load_workflow
from tests import netns
from tests.conftest import ROOT, require, run_cli
from tests.test_slurm_integration import (
    FINISHED,
    attempts_of,
    hpcflow_env,
    job_field,
    slurm_running,
    submitted,
    wait_for_state,
)

PARTITION, NODES = "nodes", 3
NODE_DAEMONS = {"slurmd"}  # what runs in a node's namespace when no job does
WAIT_S = 120
HEARTBEAT_EXPIRY_S = 15  # past the workers' heartbeat TTL (10 s) and a check: a cut node is written off
pytestmark = pytest.mark.timeout(600)


def usable_nodes() -> list[str]:
    done = subprocess.run(
        ["sinfo", "-h", "-N", "-p", PARTITION, "-o", "%N %T"], capture_output=True, text=True, timeout=60
    )
    rows = [line.split() for line in done.stdout.splitlines()]
    usable = ("idle", "mixed", "allocated", "completing")
    return sorted(n for n, state in rows if state.startswith(usable) and not state.endswith("*"))  # *: no answer


@pytest.fixture(scope="module")
def nodes():
    reason = netns.unavailable()
    require(reason is None, reason or "")
    require(slurm_running(), "a running SLURM (start one with scripts/local-slurm.sh)")
    found = usable_nodes()
    up = f"HPCFLOW_SLURM_NODES={NODES} bash scripts/local-slurm.sh"
    require(len(found) >= NODES, f"a SLURM partition `{PARTITION}` of {NODES} usable nodes ({up})")
    return found


@pytest.fixture(scope="module")
def expected(tmp_path_factory):
    """`simple`'s outputs, by workload: what every run here must give (the latency, which
    changes no output, left out: `simple` runs one item at a time)."""
    cache: dict[tuple, list[str]] = {}

    def outputs(params: tuple[str, ...]) -> list[str]:
        if params not in cache:
            where = tmp_path_factory.mktemp("reference")
            pairs = zip(params[::2], params[1::2], strict=True)
            args = [a for flag, value in pairs if not value.startswith("latency=") for a in (flag, value)]
            done = run_cli("run", "pipeline", "--mapping", "simple", *args, "-q", "--run-dir", "ref", cwd=where)
            assert done.returncode == 0, done.stderr
            cache[params] = sorted((where / "ref" / "outputs.jsonl").read_text().splitlines())
        return cache[params]

    return outputs


def work(mapping: str, items: int = 300, latency: float = 0.1) -> tuple[str, ...]:
    """The pipeline's parameters: 300 items take about 10 s on 3 nodes; on hybrid_redis
    it ends in a count by key and a total (stateful PEs, pinned on the launcher's node)."""
    params = ("-p", f"items={items}", "-p", f"latency={latency}")
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


def submit(cli, mapping: str, work: tuple[str, ...], *more: str, nodes: int = NODES, cpus: int = 2) -> tuple[str, str]:
    """`hpcflow submit` over `nodes` nodes of the partition, `cpus` CPUs each: (job id, run directory)."""
    args = ("--nodes", str(nodes), "--cpus", str(cpus * nodes), "--partition", PARTITION, "--redis-url", "auto")
    return submitted(cli("submit", "pipeline", "--mapping", mapping, *args, *work, *more))


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
    job_id, run_dir = submit(cli, mapping, work(mapping), "--walltime", "00:05:00")
    run = tmp_path / run_dir
    state = wait_for_state(job_id, FINISHED)
    assert state == "COMPLETED", (run / "job.out").read_text()
    assert outputs_of(run) == expected(work(mapping))
    metrics = json.loads((run / "metrics.json").read_text())
    allocation = metrics["allocation"]
    assert allocation["nodes"] == NODES and len(allocation["nodelist"]) == NODES
    assert set(metrics["worker_hosts"]) == set(allocation["nodelist"]), metrics["worker_hosts"]
    # the plan counts the workers that join (2 a further node): its 6 processes, the launcher's
    # node running the pinned instances and the rest of the pool, at least one worker
    launcher = metrics["host"]
    assert all(n == 2 for host, n in metrics["worker_hosts"].items() if host != launcher), metrics["worker_hosts"]
    plan = make_plan(
        load_workflow("pipeline", parse_params(work(mapping)[1::2])).graph, get_mapping(mapping).plan_kind, 6
    )
    assert metrics["worker_hosts"][launcher] == len(plan.pinned) + own_pool(plan, joining=4)
    assert metrics["processes"] == 6
    shown = ", ".join(f"{host} {n}" for host, n in metrics["worker_hosts"].items())
    assert f"<td>workers by host</td><td>{shown}</td>" in (run / "report.html").read_text()
    assert metrics["workers_joined"] >= NODES - 1
    assert_nothing_left(nodes)


def sbatch_wait(script: list[str], tmp_path: Path, *options: str) -> str:
    """`sbatch --wait` in the partition, in `tmp_path`: job.out's text once the job is over."""
    name = f"hpcflow-test-{uuid.uuid4().hex[:8]}"
    command = ["sbatch", "--wait", f"--partition={PARTITION}", f"--job-name={name}", f"--chdir={tmp_path}"]
    command += [f"--output={tmp_path}/job.out", *options, *script]
    try:
        done = subprocess.run(command, env=hpcflow_env(tmp_path), capture_output=True, text=True, timeout=2 * WAIT_S)
    except subprocess.TimeoutExpired:
        subprocess.run(["scancel", f"--name={name}"], timeout=60)
        pytest.fail(f"{' '.join(command)} did not finish in {2 * WAIT_S} s: cancelled")
    log = (tmp_path / "job.out").read_text() if (tmp_path / "job.out").exists() else ""
    assert done.returncode == 0, done.stderr + log
    return log


def test_an_mpi_job_over_2_nodes_under_srun_pmi2_is_exact(nodes, tmp_path, expected):
    """jobscripts/pipeline_mpi_2nodes.sh as a user would sbatch it: 6 ranks, 3 a node."""
    sbatch_wait([str(ROOT / "jobscripts" / "pipeline_mpi_2nodes.sh")], tmp_path)
    (run,) = (tmp_path / "runs").glob("*-pipeline-mpi")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["ranks"] == 6
    assert metrics["allocation"]["nodes"] == 2
    assert metrics["worker_hosts"] == {node: 3 for node in metrics["allocation"]["nodelist"]}
    assert outputs_of(run) == expected(("-p", "stateful=true", "-p", "stages=2"))
    assert_nothing_left(nodes)


def test_elastic_worker_jobs_join_from_other_nodes_than_the_launchers(nodes, tmp_path, expected):
    """The launcher has a node to itself (--exclusive): the worker jobs it submits to the
    partition run on the other nodes and join through the node's address."""
    elastic = {"max_jobs": 2, "cpus_per_job": 2, "min_backlog_s": 2, "idle_s": 10, "walltime": "00:05:00"}
    (tmp_path / "elastic.yaml").write_text(json.dumps({"elastic": elastic, "batch": {"partition": PARTITION}}))
    params = work("dyn_redis")
    launcher = ["hpcflow", "run", "pipeline", "--mapping", "dyn_redis", "--cpus", "2", "-q", *params]
    launcher += ["--run-dir", "runs/elastic", "--elastic", "--config", "elastic.yaml"]
    sbatch_wait(["--wrap", "exec " + " ".join(launcher)], tmp_path, "--nodes=1", "--exclusive")
    run = tmp_path / "runs" / "elastic"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "ok"
    assert outputs_of(run) == expected(params)
    home = metrics["host"]
    jobs = metrics["elastic"]["job_ids"]
    assert metrics["elastic"]["jobs_started"] >= 1
    placed = {job_id: job_field(job_id, "NodeList") for job_id in jobs}
    started = {job_id: where for job_id, where in placed.items() if where not in (None, "(null)")}
    assert started and all(home not in where for where in started.values()), (home, placed)
    assert set(metrics["worker_hosts"]) - {home}, metrics["worker_hosts"]  # workers joined from elsewhere
    assert metrics["workers_joined"] >= 2
    assert_nothing_left(nodes)


# -- faults ------------------------------------------------------------------------------
def started_on_3_nodes(cli, tmp_path: Path, items: int = 600) -> tuple[str, Path, str]:
    """A dyn_redis run over the 3 nodes, once its workers are on all of them: (job id, run
    directory, a node other than the launcher's)."""
    job_id, run_dir = submit(cli, "dyn_redis", work("dyn_redis", items), "--walltime", "00:05:00")
    run = tmp_path / run_dir
    hosts = wait_for_hosts(job_id, run, NODES)
    shown = run_cli("status", str(run)).stdout  # says where the workers are
    assert "\n  workers by host: " in shown and all(host in shown for host in hosts), shown
    launcher = read_status(run).host
    return job_id, run, sorted(host for host in hosts if host != launcher)[-1]


def test_a_node_whose_link_is_cut_mid_run_is_survived_exactly(nodes, cli, tmp_path, expected):
    """Its workers stop heart-beating: the run writes them off and gives their items to the
    others; the node, out of reach past the heartbeat, stops its workers and ends its step
    with exit 1 (it cannot tell how the run went); the job ends with the run, exact."""
    job_id, run, node = started_on_3_nodes(cli, tmp_path, items=900)
    try:
        netns.ip("-n", node, "link", "set", "eth0", "down")
        time.sleep(HEARTBEAT_EXPIRY_S)
    finally:
        netns.ip("-n", node, "link", "set", "eth0", "up")
    assert wait_for_state(job_id, FINISHED) == "COMPLETED", (run / "job.out").read_text()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "ok"
    assert metrics["workers_replaced"] >= 1  # the cut node's workers were written off
    assert outputs_of(run) == expected(work("dyn_redis", 900))
    log = (run / "job.out").read_text()
    assert "Traceback" not in log, log
    # the cut node, written off, stopped its workers and ended its step with exit 1 (not "served")
    steps = subprocess.run(["sacct", "-n", "-P", "-j", f"{job_id}.0", "-o", "ExitCode"], capture_output=True, text=True)
    assert steps.stdout.split() == ["1:0"], steps.stdout + steps.stderr
    # the worker step's srun on the launcher's node may never hear of that exit (the link was
    # down): the job script ends it after the run (batch/shell.py), so nothing outlives the job
    assert_nothing_left(nodes)


def test_a_nodes_slurmd_killed_mid_run_leaves_the_run_exact(nodes, cli, tmp_path, expected):
    """The job's processes on that node run on without their slurmd; the run ends exactly.
    SLURM ends the job once the slurmd is back (scripts/local-slurm.sh starts it again)."""
    job_id, run, node = started_on_3_nodes(cli, tmp_path)
    try:
        os.kill(int(Path(f"/run/slurmd.{node}.pid").read_text()), signal.SIGKILL)
        deadline = time.monotonic() + 2 * WAIT_S
        while not (run / "metrics.json").exists() and time.monotonic() < deadline:
            time.sleep(1)
        metrics = json.loads((run / "metrics.json").read_text())
    finally:
        up = subprocess.run(
            ["bash", str(ROOT / "scripts" / "local-slurm.sh")],
            env={**os.environ, "HPCFLOW_SLURM_NODES": str(len(nodes))},
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"starting slurmd.{node}" in up.stdout
    assert metrics["status"] == "ok"
    assert outputs_of(run) == expected(work("dyn_redis", 600))
    assert wait_for_state(job_id, FINISHED) == "COMPLETED", (run / "job.out").read_text()
    assert_nothing_left(nodes)


def test_scancel_of_the_whole_job_stops_it_interrupted_on_every_node(nodes, cli, tmp_path):
    """SIGTERM to every step: the launcher stops with a checkpoint and writes its metrics
    (interrupted), the workers on the other nodes leave, nothing is left anywhere."""
    job_id, run, _ = started_on_3_nodes(cli, tmp_path, items=3000)
    subprocess.run(["scancel", job_id], check=True, timeout=60)
    assert wait_for_state(job_id, FINISHED) == "CANCELLED"
    deadline = time.monotonic() + WAIT_S
    while not (run / "metrics.json").exists() and time.monotonic() < deadline:
        time.sleep(1)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "interrupted"
    assert metrics["error"].startswith("stopped by SIGTERM"), metrics["error"]
    assert 0 < metrics["items"]["Source"] < 3000
    assert_nothing_left(nodes)


@pytest.mark.slow
def test_until_done_goes_on_across_attempts_of_2_nodes_with_the_exact_result(nodes, cli, tmp_path, expected):
    """A one-minute walltime and more work than one attempt can do however fast the
    machine (900 items x 3 stages x 0.25 s of sleep over at most 10 processes: 67 s and
    more) on hybrid_redis over 2 nodes of 5 CPUs (the 4 stateful and producing instances
    and a pool worker on the first, 5 workers on the second; a count by key carried in
    the checkpoints): each attempt has its workers on the second node, and the last one
    ends with what an uninterrupted run gives."""
    params = work("hybrid_redis", 900, latency=0.25)
    until_done = ("--walltime", "00:01:00", "--until-done", "--max-attempts", "10", "--checkpoint-interval", "10")
    first, run_dir = submit(cli, "hybrid_redis", params, *until_done, nodes=2, cpus=5)
    run = tmp_path / run_dir
    try:
        job_ids = attempts_of(run, first, timeout=600)
    finally:
        subprocess.run(["scancel", (run / "job_id").read_text().split()[1]], timeout=60)
    log = (run / "job.out").read_text()
    assert len(job_ids) > 1, log
    assert job_field(job_ids[-1], "JobState") == "COMPLETED", log
    assert [job_field(job_id, "NumNodes") for job_id in job_ids] == ["2"] * len(job_ids)
    assert f"attempt {len(job_ids)} of 10: the run is finished (exit 0)" in log
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["attempts"] == len(job_ids)
    assert outputs_of(run) == expected(params)
    assert_nothing_left(nodes)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_until_done_goes_on_after_a_node_failure_with_the_exact_result(nodes, cli, tmp_path, expected):
    """An attempt's second node fails (set DOWN, as slurmctld does with a node that stopped
    answering): the job ends NODE_FAIL, SLURM requeues it (--requeue), and the same job
    runs again as the next attempt, from the newest checkpoint; the chain ends exact."""
    params = work("hybrid_redis", 900, latency=0.25)
    until_done = ("--walltime", "00:01:00", "--until-done", "--max-attempts", "10", "--checkpoint-interval", "10")
    first, run_dir = submit(cli, "hybrid_redis", params, *until_done, nodes=2, cpus=5)
    run = tmp_path / run_dir
    failed = None
    try:
        wait_for_hosts(first, run, 2)
        job_id = (run / "job_id").read_text().split()[1]  # the attempt that runs now
        failed = next(n for n in expand_hostlist(job_field(job_id, "NodeList")) if n != job_field(job_id, "BatchHost"))
        subprocess.run(["scontrol", "update", f"NodeName={failed}", "State=DOWN", "Reason=hpcflow test"], check=True)
        deadline = time.monotonic() + 900
        while not finished_ok(run) and time.monotonic() < deadline:
            time.sleep(2)
    finally:
        if failed is not None:  # back in service (SLURM may have done so as its slurmd answered)
            subprocess.run(["scontrol", "update", f"NodeName={failed}", "State=RESUME"], capture_output=True)
        subprocess.run(["scancel", (run / "job_id").read_text().split()[1]], timeout=60)
    log = (run / "job.out").read_text()
    assert finished_ok(run), log
    runs = subprocess.run(
        ["sacct", "-D", "-X", "-n", "-P", "-j", job_id, "-o", "State"], capture_output=True, text=True
    )
    assert "NODE_FAIL" in runs.stdout.split(), runs.stdout  # that attempt's end; then the same job again
    assert "a node failed: the scheduler requeued this job; it runs again as attempt " in log
    attempts = int((run / "job_attempt").read_text())
    assert f"attempt {attempts} of 10: the run is finished (exit 0)" in log
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["attempts"] == attempts
    assert outputs_of(run) == expected(params)
    assert_nothing_left(nodes)


def finished_ok(run: Path) -> bool:
    """The run is finished, ok, and the job of its last attempt COMPLETED."""
    metrics = run / "metrics.json"
    if not metrics.exists() or json.loads(metrics.read_text())["status"] != "ok":
        return False
    return job_field((run / "job_id").read_text().split()[1], "JobState") == "COMPLETED"
