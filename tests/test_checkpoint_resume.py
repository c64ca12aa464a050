"""Checkpoints and `hpcflow resume`, end to end on a stateful word count
(tests/wordcount_workflow.py: a group-by count of 3 instances and a global total).

A run stopped by SIGTERM at a random moment and resumed, twice in a row; a launcher
SIGKILLed after a checkpoint; a pinned stateful instance SIGKILLed mid-run; a newest
checkpoint torn after it was written: each ends with every output exactly once, equal
to what collections.Counter computes over the same lines and to an uninterrupted run of
the same mapping. The moments of the signals are seeded random draws, so a failure
replays."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest
from conftest import ROOT, run_cli
from wordcount_workflow import expected_outputs, outputs_of

from hpcflow.attempts import UNFINISHED

pytestmark = pytest.mark.timeout(240)

WORKFLOW = str(ROOT / "tests" / "wordcount_workflow.py")
PARAMS = {"lines": 600, "words": 6, "latency": 0.004, "milestone": 20}
CPUS = 6  # multi: one process an instance (Lines, Split, 3 x Count, Total)
MAPPINGS = ["multi", "hybrid_multi", "hybrid_redis"]
CHECKPOINT = re.compile(
    r"^hpcflow: (?:error: )?stopped by SIGTERM: checkpoint (\d+) written; continue with: hpcflow resume (.+)$"
)


def expected() -> Counter:
    return expected_outputs(PARAMS["lines"], PARAMS["words"], PARAMS["milestone"])


class Runs:
    """Starts `hpcflow run` and `hpcflow resume` in sessions of their own (a test kills
    a launcher with its whole process group) and checks at the end that no process of
    any of them is left, however it ended."""

    def __init__(self, redis_url: str | None) -> None:
        self.redis_url = redis_url
        self.started: list[subprocess.Popen] = []

    def start(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        env = dict(os.environ, **(env or {}), PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        cmd = [sys.executable, "-m", "hpcflow", *args, "-q"]
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        self.started.append(proc)
        return proc

    def run(self, run_dir: Path, mapping: str, *extra: str) -> subprocess.Popen:
        args = ["run", WORKFLOW, "-m", mapping, "-n", str(CPUS), "--oversubscribe", "--run-dir", str(run_dir)]
        args += [f"-p{k}={v}" for k, v in PARAMS.items()]
        if mapping.endswith("_redis"):
            args += ["--redis-url", self.redis_url]
        return self.start(*args, *extra)

    def resume(self, run_dir: Path, *extra: str) -> subprocess.Popen:
        return self.start("resume", str(run_dir), *extra)

    def left(self) -> list[psutil.Process]:
        """Live processes in the session of any run started (workers orphaned by a
        SIGKILLed launcher included)."""
        sessions = {p.pid for p in self.started}
        found = []
        for proc in psutil.process_iter():
            try:
                if os.getsid(proc.pid) in sessions and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
            except (ProcessLookupError, psutil.Error):
                continue
        return found

    def close(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        deadline = time.monotonic() + 15
        while (left := self.left()) and time.monotonic() < deadline:
            time.sleep(0.1)
        for proc in left:
            proc.kill()
        assert not left, f"processes of the runs left behind: {left}"


@pytest.fixture(params=MAPPINGS)
def mapping(request) -> str:
    return request.param


@pytest.fixture
def runs(mapping, request):
    url = request.getfixturevalue("redis_server") if mapping.endswith("_redis") else None
    started = Runs(url)
    yield started
    started.close()


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A run directory named after the test: the Redis run id comes from the name, and the
    tests share one server."""
    return tmp_path / f"run-{tmp_path.name}"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """`uninterrupted(runs, mapping)`: the outputs of a run of the mapping that nothing
    stopped (made once a module)."""
    made: dict[str, Counter] = {}

    def outputs(runs: Runs, mapping: str) -> Counter:
        if mapping not in made:
            run_dir = tmp_path_factory.mktemp(f"uninterrupted-{mapping}")
            finish(runs.run(run_dir, mapping))
            made[mapping] = outputs_of(run_dir / "outputs.jsonl")
        return made[mapping]

    return outputs


# -- waiting for what a run writes -----------------------------------------------------


def wait_until(condition, proc: subprocess.Popen, what: str, timeout: float = 90.0):
    """Polls `condition()` until it is true (returns its value); fails if the run ends first."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended (exit {proc.returncode}) before {what}:\n{err}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout} s")
        time.sleep(0.02)
    return value


def status(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / "status.json").read_text())
    except (OSError, ValueError):  # not there yet (it is replaced atomically, never torn)
        return None


def running(run_dir: Path, proc: subprocess.Popen) -> dict | None:
    """status.json once this very process (a resume, not the attempt before) writes it."""
    s = status(run_dir)
    return s if s and s.get("pid") == proc.pid and s.get("state") == "running" else None


def generations(run_dir: Path) -> list[Path]:
    """The checkpoint generations that have their manifest, oldest first."""
    base = run_dir / "checkpoint"
    if not base.is_dir():
        return []
    found = [d for d in base.iterdir() if re.fullmatch(r"\d{8}", d.name) and (d / "manifest.json").is_file()]
    return sorted(found, key=lambda d: int(d.name))


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def finish(proc: subprocess.Popen, code: int = 0) -> str:
    """Waits for the run's end; its exit code must be `code`. Returns stderr."""
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == code, f"exit {proc.returncode}, not {code}:\n{err}"
    return err


def sigterm_at_random(run_dir: Path, proc: subprocess.Popen, rng: random.Random, latest: float) -> int:
    """SIGTERM a random moment (up to `latest` s) after the run's status.json appears;
    checks the run stopped with a checkpoint as the contract says; its generation."""
    wait_until(lambda: running(run_dir, proc), proc, "status.json of the run")
    delay = rng.uniform(0.2, latest)
    time.sleep(delay)  # the random moment itself, not a wait for something
    proc.send_signal(signal.SIGTERM)
    err = finish(proc, 128 + signal.SIGTERM)
    said = [m for m in map(CHECKPOINT.match, err.splitlines()) if m]
    assert said and said[-1][2] == str(run_dir), f"SIGTERM {delay:.2f} s after the start:\n{err}"
    generation = int(said[-1][1])
    m = metrics(run_dir)
    assert m["status"] == "interrupted" and m["checkpoint_generation"] == generation, m
    assert (run_dir / "checkpoint" / f"{generation:08d}" / "manifest.json").is_file()
    return generation


def assert_exact(run_dir: Path, baseline: Counter) -> None:
    got = outputs_of(run_dir / "outputs.jsonl")
    want = expected()
    assert got == want, f"twice: {got - want}; missing: {want - got}"
    assert baseline == want


# -- the Must-show cases ---------------------------------------------------------------


def test_sigterm_twice_then_resume_equals_the_uninterrupted_run(run_dir, runs, mapping, uninterrupted):
    rng = random.Random(f"sigterm-twice-{mapping}")
    proc = runs.run(run_dir, mapping, "--checkpoint-interval", "1")
    sigterm_at_random(run_dir, proc, rng, latest=3.0)
    first = metrics(run_dir)
    sigterm_at_random(run_dir, runs.resume(run_dir), rng, latest=2.0)
    finish(runs.resume(run_dir))
    assert_exact(run_dir, uninterrupted(runs, mapping))
    m = metrics(run_dir)
    assert m["status"] == "ok" and m["attempts"] == 3
    assert m["process_time_s"] > first["process_time_s"]  # totals over the attempts
    assert_attempts_shown(run_dir, m, first["checkpoint_generation"])


def assert_attempts_shown(run_dir: Path, m: dict, first_checkpoint: int) -> None:
    """Every attempt is in metrics.json, `hpcflow status` and report.html, and the
    timeline runs over all three on one axis."""
    log = m["attempt_log"]
    assert [a["attempt"] for a in log] == [1, 2, 3]
    assert [a["status"] for a in log] == ["interrupted", "interrupted", "ok"]
    assert [a["exit_code"] for a in log] == [143, 143, 0]
    assert log[0]["resumed_from"] is None and log[1]["resumed_from"] == first_checkpoint == log[0]["checkpoint"]
    assert log[2]["resumed_from"] == log[1]["checkpoint"] > first_checkpoint
    assert log[0]["ended"].startswith(f"stopped by SIGTERM: checkpoint {first_checkpoint} written")
    assert log[0]["start_s"] == 0 and all(a["start_s"] < a["end_s"] for a in log)
    assert all(a["end_s"] <= b["start_s"] for a, b in zip(log, log[1:], strict=False))
    times = [t for t, *_ in m["timeline"]]
    assert times == sorted(times)
    assert times[0] < log[0]["end_s"] and times[-1] > log[2]["start_s"]  # the first attempt's and the last's
    shown = run_cli("status", str(run_dir)).stdout
    assert "  3 attempts over " in shown, shown
    assert f", from checkpoint {first_checkpoint}: stopped by SIGTERM: checkpoint " in shown, shown
    assert shown.rstrip().endswith(f"from checkpoint {log[2]['resumed_from']}: finished"), shown
    page = (run_dir / "report.html").read_text()
    assert "<h2>Attempts (3)</h2>" in page and "between attempts" in page


def test_launcher_sigkilled_after_a_checkpoint_resumes_exactly(run_dir, runs, mapping, uninterrupted):
    rng = random.Random(f"sigkill-launcher-{mapping}")
    proc = runs.run(run_dir, mapping, "--checkpoint-interval", "1")
    wait_until(lambda: generations(run_dir), proc, "checkpoint generation")
    time.sleep(rng.uniform(0.0, 1.0))  # a random moment after it, before the next one or not
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and every process of its group
    finish(proc, -signal.SIGKILL)
    finish(runs.resume(run_dir))
    assert_exact(run_dir, uninterrupted(runs, mapping))
    m = metrics(run_dir)
    assert m["status"] == "ok" and m["attempts"] == 2
    killed, resumed = m["attempt_log"]
    assert killed["status"] == "lost" and killed["ended"] == UNFINISHED and killed["end_s"] is None
    assert resumed["status"] == "ok" and resumed["resumed_from"] >= 1


@pytest.mark.parametrize(
    "mapping,victim", [(m, "Count") for m in MAPPINGS] + [("hybrid_multi", "Total")], indirect=["mapping"]
)
def test_a_sigkilled_stateful_instance_is_recovered_exactly(run_dir, runs, mapping, uninterrupted, victim):
    rng = random.Random(f"sigkill-instance-{mapping}-{victim}")
    proc = runs.run(run_dir, mapping, "--checkpoint-interval", "1")
    wait_until(lambda: generations(run_dir), proc, "checkpoint generation")
    time.sleep(rng.uniform(0.0, 1.0))
    pinned = wait_until(lambda: (running(run_dir, proc) or {}).get("pinned_pids"), proc, "pinned_pids in status.json")
    name = rng.choice(sorted(n for n in pinned if n.startswith(f"{victim}[")))
    os.kill(pinned[name], signal.SIGKILL)
    finish(proc)
    assert_exact(run_dir, uninterrupted(runs, mapping))
    m = metrics(run_dir)
    assert m["status"] == "ok" and m["recoveries"] >= 1, f"{name} killed: {m.get('recoveries')}"


@pytest.mark.parametrize(
    "mapping,tear",
    [(m, "truncate a file") for m in MAPPINGS] + [("hybrid_multi", "remove the manifest")],
    indirect=["mapping"],
)
def test_a_torn_newest_checkpoint_is_passed_over_for_the_one_before(run_dir, runs, mapping, uninterrupted, tear):
    proc = runs.run(run_dir, mapping, "--checkpoint-interval", "1")
    wait_until(lambda: len(generations(run_dir)) >= 2, proc, "second checkpoint generation")
    proc.send_signal(signal.SIGTERM)
    finish(proc, 128 + signal.SIGTERM)
    *older, newest = generations(run_dir)
    assert older, "a stopped run keeps the generation before its last"
    if tear == "remove the manifest":
        (newest / "manifest.json").unlink()
    else:
        files = [f for f in newest.rglob("*") if f.is_file() and f.name != "manifest.json"]
        biggest = max(files, key=lambda f: f.stat().st_size)
        os.truncate(biggest, biggest.stat().st_size // 2)
    finish(runs.resume(run_dir))
    assert_exact(run_dir, uninterrupted(runs, mapping))
    assert metrics(run_dir)["attempts"] == 2


# -- what resume refuses -----------------------------------------------------------------


def one_line_exit_2(proc: subprocess.Popen, *phrases: str) -> None:
    err = finish(proc, 2)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert all(p in lines[0] for p in phrases), err


@pytest.mark.parametrize("mapping", ["multi"], indirect=True)
def test_a_finished_run_is_not_resumed(run_dir, runs, mapping):
    finish(runs.run(run_dir, mapping, "--checkpoint-interval", "1"))
    before = (run_dir / "outputs.jsonl").read_text()
    one_line_exit_2(runs.resume(run_dir), str(run_dir), "is finished", "nothing to resume")
    assert (run_dir / "outputs.jsonl").read_text() == before


@pytest.mark.parametrize("mapping", ["multi"], indirect=True)
def test_a_directory_that_is_no_run_is_not_resumed(tmp_path, runs):
    one_line_exit_2(runs.resume(tmp_path), str(tmp_path))
    one_line_exit_2(runs.resume(tmp_path / "missing"), str(tmp_path / "missing"))


@pytest.mark.parametrize("mapping", ["hybrid_multi"], indirect=True)
def test_a_run_still_going_is_not_resumed(run_dir, runs, mapping):
    proc = runs.run(run_dir, mapping, "--checkpoint-interval", "1")
    wait_until(lambda: running(run_dir, proc), proc, "status.json of the run")
    one_line_exit_2(runs.resume(run_dir), str(run_dir))
    proc.send_signal(signal.SIGTERM)
    finish(proc, 128 + signal.SIGTERM)  # the refusal left the run alone
    assert metrics(run_dir)["checkpoint_generation"] >= 1
