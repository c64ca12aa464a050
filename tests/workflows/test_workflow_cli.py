"""The built-in workflows from the command line: each run leaves a run directory with
outputs.jsonl, metrics.json (with the workflow's work_s) and the workflow's own files."""

from __future__ import annotations

import json

import numpy as np
import pytest


def run_dir_of(proc) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_galaxy_from_the_cli(cli, tmp_path):
    out = tmp_path / "galaxy-run"
    run_dir_of(cli("run", "galaxy", "-p", "scale=1", "--run-dir", str(out), "-q"))
    rows = read_jsonl(out / "outputs.jsonl")
    assert len(rows) == 100 and {r["pe"] for r in rows} == {"InternalExtinction"}
    assert set(rows[0]["data"]) == {"ra", "dec", "mtype", "logr25", "t", "a_int"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["workflow"] == "galaxy" and metrics["work_s"] == 0.0 and metrics["params"] == {"scale": 1}
    assert len((out / "coordinates.txt").read_text().splitlines()) == 100


def test_seismic_from_the_cli_writes_npy_files(cli, tmp_path):
    out = tmp_path / "seismic-run"
    run_dir_of(cli("run", "seismic", "-p", "stations=2", "--run-dir", str(out), "-q"))
    rows = read_jsonl(out / "outputs.jsonl")
    assert sorted(r["data"]["file"] for r in rows) == ["spectra/XX.S001..BHZ.npy", "spectra/XX.S002..BHZ.npy"]
    for row in rows:
        assert np.load(out / row["data"]["file"]).shape == (row["data"]["bins"],)
    assert json.loads((out / "metrics.json").read_text())["stations"] == 2


def test_sentiment_from_the_cli_in_the_default_run_directory(cli, tmp_path):
    run_dir = tmp_path / run_dir_of(cli("run", "sentiment", "-p", "articles=40", "-q"))
    assert run_dir.parent.name == "runs"
    rows = read_jsonl(run_dir / "outputs.jsonl")
    assert sorted(r["data"]["method"] for r in rows) == ["afinn", "vader"]
    assert all(len(r["data"]["top3"]) == 3 for r in rows)


def test_an_unknown_parameter_is_one_line_and_exit_2(cli):
    proc = cli("run", "galaxy", "-p", "galaxies=5")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "hpcflow: error: workflow galaxy has no parameter 'galaxies' "
        "(parameters: scale, heavy, latency_scale, coords, votable_dir, seed)"
    ]


@pytest.mark.parametrize("param", ["data_dir=.", "source=obspy-examples"])
def test_miniseed_without_obspy_is_one_line_and_exit_2(in_process, monkeypatch, param):
    from hpcflow.workflows.seismic import sources

    real_find_spec = sources.find_spec
    monkeypatch.setattr(sources, "find_spec", lambda name: None if name == "obspy" else real_find_spec(name))
    code, _, err = in_process("run", "seismic", "-p", param)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "needs obspy" in err and "Traceback" not in err
