"""`hpcflow submit --scheduler pbs` through Debian's slurm-wlm-torque: its qsub turns the
job.pbs script into a SLURM job on the local SLURM. What this shows and what it does not
is in the README ("PBS, as far as this machine goes")."""

import json
import shutil

from tests.conftest import require
from tests.test_slurm_integration import FINISHED, job_field, slurm, submitted, wait_for_state  # noqa: F401


def test_submit_with_pbs_through_the_torque_wrapper_runs_with_the_cpus_and_walltime_asked(slurm, cli, tmp_path):  # noqa: F811
    require(shutil.which("qsub") is not None, "qsub (apt-get install slurm-wlm-torque)")
    done = cli(
        "submit",
        "pipeline",
        "--scheduler",
        "pbs",
        "--cpus",
        "2",
        "--mapping",
        "simple",
        "-p",
        "items=20",
        "--walltime",
        "00:05:00",
    )
    job_id, run_dir = submitted(done)
    run = tmp_path / run_dir
    assert (run / "job.pbs").read_text().startswith("#!/bin/bash\n#PBS -N hpcflow-pipeline\n")
    assert job_field(job_id, "NumCPUs") == "2"  # from `#PBS -l select=1:ncpus=2`
    assert job_field(job_id, "TimeLimit") == "00:05:00"  # from `#PBS -l walltime=`
    assert job_field(job_id, "JobName") == "hpcflow-pipeline"  # from `#PBS -N`
    assert wait_for_state(job_id, FINISHED) == "COMPLETED"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["items"]["Source"] == 20
    assert len((run / "outputs.jsonl").read_text().splitlines()) == 20
    # The job is a SLURM job underneath: SLURM_* variables, no PBS_* ones.
    assert metrics["allocation"]["scheduler"] == "slurm" and metrics["allocation"]["job_id"] == job_id
