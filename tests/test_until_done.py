"""`hpcflow submit --until-done`: the job script's attempt logic, for SLURM and PBS; and
the hand-written jobscripts/sentiment_until_done.sh, which requeues itself instead.

The rendered scripts run here under bash with stand-ins on PATH: a launcher that exits
with the code a test asks for (or on SIGTERM, as hpcflow does after its checkpoint) and
submission commands that record what they were given. The same logic on the real local
SLURM, with the real hpcflow, is in test_slurm_integration.py."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from hpcflow.batch.submit import make_job
from hpcflow.batch.templates import WARNING_S, render_pbs, render_slurm, warning_s
from hpcflow.batch.untildone import ATTEMPT_FILE
from hpcflow.config import BatchConfig
from hpcflow.errors import UsageError
from tests.conftest import ROOT

RENDER = {"slurm": render_slurm, "pbs": render_pbs}
SUBMIT = {"slurm": "sbatch", "pbs": "qsub"}
LAUNCHER = """echo "$*" >>"$FAKE_LOG/launched"
if [ -n "$FAKE_WAIT_TERM" ]; then
    trap 'kill "$sleeper"; echo SIGTERM >>"$FAKE_LOG/launched"; exit 143' TERM
    touch "$FAKE_LOG/started"
    sleep 60 &
    sleeper=$!
    wait
fi
exit "${FAKE_EXIT:-0}"
"""
STAND_INS = {
    # the launcher (`python -m hpcflow run|resume ...`): says how it was called, then exits
    # with $FAKE_EXIT, or waits for SIGTERM and exits 143 as hpcflow does after a checkpoint
    "python": LAUNCHER,
    "hpcflow": LAUNCHER,
    "sbatch": 'echo "$*" >>"$FAKE_LOG/submitted"; echo "4242;cluster"\n',
    "qsub": 'echo "$*" >>"$FAKE_LOG/submitted"; echo 4242.pbs1\n',
    "scontrol": """if [ "$1" = requeue ]; then echo "$*" >>"$FAKE_LOG/submitted"; exit; fi
echo "JobId=$4 JobName=x JobState=${FAKE_STATE:-RUNNING} Reason=None"
""",
}


@pytest.fixture
def fakes(tmp_path):
    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    log.mkdir()
    for name, body in STAND_INS.items():
        (bin_dir / name).write_text("#!/bin/bash\n" + body)
        (bin_dir / name).chmod(0o755)
    return bin_dir, log


def until_done_job(tmp_path: Path, **kw):
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    kw.setdefault("mapping", "hybrid_multi")
    return make_job(
        workflow="pipeline",
        cpus=2,
        run_dir=run_dir,
        workdir=tmp_path,
        python=str(tmp_path / "bin" / "python"),
        until_done=True,
        **kw,
    )


def start_attempt(tmp_path, fakes, scheduler="slurm", env=None, **kw) -> subprocess.Popen:
    bin_dir, log = fakes
    script = RENDER[scheduler](until_done_job(tmp_path, **kw))
    full_env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_LOG": str(log)}
    full_env.update(SLURM_JOB_ID="77", PBS_JOBID="77.pbs1", **(env or {}))
    return subprocess.Popen(["bash", "-c", script], env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def attempt(tmp_path, fakes, scheduler="slurm", env=None, **kw) -> tuple[int, str]:
    """Run one attempt of the rendered script: (its exit code, what it printed)."""
    proc = start_attempt(tmp_path, fakes, scheduler, env, **kw)
    out, _ = proc.communicate(timeout=60)
    return proc.returncode, out.decode()


def logged(fakes, name: str) -> list[str]:
    path = fakes[1] / name
    return path.read_text().splitlines() if path.exists() else []


# -- rendering -----------------------------------------------------------------------


def test_slurm_until_done_script_appends_to_one_job_out_and_does_not_exec(tmp_path):
    script = render_slurm(until_done_job(tmp_path, batch=BatchConfig(walltime="02:00:00")))
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    directives = [line.removeprefix("#SBATCH ") for line in script.splitlines() if line.startswith("#SBATCH ")]
    assert "--open-mode=append" in directives and f"--signal=B:USR1@{WARNING_S}" in directives
    assert "\nexec " not in script
    assert f"hpcflow resume {tmp_path / 'run'}" in script
    assert f'sbatch --parsable --dependency=afterany:"$SLURM_JOB_ID" {tmp_path / "run" / "job.sh"}' in script


def test_pbs_until_done_script_resubmits_with_qsub_and_says_what_kill_delay_means(tmp_path):
    script = render_pbs(until_done_job(tmp_path, checkpoint_interval=300))
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    assert "\nexec " not in script
    assert (
        f'qsub -W depend=afterany:"$PBS_JOBID" -o "$run_dir/job.$((attempt + 1)).out" {tmp_path}/run/job.pbs' in script
    )
    assert "kill_delay" in script and "--checkpoint-interval" in script
    assert "--checkpoint-interval 300" in script


@pytest.mark.parametrize("walltime, warning", [(None, WARNING_S), ("00:01:00", 15), ("00:10:00", 60), ("0:00:02", 1)])
def test_the_early_signal_leaves_most_of_a_short_walltime_for_work(tmp_path, walltime, warning):
    job = until_done_job(tmp_path, batch=BatchConfig(walltime=walltime))
    assert warning_s(job) == warning
    assert f"--signal=B:USR1@{warning}" in render_slurm(job)


def test_without_until_done_the_script_still_execs_the_launcher(tmp_path):
    spec = make_job(workflow="pipeline", mapping="hybrid_multi", cpus=2, run_dir=tmp_path, workdir=tmp_path)
    for render in RENDER.values():
        assert render(spec).rstrip("\n").splitlines()[-1].startswith("exec ")
    assert "--open-mode" not in render_slurm(spec)


@pytest.mark.parametrize("mapping", ["simple", "mpi"], ids=["simple", "the-mpi-mapping"])
def test_until_done_refuses_a_mapping_that_does_not_checkpoint(tmp_path, mapping):
    with pytest.raises(
        UsageError, match=rf"--until-done needs a mapping that checkpoints on SIGTERM \(multi, .*\), not {mapping}$"
    ):
        until_done_job(tmp_path, mapping=mapping)


def test_submit_until_done_with_simple_is_one_line_and_exit_2(in_process):
    code, _, err = in_process("submit", "pipeline", "-m", "simple", "-n", "1", "--until-done", "--dry-run")
    assert code == 2 and err.count("\n") == 1 and "--until-done needs a mapping" in err


def test_submit_dry_run_shows_the_attempt_logic(in_process):
    args = ("-m", "hybrid_multi", "-n", "2", "--until-done", "--max-attempts", "4", "--checkpoint-interval", "30")
    code, out, _ = in_process("submit", "pipeline", *args, "--walltime", "00:01:00", "--dry-run")
    assert code == 0
    assert "max_attempts=4" in out.splitlines() and "--signal=B:USR1@15" in out
    assert "hpcflow run pipeline --mapping hybrid_multi --cpus 2" in out and "--checkpoint-interval 30.0" in out


# -- one attempt, run by bash --------------------------------------------------------


@pytest.mark.parametrize("scheduler", ["slurm", "pbs"])
def test_first_attempt_runs_and_a_checkpointed_stop_submits_the_next(tmp_path, fakes, scheduler):
    code, out = attempt(tmp_path, fakes, scheduler, env={"FAKE_EXIT": "143"})
    assert code == 0, out  # a planned stop: the scheduler shows the job COMPLETED, not FAILED
    assert "a planned stop: this job ends with exit 0 (hpcflow exited 143 after the checkpoint)" in out
    assert [line.split()[2] for line in logged(fakes, "launched")] == ["run"]
    submitted = logged(fakes, "submitted")
    assert len(submitted) == 1 and "afterany:77" in submitted[0], submitted
    assert submitted[0].endswith(str(tmp_path / "run" / f"job.{'sh' if scheduler == 'slurm' else 'pbs'}"))
    expected_id = "4242" if scheduler == "slurm" else "4242.pbs1"
    assert (tmp_path / "run" / "job_id").read_text() == f"{scheduler} {expected_id}\n"
    assert (tmp_path / "run" / ATTEMPT_FILE).read_text() == "1\n"
    assert f"attempt 1 of 10: stopped with a checkpoint; attempt 2 is job {expected_id}" in out


def test_a_later_attempt_resumes_the_run_directory(tmp_path, fakes):
    (tmp_path / "run" / "checkpoint").mkdir(parents=True)
    (tmp_path / "run" / "checkpoint" / "run.json").write_text("{}")
    (tmp_path / "run" / ATTEMPT_FILE).write_text("3\n")
    code, out = attempt(tmp_path, fakes, env={"FAKE_EXIT": "0"})
    assert code == 0, out
    assert logged(fakes, "launched") == [f"-m hpcflow resume {tmp_path / 'run'}"]
    assert "attempt 4 of 10: the run is finished (exit 0)" in out
    assert logged(fakes, "submitted") == []


@pytest.mark.parametrize("exit_code, said", [(0, "the run is finished"), (3, "the run is finished"), (1, "exit 1")])
@pytest.mark.parametrize("scheduler", ["slurm", "pbs"])
def test_a_finished_or_failed_run_is_not_submitted_again(tmp_path, fakes, scheduler, exit_code, said):
    code, out = attempt(tmp_path, fakes, scheduler, env={"FAKE_EXIT": str(exit_code)})
    assert code == exit_code
    assert said in out and logged(fakes, "submitted") == []


def test_the_last_attempt_allowed_is_not_submitted_again(tmp_path, fakes):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ATTEMPT_FILE).write_text("2\n")
    code, out = attempt(tmp_path, fakes, env={"FAKE_EXIT": "143"}, max_attempts=3)
    assert code == 143
    assert "attempt 3 of 3: stopped with a checkpoint; that was the last attempt allowed" in out
    assert f"continue with: hpcflow resume {tmp_path / 'run'}" in out
    assert logged(fakes, "submitted") == []


def test_a_cancelled_slurm_job_is_not_submitted_again(tmp_path, fakes):
    code, out = attempt(tmp_path, fakes, env={"FAKE_EXIT": "143", "FAKE_STATE": "CANCELLED"})
    assert code == 143
    assert "the job was cancelled: no further attempt" in out and logged(fakes, "submitted") == []


@pytest.mark.parametrize(
    "scheduler, warning", [("slurm", signal.SIGUSR1), ("slurm", signal.SIGTERM), ("pbs", signal.SIGTERM)]
)
def test_the_schedulers_signal_reaches_the_launcher_in_the_background_as_sigterm(tmp_path, fakes, scheduler, warning):
    proc = start_attempt(tmp_path, fakes, scheduler, env={"FAKE_WAIT_TERM": "1"})
    deadline = time.monotonic() + 30
    while not (fakes[1] / "started").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the launcher did not start"
        time.sleep(0.05)
    proc.send_signal(warning)  # SLURM's --signal=B:USR1@N: to the batch shell alone; PBS's (or a user's) TERM
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out  # stopped with a checkpoint, the next attempt submitted: as planned
    assert logged(fakes, "launched")[-1] == "SIGTERM"
    assert len(logged(fakes, "submitted")) == 1


# -- the hand-written job script -----------------------------------------------------


@pytest.mark.parametrize(
    "restarts, launched, exit_code, requeued",
    [(None, "run", 143, True), ("3", "resume", 143, True), ("9", "resume", 143, False), ("2", "resume", 0, False)],
)
def test_the_jobscript_runs_then_resumes_and_requeues_itself_up_to_its_cap(
    tmp_path, fakes, restarts, launched, exit_code, requeued
):
    run_dir = tmp_path / "runs" / "sentiment-until-done-77"
    if launched == "resume":
        (run_dir / "checkpoint").mkdir(parents=True)
        (run_dir / "checkpoint" / "run.json").write_text("{}")
    env = {**os.environ, "PATH": f"{fakes[0]}{os.pathsep}{os.environ['PATH']}", "FAKE_LOG": str(fakes[1])}
    env.update(SLURM_JOB_ID="77", FAKE_EXIT=str(exit_code), **({"SLURM_RESTART_COUNT": restarts} if restarts else {}))
    script = ROOT / "jobscripts" / "sentiment_until_done.sh"
    done = subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == (0 if requeued else exit_code), done.stdout + done.stderr  # a requeue: a planned stop
    assert [line.split()[0] for line in logged(fakes, "launched")] == [launched]
    assert logged(fakes, "submitted") == (["requeue 77"] if requeued else [])
