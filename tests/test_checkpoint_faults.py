"""Faults around checkpoints that must never end a run "ok" with a wrong result
(issue 25): several signals during a stop, a full disk at every write the run makes
(through HPCFLOW_FAIL_WRITE, and a real tmpfs), bits flipped in the files a resume
reads, pinned instances killed again and again. Each case ends either exact, or failed
or interrupted with one clear line and a run directory that `hpcflow resume` takes to
the exact result (or refuses, naming the damaged file). Exact means equal to what
collections.Counter computes over the workflow's corpus (tests/wordcount_workflow.py)."""

from __future__ import annotations

import json
import os
import pickle
import random
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import require
from test_checkpoint_resume import CPUS, WORKFLOW, Runs, finish, generations, metrics, running, wait_until
from wordcount_workflow import expected_outputs, outputs_of

from hpcflow.engines.checkpoint import CheckpointStore, Cut

pytestmark = pytest.mark.timeout(300)

SLOW = {"lines": 12, "words": 2, "latency": 1.0, "milestone": 2}  # a tally at 1 s a word: a stop takes a while
QUICK = {"lines": 200, "words": 6, "latency": 0.002, "milestone": 20}
SIGNALS = {"TERM": signal.SIGTERM, "INT": signal.SIGINT}


class FaultRuns(Runs):
    """Runs of the word count with the parameters a test gives."""

    def run(self, run_dir: Path, mapping: str, *extra: str, params: dict = QUICK, env: dict | None = None):
        args = ["run", WORKFLOW, "-m", mapping, "-n", str(CPUS), "--oversubscribe", "--run-dir", str(run_dir)]
        args += [f"-p{k}={v}" for k, v in params.items()]
        if mapping.endswith("_redis"):
            args += ["--redis-url", self.redis_url]
        return self.start(*args, *extra, env=env)


@pytest.fixture
def runs(request):
    callspec = getattr(request.node, "callspec", None)
    mapping = callspec.params.get("mapping", "") if callspec else ""
    url = request.getfixturevalue("redis_server") if mapping.endswith("_redis") else None
    started = FaultRuns(url)
    yield started
    started.close()


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return tmp_path / f"run-{tmp_path.name}"


def exact(run_dir: Path, params: dict) -> None:
    got = outputs_of(run_dir / "outputs.jsonl")
    want = expected_outputs(params["lines"], params["words"], params["milestone"])
    assert got == want, f"twice: {got - want}; missing: {want - got}"


def resume_until_done(runs: FaultRuns, run_dir: Path, params: dict) -> str:
    """`hpcflow resume` as a user runs it: to the end; the result must be exact."""
    err = finish(runs.resume(run_dir))
    exact(run_dir, params)
    assert metrics(run_dir)["status"] == "ok"
    return err


def every_generation_holds_every_pinned_state(run_dir: Path) -> None:
    for gen in generations(run_dir):
        cut = pickle.loads((gen / "coordinator.pkl").read_bytes())
        assert isinstance(cut, Cut)
        finalized = {(pe, i) for pe, ids in cut.finalized.items() for i in ids}
        for pe, i in cut.pinned:
            if (pe, i) not in finalized:
                assert (gen / "states" / f"{pe}.{i}.pkl").is_file(), f"{gen.name} lacks the state of {pe}[{i}]"


def last_line(err: str) -> str:
    assert "Traceback" not in err, err
    return err.strip().splitlines()[-1]


# -- several signals during a stop -------------------------------------------------------


@pytest.mark.parametrize("mapping", ["multi", "hybrid_multi", "hybrid_redis"])
@pytest.mark.parametrize("order", ["TERM TERM", "TERM INT", "INT TERM TERM", "TERM TERM TERM INT"])
def test_signals_during_the_stop_never_lose_a_pinned_state(run_dir, runs, mapping, order):
    """SIGTERM then more signals 0.3 s apart while each tally instance is inside a 1 s
    item: a repeated SIGTERM (scancel sends two) lets the stop's checkpoint finish; a
    later SIGINT stops at once, naming the checkpoint a resume continues from. Either
    way no checkpoint lacks a pinned instance's state and the resume is exact."""
    proc = runs.run(run_dir, mapping, "--checkpoint-interval", "2", params=SLOW)
    wait_until(lambda: (running(run_dir, proc) or {}).get("pes") and generations(run_dir), proc, "a checkpoint")
    sent = [SIGNALS[name] for name in order.split()]
    for i, sig in enumerate(sent):
        if i:
            time.sleep(0.3)
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=180)
    said = last_line(err)
    # a later SIGINT stops at once, unless the stop's checkpoint was written before it came
    stopped_at_once = signal.SIGINT in sent[1:] and "written;" not in said
    assert proc.returncode == 128 + (signal.SIGINT if stopped_at_once else sent[0]), err
    if stopped_at_once:
        assert re.search(r"stopped at once by a second signal \(SIGINT\)", said), said
        assert re.search(r"continues from (checkpoint \d+|the start)", said), said
    else:
        assert re.search(r"stopped by SIG(TERM|INT): checkpoint \d+ written", said), said
    every_generation_holds_every_pinned_state(run_dir)
    assert metrics(run_dir)["status"] == "interrupted"
    resume_until_done(runs, run_dir, SLOW)


# -- a full disk at each write -----------------------------------------------------------

WRITES = [
    "sinks.log",
    "sinks.log:3",
    "coordinator.pkl",
    "coordinator.pkl:2",
    "Count.1.pkl",
    "manifest.json",
    "outputs.jsonl",
    "report.html",
    "status.json",
    "status.json:2",
    "metrics.json",
]


@pytest.mark.parametrize("write", WRITES)
def test_no_space_at_any_write_fails_the_run_in_one_line_and_resume_is_exact(run_dir, runs, write):
    proc = runs.run(run_dir, "hybrid_multi", "--checkpoint-interval", "0.3", env={"HPCFLOW_FAIL_WRITE": write})
    err = finish(proc, 1)
    said = last_line(err)
    assert said.startswith("hpcflow: error: cannot write ") and "No space left on device" in said, said
    assert write.split(":")[0] in said
    try:
        status = metrics(run_dir)["status"]
    except FileNotFoundError:  # metrics.json itself could not be written: none is there
        status = None
    assert status in ("failed", None)
    if (run_dir / "status.json").exists():
        assert json.loads((run_dir / "status.json").read_text())["state"] != "ok"
    assert not list((run_dir / "checkpoint").glob(".tmp-*")), "a half-written generation was left"
    assert "HPCFLOW_FAIL_WRITE" not in (run_dir / "checkpoint" / "run.json").read_text()
    resume_until_done(runs, run_dir, QUICK)


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of 2 MiB (CI runs as root); unmounted at the end."""
    require(os.geteuid() == 0, "root, to mount a tmpfs")
    where = tmp_path / "disk"
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)], capture_output=True)
    require(done.returncode == 0, f"mount -t tmpfs ({done.stderr.decode().strip()})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.mark.parametrize("free_kb", [48, 160, 240, 320, 640])
def test_a_disk_that_fills_up_never_ends_ok_with_a_wrong_result(small_disk, runs, free_kb):
    """A real full disk at some point of the run (the free space left is the parameter):
    the run ends ok and exact, or failed in one line; after space is freed the resume
    is exact."""
    filler = small_disk / "filler"
    total = shutil.disk_usage(small_disk).free
    filler.write_bytes(b"\0" * max(0, total - free_kb * 1024))
    run_dir = small_disk / "run"
    proc = runs.run(run_dir, "hybrid_multi", "--checkpoint-interval", "0.3")
    out, err = proc.communicate(timeout=180)
    if proc.returncode == 0:
        exact(run_dir, QUICK)
        assert metrics(run_dir)["status"] == "ok"
        return
    assert proc.returncode == 1, err
    said = last_line(err)
    assert "hpcflow: error: " in said and "No space left on device" in said, said
    assert not (run_dir / "metrics.json").exists() or metrics(run_dir)["status"] != "ok"
    filler.unlink()
    resume_until_done(runs, run_dir, QUICK)


# -- damaged files under checkpoint/ ----------------------------------------------------


def stopped_with_two_generations(runs: FaultRuns, run_dir: Path) -> list[Path]:
    proc = runs.run(run_dir, "hybrid_multi", "--checkpoint-interval", "0.5")
    wait_until(lambda: len(generations(run_dir)) >= 2, proc, "a second checkpoint generation")
    proc.send_signal(signal.SIGTERM)
    finish(proc, 128 + signal.SIGTERM)
    return generations(run_dir)


def flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x04
    path.write_bytes(bytes(data))


def sinks_bytes(generation: Path) -> int:
    return json.loads((generation / "manifest.json").read_text())["sinks_bytes"]


@pytest.mark.parametrize("target", ["sinks.log of the newest", "coordinator.pkl", "a state", "manifest.json"])
def test_a_flipped_bit_in_the_newest_checkpoint_falls_back_to_the_one_before_and_says_so(run_dir, runs, target):
    older, newest = stopped_with_two_generations(runs, run_dir)[-2:]
    rng = random.Random(target)
    for _ in range(3):  # the stop may come before any output since the checkpoint before: then again
        if target != "sinks.log of the newest" or sinks_bytes(older) < sinks_bytes(newest):
            break
        shutil.rmtree(run_dir)
        older, newest = stopped_with_two_generations(runs, run_dir)[-2:]
    assert target != "sinks.log of the newest" or sinks_bytes(older) < sinks_bytes(newest)
    if target == "sinks.log of the newest":
        path = run_dir / "checkpoint" / "sinks.log"
        at = rng.randrange(sinks_bytes(older), sinks_bytes(newest))
    elif target == "manifest.json":
        path = newest / "manifest.json"
        at = path.read_text().index('"files"') + rng.randrange(12, 40)  # inside a file name or digest
    else:
        path = newest / "coordinator.pkl" if target == "coordinator.pkl" else newest / "states" / "Count.1.pkl"
        at = rng.randrange(path.stat().st_size)
    flip(path, at)
    err = resume_until_done(runs, run_dir, QUICK)
    assert f"checkpoint {int(newest.name)} ({newest}) is damaged" in err, err
    assert f"continues from checkpoint {int(older.name)}, the newest intact one" in err, err
    log = (run_dir / "run.log").read_text()
    assert f"checkpoint {int(newest.name)} ({newest}) is damaged" in log


def test_a_flipped_bit_in_outputs_every_checkpoint_counts_on_is_refused_naming_the_file(run_dir, runs):
    older = stopped_with_two_generations(runs, run_dir)[-2]
    sinks = run_dir / "checkpoint" / "sinks.log"
    flip(sinks, random.Random(3).randrange(20, sinks_bytes(older)))
    before = sinks.read_bytes()
    err = finish(runs.resume(run_dir), 2)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"hpcflow: error: cannot resume {run_dir}") and str(sinks) in lines[0], err
    assert "fails its checksum" in lines[0] and "no intact checkpoint" in lines[0]
    assert sinks.read_bytes() == before, "a refused resume changed the file"


def test_sinks_records_detect_a_flip_anywhere_and_a_torn_tail_is_cut(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoint")
    written = 0
    for n in range(1, 4):
        c = Cut({}, [], {}, {}, [], {}, {}, {}, [], sinks_bytes=written)
        store.write(c, {}, [("Sink", "output", pickle.dumps([n]))])
        written = c.sinks_bytes
    log = store.root / "sinks.log"
    clean = log.read_bytes()
    for at in range(len(clean)):  # every byte: the newest generation's check fails
        flip(log, at)
        with pytest.raises(Exception, match="sinks.log"):
            store.sinks(written)
        log.write_bytes(clean)
    with open(log, "ab") as f:  # a torn append of a checkpoint that never landed
        f.write(b"\x00\x00\x00")
    assert [pickle.loads(b) for _, _, b in store.sinks(written)] == [[1], [2], [3]]
    assert log.read_bytes() == clean


# -- recoveries, unfinished generations ---------------------------------------------------


def test_three_recoveries_are_counted_and_said(run_dir, runs):
    params = {**QUICK, "lines": 600, "latency": 0.01}
    proc = runs.run(run_dir, "hybrid_multi", "--checkpoint-interval", "0.4", params=params)
    killed = []
    for _ in range(3):
        pids = wait_until(lambda: (running(run_dir, proc) or {}).get("pinned_pids"), proc, "pinned_pids")
        pid = pids["Count[1]"]
        newer = wait_until(lambda: generations(run_dir), proc, "a checkpoint")[-1]
        wait_until(lambda: generations(run_dir)[-1] != newer, proc, "a newer checkpoint")  # noqa: B023
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
        wait_until(
            lambda: (running(run_dir, proc) or {}).get("pinned_pids", {}).get("Count[1]") not in killed,  # noqa: B023
            proc,
            "the recovery",
        )
    err = finish(proc)
    exact(run_dir, params)
    assert metrics(run_dir)["recoveries"] == 3
    assert err.count("Count[1] died") == 3 and "the run goes back to checkpoint" in err
    assert (run_dir / "run.log").read_text().count("the run goes back to") == 3


def test_a_resume_removes_unfinished_generations_and_says_a_start_from_scratch(run_dir, runs):
    proc = runs.run(run_dir, "hybrid_multi")  # no interval: the SIGKILL leaves no generation
    wait_until(lambda: running(run_dir, proc), proc, "status.json of the run")
    half = run_dir / "checkpoint" / ".tmp-00000001-99999"
    (half / "states").mkdir(parents=True)
    (half / "coordinator.pkl").write_bytes(b"\x80\x05torn")
    os.killpg(proc.pid, signal.SIGKILL)
    finish(proc, -signal.SIGKILL)
    err = resume_until_done(runs, run_dir, QUICK)
    assert not half.exists()
    assert "no checkpoint to continue from: the resume starts the run from its start" in err


@pytest.mark.parametrize("damage", ["a setting changed", "a bit flipped"])
def test_a_damaged_run_json_is_refused_in_one_line(run_dir, runs, damage):
    proc = runs.run(run_dir, "hybrid_multi", "--checkpoint-interval", "0.5")
    wait_until(lambda: generations(run_dir), proc, "a checkpoint")
    proc.send_signal(signal.SIGTERM)
    finish(proc, 128 + signal.SIGTERM)
    path = run_dir / "checkpoint" / "run.json"
    if damage == "a setting changed":  # still valid JSON: only the checksum tells
        record = json.loads(path.read_text())
        record["argv"][record["argv"].index("-n") + 1] = "8"
        path.write_text(json.dumps(record))
    else:
        flip(path, path.read_text().index('"argv"') + 3)
    err = finish(runs.resume(run_dir), 2)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert str(path) in lines[0] and ("is damaged" in lines[0] or "cannot be read" in lines[0]), err
