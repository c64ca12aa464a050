"""`hpcflow sweep --submit`: one batch job a cell, gathered from the run directories;
the queue queries unit-tested, the whole path on the local SLURM (scripts/local-slurm.sh)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from hpcflow.sweep import SweepRun, load_sweep
from hpcflow.sweep.jobs import job_error, job_listed, submitted_job
from tests.conftest import require
from tests.test_slurm_integration import slurm_running


def answer(stdout="", returncode=0):
    def run(command, **kwargs):
        return subprocess.CompletedProcess(command, returncode, stdout, "")

    return run


def test_a_job_is_listed_while_the_scheduler_shows_it():
    assert job_listed("slurm", "12", run=answer("RUNNING\n"))
    assert not job_listed("slurm", "12", run=answer(""))  # finished: squeue no longer shows it
    assert not job_listed("slurm", "12", run=answer("", returncode=1))  # purged: invalid job id
    table = "Job id  Name  User  Time Use S Queue\n------\n77.pbs01  hpcflow  me  00:00:01 R workq\n"
    assert job_listed("pbs", "77.pbs01", run=answer(table))
    assert not job_listed("pbs", "77.pbs01", run=answer(table.replace(" R ", " F ")))
    assert not job_listed("pbs", "77.pbs01", run=answer(table.replace(" R ", " C ")))  # Torque: completed
    assert not job_listed("pbs", "77.pbs01", run=answer("", returncode=153))


def test_a_job_that_left_no_metrics_says_why(tmp_path):
    assert job_error(tmp_path) == "the job ended without metrics.json or job.out"
    (tmp_path / "metrics.json").write_text("{}")
    assert job_error(tmp_path) is None  # its output went elsewhere (the Torque wrapper ignores -o)
    (tmp_path / "metrics.json").unlink()
    (tmp_path / "job.out").write_text("hpcflow: error: unknown mapping 'warp'\n")
    assert job_error(tmp_path) == "unknown mapping 'warp'"
    (tmp_path / "job.out").write_text("runs/x\n")
    (tmp_path / "metrics.json").write_text("{}")
    assert job_error(tmp_path) is None


SWEEP = """
name: batch
workflow: pipeline
params: {items: 5, stages: 2}
mappings: [simple, dyn_multi, multi]
cpus: [2]
compare: [[dyn_multi, simple]]
batch: {walltime: "00:05:00"}
"""


@pytest.fixture
def slurm():
    require(slurm_running(), "a running SLURM (start one with scripts/local-slurm.sh)")


def test_submit_runs_each_cell_as_a_job_and_gathers_the_results(slurm, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "batch.yaml").write_text(SWEEP)
    spec = load_sweep("batch.yaml")
    outcome = SweepRun(spec, submit=True, poll_s=0.5).run()
    rows = outcome.rows
    assert [(r["mapping"], r["status"]) for r in rows[:1]] == [("multi", "failed")]  # refused before submitting
    done = {r["mapping"]: r for r in rows[1:]}
    assert set(done) == {"simple", "dyn_multi"} and all(r["status"] == "ok" for r in done.values())
    assert done["dyn_multi"]["allocation"]["scheduler"] == "slurm" and done["dyn_multi"]["processes"] == 2
    run_dir = tmp_path / done["simple"]["run_dir"]
    assert (run_dir / "job.sh").is_file() and submitted_job(run_dir)[0] == "slurm"
    assert "#SBATCH --time=00:05:00" in (run_dir / "job.sh").read_text()
    assert (tmp_path / "results" / "batch" / "summary.md").is_file()
    err = capsys.readouterr().err
    assert "submitted simple, 2 cpus, repeat 0 as slurm job" in err and "[3/3]" in err

    # lost the runs file after the jobs ran: a resumed sweep gathers them, submitting nothing
    job_ids = {r["mapping"]: submitted_job(tmp_path / r["run_dir"]) for r in rows[1:]}
    runs = tmp_path / "results" / "batch" / "runs.jsonl"
    runs.write_text(json.dumps(rows[0]) + "\n")
    SweepRun(spec, submit=True, poll_s=0.5, quiet=True).run()
    again = [json.loads(line) for line in runs.read_text().splitlines()]
    assert sorted(r["mapping"] for r in again) == ["dyn_multi", "multi", "simple"]
    assert {r["mapping"]: submitted_job(tmp_path / r["run_dir"]) for r in again[1:]} == job_ids


def test_submit_with_pbs_through_the_torque_wrapper_gathers_the_results(slurm, tmp_path, monkeypatch):
    """qsub/qstat of Debian's slurm-wlm-torque in front of the local SLURM; its qstat
    shows a finished job as C for a while, which must not count as still queued."""
    require(shutil.which("qsub") is not None, "qsub (apt-get install slurm-wlm-torque)")
    monkeypatch.chdir(tmp_path)
    sweep = SWEEP.replace("mappings: [simple, dyn_multi, multi]", "mappings: [simple, dyn_multi]")
    sweep = sweep.replace('batch: {walltime: "00:05:00"}', 'batch: {walltime: "00:05:00", scheduler: pbs}')
    (tmp_path / "pbs.yaml").write_text(sweep.replace("name: batch", "name: pbs"))
    rows = SweepRun(load_sweep("pbs.yaml"), submit=True, poll_s=0.5, quiet=True).run().rows
    assert sorted((r["mapping"], r["status"]) for r in rows) == [("dyn_multi", "ok"), ("simple", "ok")]
    for row in rows:
        run_dir = tmp_path / row["run_dir"]
        assert (run_dir / "job.pbs").is_file() and submitted_job(run_dir)[0] == "pbs"
        assert row["items"]["Source"] == 5
    assert (tmp_path / "results" / "pbs" / "summary.md").is_file()
