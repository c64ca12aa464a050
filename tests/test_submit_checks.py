"""`hpcflow submit` refuses what cannot run before anything is queued (the checks of
`hpcflow run`, on its code path, and the partition's limits), and `hpcflow status` says
why a job waits and reports one that ended before its run started as failed.

The scheduler parts run against the local SLURM (scripts/local-slurm.sh); the words for
squeue's reasons and the parsing of sacct are also checked on recorded answers."""

from __future__ import annotations

import subprocess
import textwrap
import time

import pytest
from test_slurm_integration import FINISHED, slurm, submitted, wait_for_state  # noqa: F401 (a fixture)
from test_submit import fake_scheduler

from hpcflow.batch.jobinfo import NOT_LISTED, UNKNOWN, JobInfo, slurm_job
from hpcflow.batch.limits import Partition, check_request, slurm_partition, slurm_time_s
from hpcflow.batch.submit import make_job
from hpcflow.config import BatchConfig

pytestmark = pytest.mark.timeout(300)


# -- the same checks as `run` --------------------------------------------------------


def test_submit_refuses_a_plan_that_cannot_run_in_runs_own_words_and_queues_nothing(cli, tmp_path):
    args = ("sentiment", "--cpus", "2", "--mapping", "hybrid_multi")
    env = fake_scheduler(tmp_path, "sbatch", "99")
    done = cli("submit", *args, "--scheduler", "slurm", env=env)
    assert not (tmp_path / "sbatch.args").exists()  # sbatch never called
    assert not (tmp_path / "runs").exists()
    ran = cli("run", *args, "--oversubscribe")
    assert done.returncode == ran.returncode == 2, done.stderr
    assert done.stderr == ran.stderr and done.stderr.count("\n") == 1, done.stderr
    assert "mapping hybrid_multi needs at least 12 processes" in done.stderr


def test_submit_refuses_a_parameter_the_workflow_cannot_take(cli, tmp_path):
    env = fake_scheduler(tmp_path, "sbatch", "99")
    args = ("pipeline", "--cpus", "4", "--mapping", "dyn_multi", "-p", "latency=fast", "--scheduler", "slurm")
    done = cli("submit", *args, env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr == "hpcflow: error: -p latency=fast: latency takes a number of seconds >= 0\n"
    assert not (tmp_path / "sbatch.args").exists()


# -- the partition's limits ------------------------------------------------------------

PARTITION = Partition("short", "UP", nodes=3, max_nodes=2, max_time_s=3600, node_cpus=8)


def job(tmp_path, cpus=4, nodes=1, walltime=None):
    batch = BatchConfig(walltime=walltime)
    mapping, url = ("dyn_redis", "redis://h:6379") if nodes > 1 else ("dyn_multi", None)
    return make_job(
        workflow="pipeline", mapping=mapping, cpus=cpus, nodes=nodes, run_dir=tmp_path, batch=batch, redis_url=url
    )


def test_a_request_within_the_limits_passes(tmp_path):
    assert check_request(job(tmp_path, cpus=16, nodes=2, walltime="01:00:00"), PARTITION) == ([], [])


@pytest.mark.parametrize(
    "kw, words",
    [
        ({"cpus": 9}, "--cpus 9 is more than the 8 CPUs of any node of partition short"),
        ({"cpus": 18, "nodes": 2}, "9 CPUs a node is more than the 8 CPUs"),
        ({"cpus": 3, "nodes": 3}, "--nodes 3 is more than the 2 node(s) a job may have in partition short"),
        ({"walltime": "02:00:00"}, "--walltime 02:00:00 is longer than the partition short's MaxTime (3600 s)"),
    ],
)
def test_a_request_the_partition_can_never_run_is_named(tmp_path, kw, words):
    never, _ = check_request(job(tmp_path, **kw), PARTITION)
    assert len(never) == 1 and words in never[0], never


def test_a_partition_that_is_down_is_a_warning(tmp_path):
    down = Partition("short", "DOWN", nodes=3, max_nodes=None, max_time_s=None, node_cpus=8)
    assert check_request(job(tmp_path), down) == ([], ["partition short is DOWN: the job waits until it is UP"])


@pytest.mark.parametrize(
    "text, seconds", [("UNLIMITED", None), ("30", 1800), ("10:00", 600), ("02:00:00", 7200), ("1-00:00:00", 86400)]
)
def test_slurm_time_limits(text, seconds):
    assert slurm_time_s(text) == seconds


def test_the_default_partition_of_the_local_slurm(slurm):  # noqa: F811
    part = slurm_partition(None)
    assert part is not None and part.state == "UP" and part.node_cpus >= 1 and part.nodes >= 1


def test_submit_refuses_more_cpus_than_any_node_has_and_dry_run_warns(slurm, cli):  # noqa: F811
    part = slurm_partition(None)
    args = ("pipeline", "--cpus", str(part.node_cpus + 1), "--mapping", "dyn_multi", "--scheduler", "slurm")
    done = cli("submit", *args)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"more than the {part.node_cpus} CPUs of any node of partition {part.name}" in done.stderr
    assert "PENDING (PartitionConfig) for good" in done.stderr and done.stdout == ""
    dry = cli("submit", *args, "--dry-run")
    assert dry.returncode == 0 and dry.stdout.startswith("#!/bin/bash")
    assert dry.stderr.startswith("hpcflow: warning: --cpus "), dry.stderr


# -- status: why a job waits, and a job that ended before its run -------------------------


def answers(**by_command):
    """A stand-in for subprocess.run: the recorded output of each command (by its name)."""

    def run(command, **kw):
        out = by_command.get(command[0])
        return subprocess.CompletedProcess(command, 1 if out is None else 0, out or "", "")

    return run


def test_a_pending_jobs_reason_is_said_in_words():
    info = slurm_job("12", run=answers(squeue="PENDING|PartitionConfig\n"))
    assert info.waiting and not info.over
    assert info.describe() == (
        "slurm job 12: PENDING (PartitionConfig: it asks for more than its partition has (CPUs a node, nodes, "
        "memory): it will never start: scancel it and submit again with a smaller request)"
    )
    limit = slurm_job("12", run=answers(squeue="PENDING|QOSMaxCpuPerUserLimit\n")).describe()
    assert "a limit of your account or QOS is reached" in limit
    assert slurm_job("12", run=answers(squeue="RUNNING|JobHeldUser\n")).describe() == "slurm job 12: RUNNING"


def test_an_ended_job_is_read_from_sacct_then_scontrol():
    ended = slurm_job("12", run=answers(squeue="", sacct="CANCELLED by 0|0:15|None\n"))
    assert ended == JobInfo("slurm", "12", "CANCELLED", "None", "0:15") and ended.over
    assert ended.describe() == "slurm job 12: CANCELLED, exit code 0:15"
    shown = "JobId=12 JobName=x JobState=FAILED Reason=NonZeroExitCode Dependency=(null) ExitCode=2:0\n"
    failed = slurm_job("12", run=answers(squeue="", scontrol=shown))
    assert failed.describe() == "slurm job 12: FAILED, exit code 2:0 (NonZeroExitCode)"
    assert slurm_job("12", run=answers(squeue="", sacct="", scontrol="")).state == NOT_LISTED
    assert slurm_job("12", run=answers()).state == UNKNOWN


FAILS_IN_THE_JOB = """
import os

from hpcflow.workflows.pipeline import build as pipeline


def build(items=5):
    if os.environ.get("SLURM_JOB_ID"):
        raise RuntimeError("no input data on this node")
    return pipeline(items=items)
"""


def test_status_reports_a_job_that_ended_before_its_run_as_failed(slurm, cli, tmp_path):  # noqa: F811
    (tmp_path / "flaky_wf.py").write_text(textwrap.dedent(FAILS_IN_THE_JOB))
    job_id, run_dir = submitted(cli("submit", "flaky_wf.py", "--cpus", "1", "--mapping", "simple"))
    assert wait_for_state(job_id, FINISHED) == "FAILED"
    shown = cli("status", run_dir)
    assert shown.returncode == 1, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"slurm job {job_id}: FAILED, exit code 2:0"), lines  # (sacct gives no reason)
    assert lines[1] == "failed: the job ended before its run wrote status.json"
    assert lines[2] == "  job.out ends with:"
    assert lines[-1].startswith("  | hpcflow: error: ") and "RuntimeError: no input data on this node" in lines[-1]


def test_status_says_why_a_job_waits(slurm, cli, tmp_path):  # noqa: F811
    args = ("pipeline", "--cpus", "1", "--mapping", "simple", "-p", "items=2000", "-p", "latency=0.01")
    job_id, run_dir = submitted(cli("submit", *args))
    try:  # held while it waits, or, if it started at once, put back in the queue held
        subprocess.run(["scontrol", "uhold", job_id], timeout=60)
        if wait_for_state(job_id, {"PENDING", "RUNNING"}) == "RUNNING":
            subprocess.run(["scontrol", "requeuehold", job_id], check=True, timeout=60)
        deadline = time.monotonic() + 60
        while not (shown := cli("status", run_dir)).stdout.startswith(f"slurm job {job_id}: PENDING ("):
            assert time.monotonic() < deadline, shown.stdout
            time.sleep(1)
        lines = shown.stdout.splitlines()
        held = (
            "(JobHeldUser: held by its user: `scontrol release JOBID` lets it start)",
            "(job requeued in held state: requeued and held: `scontrol release JOBID` lets it start again)",
        )
        assert shown.returncode == 0 and lines[0].endswith(held), lines
        if len(lines) == 2:  # never started
            assert lines[1] == "waiting in the queue: the run has not started"
        else:  # the attempt that ran before the requeue stopped: what it did, then the job waiting
            assert lines[1].startswith(("interrupted pipeline on simple", "running pipeline on simple")), lines
    finally:
        subprocess.run(["scancel", job_id], timeout=60)
