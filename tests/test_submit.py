"""`hpcflow submit` and `hpcflow run --cpus` against the allocation, from the command line.

Submission is checked with stand-in `sbatch`/`qsub` commands on PATH that record what
they were given; the real local SLURM is in test_slurm_integration.py."""

import json
import os
import shlex
from pathlib import Path

import pytest

from hpcflow.batch.allocation import detect_allocation
from hpcflow.cli import check_cpus
from hpcflow.errors import UsageError

CONFIG = "workflow: pipeline\nmapping: simple\ncpus: 4\nparams: {items: 20}\nbatch: {walltime: '00:05:00'}\n"


def fake_scheduler(tmp_path: Path, command: str, stdout: str, status: int = 0, stderr: str = "") -> dict:
    """A `command` on PATH that saves its arguments and script and answers like the real one."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / command
    tool.write_text(
        "#!/bin/bash\n"
        f'echo "$@" > {tmp_path}/{command}.args\n'
        f'cp "${{@: -1}}" {tmp_path}/{command}.script\n'
        f"echo {shlex.quote(stderr)} >&2\n"
        f"echo {shlex.quote(stdout)}\n"
        f"exit {status}\n"
    )
    tool.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def no_scheduler(tmp_path: Path) -> dict:
    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    return {"PATH": str(empty)}


def assert_usage_error(done, *words: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.startswith("hpcflow: error: ") and done.stderr.count("\n") == 1, done.stderr
    for word in words:
        assert word in done.stderr


# -- dry run -------------------------------------------------------------------------


def test_dry_run_prints_the_slurm_script_and_creates_nothing(cli, tmp_path):
    done = cli(
        "submit",
        "pipeline",
        "--cpus",
        "4",
        "--mapping",
        "simple",
        "-p",
        "items=20",
        "--dry-run",
        "--scheduler",
        "slurm",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("#!/bin/bash\n#SBATCH ")
    assert "#SBATCH --cpus-per-task=4" in done.stdout
    assert f"--run-dir {tmp_path}/runs/" in done.stdout and "-pipeline-simple -p items=20" in done.stdout
    assert not (tmp_path / "runs").exists()


def test_dry_run_prints_the_pbs_script(cli):
    done = cli("submit", "pipeline", "--cpus", "8", "--mapping", "simple", "--dry-run", "--scheduler", "pbs")
    assert done.returncode == 0, done.stderr
    assert "#PBS -l select=1:ncpus=8:mpiprocs=1" in done.stdout


def test_scheduler_found_on_path(cli, tmp_path):
    env = fake_scheduler(tmp_path, "qsub", "1.pbs")
    env["PATH"] = env["PATH"].split(os.pathsep)[0]  # qsub and nothing else
    done = cli("submit", "pipeline", "--cpus", "2", "--mapping", "simple", "--dry-run", env=env)
    assert done.returncode == 0, done.stderr
    assert "#PBS " in done.stdout


def test_without_workflow_the_default_config_of_the_current_directory(cli, tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "default.yaml").write_text(CONFIG)
    done = cli("submit", "--dry-run", "--scheduler", "slurm")
    assert done.returncode == 0, done.stderr
    assert "#SBATCH --cpus-per-task=4" in done.stdout and "#SBATCH --time=00:05:00" in done.stdout
    assert "run pipeline --mapping simple --cpus 4" in done.stdout and "-p items=20" in done.stdout
    flags = cli("submit", "--cpus", "2", "-p", "items=7", "--walltime", "00:01:00", "--dry-run", "--scheduler", "slurm")
    assert "#SBATCH --cpus-per-task=2" in flags.stdout and "#SBATCH --time=00:01:00" in flags.stdout
    assert "-p items=7" in flags.stdout and "items=20" not in flags.stdout


def test_config_file_option(cli, tmp_path):
    (tmp_path / "mine.yaml").write_text(CONFIG.replace("cpus: 4", "cpus: 6"))
    done = cli("submit", "--config", "mine.yaml", "--dry-run", "--scheduler", "pbs")
    assert done.returncode == 0, done.stderr
    assert "ncpus=6" in done.stdout


def test_oversubscribe_is_passed_on_to_run(cli):
    done = cli(
        "submit",
        "pipeline",
        "--cpus",
        "4",
        "--mapping",
        "simple",
        "--oversubscribe",
        "--dry-run",
        "--scheduler",
        "slurm",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("--oversubscribe")


# -- submission ----------------------------------------------------------------------


def test_submit_writes_the_script_into_the_run_dir_and_prints_job_id_then_run_dir(cli, tmp_path):
    env = fake_scheduler(tmp_path, "sbatch", "4242;cluster")
    done = cli("submit", "pipeline", "--cpus", "4", "--mapping", "simple", "--walltime", "00:02:00", env=env)
    assert done.returncode == 0, done.stderr
    job_id, run_dir = done.stdout.strip().splitlines()
    assert job_id == "4242"
    assert run_dir.startswith("runs/") and run_dir.endswith("-pipeline-simple")
    script = tmp_path / run_dir / "job.sh"
    assert script.read_text() == (tmp_path / "sbatch.script").read_text()
    assert "#SBATCH --time=00:02:00" in script.read_text()
    assert f"--run-dir {tmp_path / run_dir}" in script.read_text()
    assert (tmp_path / "sbatch.args").read_text().split() == ["--parsable", str(tmp_path / run_dir / "job.sh")]
    assert "slurm job 4242" in done.stderr


def test_submit_to_pbs_keeps_the_server_in_the_job_id(cli, tmp_path):
    env = fake_scheduler(tmp_path, "qsub", "77.pbs01")
    done = cli("submit", "pipeline", "--cpus", "4", "--mapping", "simple", "--scheduler", "pbs", env=env)
    assert done.returncode == 0, done.stderr
    job_id, run_dir = done.stdout.strip().splitlines()
    assert job_id == "77.pbs01"
    assert (tmp_path / run_dir / "job.pbs").is_file()


def test_submit_into_a_given_run_dir(cli, tmp_path):
    env = fake_scheduler(tmp_path, "sbatch", "5")
    done = cli("submit", "pipeline", "--cpus", "1", "--mapping", "simple", "--run-dir", "out/r1", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "out/r1"
    assert (tmp_path / "out" / "r1" / "job.sh").is_file()


def test_a_rejected_job_is_exit_2_with_the_schedulers_reason_and_leaves_no_run_dir(cli, tmp_path):
    env = fake_scheduler(tmp_path, "sbatch", "", status=1, stderr="sbatch: error: invalid partition specified: gpu")
    done = cli("submit", "pipeline", "--cpus", "4", "--mapping", "simple", "--partition", "gpu", env=env)
    assert_usage_error(done, "sbatch rejected the job", "invalid partition specified: gpu")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# -- bad input -----------------------------------------------------------------------

BASE = ("--dry-run", "--scheduler", "slurm")


@pytest.mark.parametrize(
    "args, words",
    [
        (("pipeline", "--cpus", "4", "--mapping", "nope", *BASE), ["unknown mapping 'nope'"]),
        (("nosuchflow", "--cpus", "4", "--mapping", "simple", *BASE), ["unknown workflow 'nosuchflow'"]),
        (("pipeline", "--cpus", "4", "--mapping", "simple", "-p", "size=3", *BASE), ["has no parameter 'size'"]),
        (("pipeline", "--cpus", "4", "--mapping", "simple", "-p", "items", *BASE), ["not key=value"]),
        (("pipeline", "--mapping", "simple", *BASE), ["needs --mapping and --cpus"]),
        (("pipeline", "--cpus", "4", *BASE), ["needs --mapping and --cpus"]),
        (("pipeline", "--cpus", "0", "--mapping", "simple", *BASE), ["must be at least 1, got 0"]),
        (("pipeline", "--cpus", "64", "--nodes", "2", "--mapping", "simple", *BASE), ["needs a *_redis mapping"]),
        (("pipeline", "--cpus", "4", "--mapping", "simple", "--walltime", "2h", *BASE), ["not HH:MM:SS"]),
        (("pipeline", "--cpus", "4", "--mapping", "simple", "--mem", "much", *BASE), ["not a size"]),
        (("pipeline", "--cpus", "4", "--mapping", "simple", "--scheduler", "lsf"), ["'lsf' is not one of"]),
        (("pipeline", "--cpus", "four", "--mapping", "simple", *BASE), ["'four' is not a valid integer"]),
        (("--cpus", "4", "--mapping", "simple", *BASE), ["no WORKFLOW given", "configs/default.yaml"]),
        (("--config", "missing.yaml", *BASE), ["missing.yaml", "cannot read it"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, args, words):
    assert_usage_error(cli("submit", *args), *words)


def test_no_scheduler_on_path_is_exit_2(cli, tmp_path):
    done = cli("submit", "pipeline", "--cpus", "4", "--mapping", "simple", "--dry-run", env=no_scheduler(tmp_path))
    assert_usage_error(done, "no batch scheduler found", "--scheduler")


def test_config_key_typo_is_exit_2(cli, tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "default.yaml").write_text("workflow: pipeline\ncpu: 4\n")
    assert_usage_error(cli("submit", *BASE), "unknown key cpu")


# -- run: --cpus against the allocation ------------------------------------------------

SLURM_4 = {"SLURM_JOB_ID": "9", "SLURM_CPUS_ON_NODE": "4", "SLURM_JOB_CPUS_PER_NODE": "4"}
RUN = ("run", "pipeline", "-p", "items=5", "--mapping", "simple", "--quiet")


def test_run_refuses_more_cpus_than_the_allocation(cli):
    done = cli(*RUN, "--cpus", "8", env=SLURM_4)
    assert_usage_error(done, "--cpus 8 is more than the 4 CPUs", "--oversubscribe")


def test_run_with_oversubscribe_accepts_more(cli, tmp_path):
    done = cli(*RUN, "--cpus", "8", "--oversubscribe", env=SLURM_4)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / done.stdout.strip().splitlines()[-1] / "metrics.json").is_file()


def test_oversubscribe_from_the_environment(cli):
    done = cli(*RUN, "--cpus", "8", env={**SLURM_4, "HPCFLOW_OVERSUBSCRIBE": "1"})
    assert done.returncode == 0, done.stderr


def test_run_cpus_default_to_the_allocation(cli, tmp_path):
    done = cli("run", "pipeline", "-p", "items=5", "--mapping", "simple", "--quiet", env=SLURM_4)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / done.stdout.strip().splitlines()[-1] / "metrics.json").read_text())
    assert metrics["allocation"]["cpus"] == 4 and metrics["allocation"]["scheduler"] == "slurm"


def test_a_redis_or_mpi_run_may_use_every_node_of_the_job():
    alloc = detect_allocation({"SLURM_JOB_ID": "9", "SLURM_CPUS_ON_NODE": "4", "SLURM_JOB_CPUS_PER_NODE": "4(x2)"})
    check_cpus(8, "dyn_redis", False, alloc)
    check_cpus(8, "mpi", False, alloc)
    check_cpus(None, "dyn_multi", False, alloc)
    with pytest.raises(UsageError, match="more than the 8 CPUs"):
        check_cpus(9, "dyn_auto_redis", False, alloc)
    with pytest.raises(UsageError, match="more than the 4 CPUs"):
        check_cpus(8, "dyn_multi", False, alloc)


def test_the_python_api_does_not_enforce_the_allocation(monkeypatch):
    from hpcflow import run
    from hpcflow.workflows import load_workflow

    monkeypatch.setenv("SLURM_JOB_ID", "9")
    monkeypatch.setenv("SLURM_CPUS_ON_NODE", "1")
    wf = load_workflow("pipeline", {"items": 5})
    result = run(wf.graph, wf.inputs, mapping="simple", processes=64)
    assert result.metrics.allocation["cpus"] == 1


@pytest.mark.parametrize(
    "mapping, cpus, warned",
    [
        ("dyn_redis", 6, None),
        ("hybrid_redis", 6, "runs 5 processes (4 pinned instance(s) and 1 pool worker(s)) on its 2 CPUs"),
        ("hybrid_redis", 15, None),
    ],
)
def test_several_nodes_the_launcher_starts_only_its_share_of_the_pool(cli, tmp_path, mapping, cpus, warned):
    """--nodes 3: each further node starts a node's CPUs in workers (--cpus), and the job
    script tells the launcher how many join so, which its plan counts: no node runs more
    processes than its CPUs, or submit says so (the stateful pipeline pins 4 instances on
    the first node)."""
    stateful = ("-p", "stateful=true") if mapping.startswith("hybrid") else ()
    done = cli(
        "submit", "pipeline", "--mapping", mapping, "--nodes", "3", "--cpus", str(cpus), *stateful,
        "--redis-url", "auto", "--scheduler", "slurm", "--dry-run", env=no_scheduler(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    per_node = cpus // 3
    assert f"\nexport HPCFLOW_JOINING_WORKERS={2 * per_node}\n" in done.stdout
    (srun,) = [line for line in done.stdout.splitlines() if line.startswith("srun ")]
    assert srun.endswith(f" --cpus {per_node} &"), srun
    first = [line for line in done.stderr.splitlines() if "the first node" in line]
    assert first == ([f"hpcflow: warning: the first node {warned}; --cpus 15 gives each node 5"] if warned else [])
