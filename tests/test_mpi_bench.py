"""The static MPI benchmark's helpers run and compute what they say: dispel4py's own `mpi`
on the latency-bound graph (peer_dispel4py_mpi.py) and the bound of a split (mpi_bound.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib.util import find_spec

import pytest

from tests.conftest import ROOT, require

BENCH = ROOT / "experiments" / "bench"


def env() -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "PMIX_", "OMPI_", "SLURM_"))}
    clean["PYTHONPATH"] = str(ROOT) + os.pathsep + clean.get("PYTHONPATH", "")
    return clean


def test_dispel4py_mpi_runs_the_same_graph_to_the_expected_outputs(tmp_path):
    mpiexec = shutil.which("mpiexec") or str(ROOT / ".venv" / "bin" / "mpiexec")
    require(os.path.exists(mpiexec), "mpiexec")
    if find_spec("dispel4py") is None:
        pytest.skip("dispel4py (the bench extra) is not installed")
    out = tmp_path / "d4p.json"
    cmd = [mpiexec, "-n", "4", sys.executable, str(BENCH / "peer_dispel4py_mpi.py"), str(out), "24"]
    subprocess.run(cmd, check=True, env=env(), cwd=tmp_path, capture_output=True, timeout=120)
    result = json.loads(out.read_text())
    assert result["correct"] is True and result["processes"] == 4 and result["runtime_s"] > 0


def test_the_bound_of_a_demand_split_is_above_the_static_one():
    cmd = [sys.executable, str(BENCH / "mpi_bound.py"), "--ranks", "16"]
    lines = subprocess.run(cmd, check=True, env=env(), capture_output=True, text=True, timeout=120).stdout.splitlines()
    effs = {(row.rsplit(None, 4)[0], row.split()[-3]): float(row.split()[-1]) for row in lines[2:]}
    assert len(effs) == 6
    for placement in {p for p, _ in effs}:
        assert effs[(placement, "demand")] > effs[(placement, "static")]
