"""RUN_DIR/attempts.json and what is made of it: the attempt log of metrics.json, one
timeline over every attempt, the lines of `hpcflow status` and the report's section."""

from __future__ import annotations

import json

import pytest

from hpcflow import attempts
from hpcflow.attempts import (
    UNFINISHED,
    attempt_log,
    begin_attempt,
    describe_attempts,
    end_attempt,
    gaps,
    read_attempts,
    summary,
    whole_timeline,
)
from hpcflow.htmlreport import line_chart, run_report


@pytest.fixture
def clock(monkeypatch):
    """attempts.time.time() as the test sets it."""
    now = [1000.0]
    monkeypatch.setattr(attempts.time, "time", lambda: now[0])
    return now


def stopped(generation: int, timeline: list) -> dict:
    error = f"stopped by SIGTERM: checkpoint {generation} written; continue with: hpcflow resume /r"
    return {
        "status": "interrupted",
        "error": error,
        "checkpoint_generation": generation,
        "checkpoints_written": 1,
        "timeline": timeline,
    }


def test_two_attempts_with_a_job_id_and_the_checkpoint_between(tmp_path, clock, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "41")
    begin_attempt(tmp_path, resumed=False)
    clock[0] = 1010.0
    end_attempt(tmp_path, stopped(3, [[0.5, 2, 7], [9.5, 2, 4]]), 143)
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    clock[0] = 1030.0
    begin_attempt(tmp_path, resumed=True, resumed_from=3)
    clock[0] = 1035.0
    ok = {"status": "ok", "checkpoint_generation": 3, "checkpoints_written": 0, "timeline": [[0.5, 1, 2]]}
    entries = end_attempt(tmp_path, ok, 0)
    log = attempt_log(entries)
    assert [(a["job_id"], a["start_s"], a["end_s"], a["exit_code"]) for a in log] == [
        ("41", 0.0, 10.0, 143),
        ("42", 30.0, 35.0, 0),
    ]
    assert log[0]["checkpoint"] == 3 and log[1]["resumed_from"] == 3 and log[1]["checkpoint"] is None
    assert log[1]["ended"] == "finished" and "timeline" not in log[0]
    assert whole_timeline(entries) == [[0.5, 2, 7], [9.5, 2, 4], [30.5, 1, 2]]
    assert gaps(log) == [(10.0, 30.0)]
    assert summary(log) == {"span_s": 35.0, "between_s": 20.0}
    lines = describe_attempts(log)
    assert lines[0] == "  2 attempts over 35 s (20 s between them):"
    assert lines[1].endswith("10.0 s job 41: stopped by SIGTERM: checkpoint 3 written")  # how to go on: done
    assert lines[2].endswith("5.0 s job 42, from checkpoint 3: finished")


def test_a_new_run_in_the_directory_starts_the_list_again(tmp_path, clock):
    begin_attempt(tmp_path, resumed=False)
    end_attempt(tmp_path, {"status": "ok"}, 0)
    begin_attempt(tmp_path, resumed=False)
    assert [a["attempt"] for a in read_attempts(tmp_path)] == [1]


def test_an_attempt_killed_without_a_word_shows_as_lost(tmp_path, clock):
    begin_attempt(tmp_path, resumed=False)  # ... and SIGKILLed: it never ends
    clock[0] = 1100.0
    begin_attempt(tmp_path, resumed=True, resumed_from=1)
    log = attempt_log(read_attempts(tmp_path), now=1104.0)
    assert log[0]["status"] == "lost" and log[0]["ended"] == UNFINISHED and log[0]["end_s"] is None
    assert log[1]["status"] == "running" and log[1]["end_s"] == 104.0
    assert gaps(log) == []  # when the killed one ended is not known
    assert describe_attempts(log)[2].endswith(": running")


def test_a_single_attempt_adds_no_lines_and_no_section(tmp_path, clock):
    begin_attempt(tmp_path, resumed=False)
    log = attempt_log(end_attempt(tmp_path, {"status": "ok"}, 0))
    assert len(log) == 1 and describe_attempts(log) == []
    samples = [[0.1 * i, 1, 0] for i in range(1, 7)]  # enough for charts (fewer are a sentence)
    page = run_report({"status": "ok", "attempt_log": log, "timeline": samples}, [])
    assert "<h2>Attempts" not in page and "seconds since the start" in page


def test_the_report_lists_the_attempts_and_shades_the_time_between(tmp_path, clock):
    begin_attempt(tmp_path, resumed=False)
    clock[0] = 1010.0
    end_attempt(tmp_path, stopped(1, [[0.5 * i, 2, 3] for i in range(1, 7)]), 143)
    clock[0] = 1050.0
    begin_attempt(tmp_path, resumed=True, resumed_from=1)
    clock[0] = 1060.0
    entries = end_attempt(tmp_path, {"status": "ok", "timeline": [[0.5 * i, 2, 1] for i in range(1, 7)]}, 0)
    metrics = {"status": "ok", "attempt_log": attempt_log(entries), "timeline": whole_timeline(entries)}
    page = run_report(metrics, [])
    assert "<h2>Attempts (2)</h2>" in page and "seconds since the first attempt started" in page
    assert page.count(">between attempts<") == 2  # in both charts
    assert "The run spanned 60 s from the first attempt's start" in page
    assert json.loads(json.dumps(metrics))  # what metrics.json holds is JSON


def test_a_line_does_not_cross_a_gap():
    svg = line_chart([("n", [(0.0, 1.0), (1.0, 2.0), (5.0, 2.0)])], "x", "y", gaps=[(2.0, 4.0)])
    path = svg.split("<path d='")[1].split("'")[0]
    assert path.count("M") == 2  # a new line after the gap, no step held across it


def test_the_pool_and_the_target_share_the_timeline_axis_over_attempts(tmp_path, clock):
    """The report reads the pool's samples at the timeline's times: both are shifted alike."""
    series = {"timeline": [[1.0, 3, 0]], "pool_timeline": [[1.0, 2]], "autoscale_timeline": [[1.0, 2]]}
    begin_attempt(tmp_path, resumed=False)
    clock[0] = 1010.0
    end_attempt(tmp_path, {**stopped(1, series["timeline"]), **series}, 143)
    clock[0] = 1050.0
    begin_attempt(tmp_path, resumed=True, resumed_from=1)
    clock[0] = 1060.0
    entries = end_attempt(tmp_path, {"status": "ok", **series}, 0)
    times = {key: [t for t, *_ in whole_timeline(entries, key)] for key in series}
    assert times["timeline"] == times["pool_timeline"] == times["autoscale_timeline"] == [1.0, 51.0]
