"""Job scripts as rendered for SLURM and PBS, on one node and on several."""

import shlex
import subprocess
import time
from pathlib import Path

import pytest

from hpcflow.batch import shell
from hpcflow.batch.jobspec import JobSpec
from hpcflow.batch.submit import make_job
from hpcflow.batch.templates import WARNING_S, render_pbs, render_slurm
from hpcflow.cli import parse_params
from hpcflow.config import BatchConfig
from hpcflow.errors import UsageError

RUN_DIR = Path("/work/runs/20250101T000000Z-galaxy-dyn_auto_multi")


def job(**kw) -> JobSpec:
    kw.setdefault("workflow", "galaxy")
    kw.setdefault("mapping", "dyn_auto_multi")
    kw.setdefault("cpus", 32)
    return make_job(run_dir=kw.pop("run_dir", RUN_DIR), workdir=Path("/work"), python="/venv/bin/python", **kw)


def redis_job(**kw) -> JobSpec:
    return job(mapping="dyn_redis", cpus=64, nodes=2, redis_url="redis://login1:6379", **kw)


def lines(script: str, prefix: str) -> list[str]:
    return [line[len(prefix) :].strip() for line in script.splitlines() if line.startswith(prefix)]


def check_bash_syntax(script: str) -> None:
    done = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# -- SLURM ---------------------------------------------------------------------------


def test_slurm_one_node_asks_for_the_cpus_and_the_early_signal():
    script = render_slurm(job())
    check_bash_syntax(script)
    assert script.startswith("#!/bin/bash\n")
    directives = lines(script, "#SBATCH")
    assert "--nodes=1" in directives
    assert "--ntasks-per-node=1" in directives
    assert "--cpus-per-task=32" in directives
    assert f"--signal=B:TERM@{WARNING_S}" in directives
    assert f"--output={RUN_DIR}/job.out" in directives
    assert not any(d.startswith(("--time", "--partition", "--account", "--mem")) for d in directives)
    assert "srun" not in script


def test_slurm_script_execs_the_launcher_last():
    script = render_slurm(job(params={"scale": 2}))
    last = script.rstrip("\n").splitlines()[-1]
    assert last.startswith("exec ")
    argv = shlex.split(last)[1:]
    assert argv == [
        "/venv/bin/python",
        "-m",
        "hpcflow",
        "run",
        "galaxy",
        "--mapping",
        "dyn_auto_multi",
        "--cpus",
        "32",
        "--run-dir",
        str(RUN_DIR),
        "-p",
        "scale=2",
    ]
    assert "cd /work" in script.splitlines()


def test_slurm_batch_settings_become_directives():
    batch = BatchConfig(partition="short", account="proj42", walltime="01:30:00", mem="8000", modules=("python/3.11",))
    script = render_slurm(job(batch=batch))
    directives = lines(script, "#SBATCH")
    assert {"--partition=short", "--account=proj42", "--time=01:30:00", "--mem=8000M"} <= set(directives)
    body = script.splitlines()
    assert body.index("module load python/3.11") < len(body) - 1


def test_slurm_several_nodes_start_one_worker_per_further_node_with_srun():
    script = render_slurm(redis_job())
    check_bash_syntax(script)
    directives = lines(script, "#SBATCH")
    assert "--nodes=2" in directives and "--cpus-per-task=32" in directives
    srun = [line for line in script.splitlines() if line.startswith("srun ")]
    assert len(srun) == 1 and srun[0].endswith(" &")
    argv = shlex.split(srun[0][:-2])
    assert argv[:6] == ["srun", "--relative=1", "--nodes=1", "--ntasks=1", "--ntasks-per-node=1", "--cpus-per-task=32"]
    assert argv[6:] == [
        "/venv/bin/python",
        "-m",
        "hpcflow",
        "worker",
        "--redis-url",
        "redis://login1:6379",
        "--run",
        RUN_DIR.name,
        "--cpus",
        "32",
    ]
    # the shell stays: hpcflow in the background, then the worker step is ended (shell.py)
    body = script.rstrip("\n").splitlines()
    assert body[-1] == 'exit "$status"' and "\nexec " not in script
    (launcher,) = [line for line in body if line.startswith("set -- ")]
    assert " hpcflow run galaxy " in launcher and "--redis-url redis://login1:6379" in launcher
    assert script.index("srun ") < script.index("set -- ") < script.index("workers_alive()")


def test_four_nodes_start_three_workers():
    script = render_slurm(job(mapping="hybrid_redis", cpus=128, nodes=4, redis_url="redis://h:1"))
    assert "srun --relative=1 --nodes=3 --ntasks=3" in script
    assert "--cpus-per-task=32" in lines(script, "#SBATCH")


# -- PBS -----------------------------------------------------------------------------


def test_pbs_one_node():
    batch = BatchConfig(partition="workq", account="proj42", walltime="00:10:00", mem="8G")
    script = render_pbs(job(cpus=64, batch=batch))
    check_bash_syntax(script)
    directives = lines(script, "#PBS")
    assert "-l select=1:ncpus=64:mpiprocs=1:mem=8gb" in directives
    assert {"-l walltime=00:10:00", "-q workq", "-A proj42", "-j oe", "-V", f"-o {RUN_DIR}/job.out"} <= set(directives)
    assert "no early-warning signal" in script
    assert script.rstrip("\n").splitlines()[-1].startswith("exec /venv/bin/python -m hpcflow run galaxy")
    assert "cd /work" in script.splitlines()


def test_pbs_several_nodes_start_workers_with_pbsdsh():
    script = render_pbs(redis_job())
    check_bash_syntax(script)
    assert "-l select=2:ncpus=32:mpiprocs=1" in lines(script, "#PBS")
    body = script.splitlines()
    loop = [line.strip() for line in body if "pbsdsh" in line]
    assert len(loop) == 1 and body[body.index("for i in $(seq 1 1); do") + 1].strip() == loop[0]
    assert loop[0].startswith('pbsdsh -n "$i" -- /bin/bash -c \'cd /work && exec ') and loop[0].endswith(" &")
    assert f"hpcflow worker --redis-url redis://login1:6379 --run {RUN_DIR.name}" in loop[0]
    assert body[-1] == 'exit "$status"'


@pytest.mark.parametrize("deaf", [False, True])
def test_a_worker_step_that_outlives_the_run_is_ended_by_the_job(tmp_path, monkeypatch, deaf):
    """An `srun` that never hears that a task ended (a node out of reach when its worker
    gave up) would outlive the job on a cluster that tracks processes by parentage: the
    batch shell ends it after the grace (TERM; KILL for one deaf to TERM), and exits with
    the launcher's code."""
    monkeypatch.setattr(shell, "WORKERS_GRACE_S", 1)
    monkeypatch.setattr(shell, "WORKERS_KILL_S", 1)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ignore = "trap '' TERM; " if deaf else ""
    (bin_dir / "srun").write_text(f'#!/bin/bash\n{ignore}echo $$ > "{tmp_path}/srun.pid"\nexec sleep 600\n')
    fake = tmp_path / "python"
    fake.write_text("#!/bin/bash\nsleep 0.5\nexit 3\n")  # the launcher: done, with skipped items
    for f in (bin_dir / "srun", fake):
        f.chmod(0o755)
    spec = make_job(
        workflow="pipeline", mapping="dyn_redis", cpus=2, nodes=2, redis_url="redis://h:1",
        run_dir=tmp_path / "r", workdir=tmp_path, python=str(fake),
    )  # fmt: skip
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    done = subprocess.run(["bash", "-c", render_slurm(spec)], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "the worker step outlived the run: ending it" in done.stdout
    assert ended(int((tmp_path / "srun.pid").read_text()))


def ended(pid: int, wait_s: float = 30.0) -> bool:
    """The process is gone or a zombie (a KILL is delivered a moment after `kill` returns)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


def test_rendered_script_runs_the_launcher_in_the_workdir(tmp_path):
    """Run a rendered script with a stand-in interpreter: it must cd and exec."""
    fake = tmp_path / "python"
    fake.write_text('#!/bin/bash\necho "$PWD" "$@" > "$(dirname "$0")/called"\n')
    fake.chmod(0o755)
    spec = make_job(
        workflow="pipeline", mapping="simple", cpus=1, run_dir=tmp_path / "r", workdir=tmp_path, python=str(fake)
    )
    done = subprocess.run(["bash", "-c", render_slurm(spec)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    called = (tmp_path / "called").read_text().split()
    assert called[0] == str(tmp_path)
    assert called[1:5] == ["-m", "hpcflow", "run", "pipeline"]


# -- values --------------------------------------------------------------------------


def test_params_survive_the_trip_through_the_script():
    params = {"scale": 5, "heavy": True, "ratio": 0.25, "tag": "a b", "word": "true", "day": "2024-01-01"}
    params["names"] = ["x", "y"]
    argv = shlex.split(render_slurm(job(params=params)).rstrip("\n").splitlines()[-1])
    pairs = tuple(argv[i + 1] for i, arg in enumerate(argv) if arg == "-p")
    assert parse_params(pairs) == params


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(nodes=2, redis_url="redis://h:1"), r"--nodes 2 needs a \*_redis mapping"),
        (dict(mapping="dyn_redis", nodes=2), r"--nodes 2 needs --redis-url"),
        (dict(mapping="dyn_redis", nodes=3, cpus=32, redis_url="redis://h:1"), r"does not split evenly"),
        (dict(cpus=0), r"at least 1 CPU"),
        (dict(nodes=0), r"at least 1 CPU and 1 node"),
        (dict(batch=BatchConfig(walltime="90 minutes")), r"walltime '90 minutes' is not HH:MM:SS"),
        (dict(batch=BatchConfig(walltime="1:61:00")), r"not HH:MM:SS"),
        (dict(batch=BatchConfig(mem="lots")), r"memory 'lots' is not a size"),
    ],
)
def test_bad_job_is_a_usage_error(kw, message):
    with pytest.raises(UsageError, match=message):
        job(**kw)


@pytest.mark.parametrize("mem, slurm, pbs", [("8G", "8G", "8gb"), ("8gb", "8G", "8gb"), ("512", "512M", "512mb")])
def test_memory_units_per_scheduler(mem, slurm, pbs):
    spec = job(batch=BatchConfig(mem=mem))
    assert f"--mem={slurm}" in lines(render_slurm(spec), "#SBATCH")
    assert lines(render_pbs(spec), "#PBS")[1].endswith(f":mem={pbs}")
