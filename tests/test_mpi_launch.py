"""Launching the `mpi` mapping from the command line: under mpiexec, re-launched through
mpiexec, and the errors that must end every rank with one line and exit code 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hpcflow import run
from hpcflow.workflows import pipeline
from tests.conftest import ROOT, python_without_mpiexec, require

STATEFUL = ["-p", "stateful=true", "-p", "stages=2", "-p", "items=300"]  # 6 instances: 1 + 2 + 2 (group-by) + 1


@pytest.fixture
def mpiexec() -> str:
    path = shutil.which("mpiexec")
    require(path is not None, "mpiexec")
    return path


def hpcflow_cmd(*args: str, launcher: list[str] | None = None, cwd: Path, path: str | None = None, timeout=180):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "PMIX_", "OMPI_", "SLURM_"))}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["HPCFLOW_OVERSUBSCRIBE"] = "1"  # 6 ranks on a machine that may have 2 CPUs
    if path is not None:
        env["PATH"] = path
    cmd = [*(launcher or []), sys.executable, "-m", "hpcflow", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def outputs(run_dir: Path) -> list[str]:
    lines = (run_dir / "outputs.jsonl").read_text().splitlines()
    return sorted(json.dumps(json.loads(line), sort_keys=True) for line in lines)


def simple_outputs(items: int = 300) -> list[str]:
    """`simple`'s rows of the stateful 2-stage pipeline, as outputs.jsonl holds them, sorted."""
    graph, inputs, _ = pipeline.build(items=items, stages=2, stateful=True)
    result = run(graph, inputs, mapping="simple")
    rows = [
        {"pe": pe, "port": port, "data": item}
        for pe, ports in result.outputs.items()
        for port, items in ports.items()
        for item in items
    ]
    return sorted(json.dumps(json.loads(json.dumps(row)), sort_keys=True) for row in rows)


def test_mpiexec_runs_the_stateful_pipeline_like_simple(tmp_path, mpiexec):
    proc = hpcflow_cmd("run", "pipeline", *STATEFUL, "--mapping", "mpi", launcher=[mpiexec, "-n", "6"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run_dir = tmp_path / proc.stdout.strip().splitlines()[-1]
    assert proc.stdout.strip().splitlines() == [str(run_dir)]  # only rank 0 prints
    assert proc.stderr.count("hpcflow: running pipeline on mpi") == 1
    assert outputs(run_dir) == simple_outputs()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["mapping"] == "mpi" and metrics["processes"] == 6 and metrics["status"] == "ok"
    assert metrics["items"]["Total"] == 16
    assert len(list(tmp_path.joinpath("runs").iterdir())) == 1  # the ranks agreed on one run directory


def test_without_mpiexec_it_relaunches_itself(tmp_path, mpiexec):
    proc = hpcflow_cmd("run", "pipeline", *STATEFUL, "--mapping", "mpi", "--cpus", "6", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "re-launching through mpiexec" in proc.stderr and " -n 6 " in proc.stderr
    run_dir = tmp_path / proc.stdout.strip().splitlines()[-1]
    assert outputs(run_dir) == simple_outputs()


def test_too_few_ranks_exits_2_with_one_line(tmp_path, mpiexec):
    launcher = [mpiexec, "-n", "4"]
    proc = hpcflow_cmd("run", "pipeline", *STATEFUL, "--mapping", "mpi", "-q", launcher=launcher, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("needs at least 6 processes") == 1
    assert "Traceback" not in proc.stderr


def test_a_failing_pe_exits_1_on_every_rank(tmp_path, mpiexec):
    workflow = tmp_path / "failing.py"
    workflow.write_text(
        "from hpcflow import IterativePE, WorkflowGraph\n"
        "from hpcflow.workflows.pipeline import Source\n"
        "class Fail(IterativePE):\n"
        "    def _process(self, data):\n"
        "        if data[1] == 50:\n"
        "            raise ValueError('bad item')\n"
        "        return data\n"
        "def build():\n"
        "    graph, source = WorkflowGraph(), Source()\n"
        "    graph.connect(source, 'output', Fail(), 'input')\n"
        "    return graph, {source: 1000}\n"
    )
    proc = hpcflow_cmd("run", str(workflow), "--mapping", "mpi", "-q", launcher=[mpiexec, "-n", "3"], cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("PE Fail[") == 1 and "bad item" in proc.stderr
    [run_dir] = tmp_path.joinpath("runs").iterdir()
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "failed"


def test_no_mpiexec_beside_python_or_on_path_is_one_line_and_exit_2(tmp_path):
    python = python_without_mpiexec(tmp_path)  # a virtualenv's Python with no mpiexec beside it
    bin_dir = python.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "PMIX_", "OMPI_", "SLURM_"))}
    env.update(PYTHONPATH=str(ROOT), PATH=str(bin_dir), HPCFLOW_OVERSUBSCRIBE="1")
    cmd = [str(bin_dir / "python"), "-m", "hpcflow", "run", "pipeline", "--mapping", "mpi", "--cpus", "4"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert "needs an MPI launcher" in line
    assert not tmp_path.joinpath("runs").exists()


def test_a_bad_parameter_under_mpiexec_is_one_line_and_exit_2(tmp_path, mpiexec):
    launcher = [mpiexec, "-n", "2"]
    proc = hpcflow_cmd("run", "pipeline", "-p", "bogus=1", "--mapping", "mpi", launcher=launcher, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("hpcflow: error: ") and "bogus" in line
    assert not list(tmp_path.glob("runs/*"))  # rank 0 removed the run directory it made


def test_importing_hpcflow_does_not_import_mpi4py():
    code = "import sys, hpcflow, hpcflow.cli; assert 'mpi4py' not in sys.modules, 'mpi4py imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
