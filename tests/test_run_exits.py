"""How `hpcflow run` ends, seen by its user: every way out writes metrics.json with its
status and error text, status.json follows the run, `hpcflow status` reads it (while
the run goes, after it ended, after it was killed), and Ctrl-C says what it does."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

from hpcflow.progress import Monitor, PEProgress, Snapshot, describe, read_status, write_status

pytestmark = pytest.mark.timeout(120)

LAMBDA = """
from hpcflow import ProducerPE, WorkflowGraph

class Functions(ProducerPE):
    def _process(self, inputs):
        return lambda x: x

def build():
    graph = WorkflowGraph()
    graph.add(Functions())
    return graph, 2
"""


def start_run(run_dir: Path, *args: str) -> subprocess.Popen:
    """`hpcflow run` in the background: a slow pipeline, 2 workers."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "hpcflow", "run", "pipeline", "-p", "items=5000", "-p", "latency=0.01"]
    cmd += ["--run-dir", str(run_dir), *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_items(run_dir: Path, proc: subprocess.Popen, at_least: int = 1) -> Snapshot:
    """The first status.json of the run that shows items done downstream of the source."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        snap = read_status(run_dir)
        if snap is not None and snap.state == "running" and snap.pes and snap.pes[-1].done >= at_least:
            return snap
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"the run showed no progress in status.json: {proc.communicate()}")


def wait_for_status(run_dir: Path) -> None:
    """Until the run has written its first status.json (60 s at most)."""
    deadline = time.monotonic() + 60
    while read_status(run_dir) is None and time.monotonic() < deadline:
        time.sleep(0.05)


def metrics_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def test_status_follows_a_running_run_and_its_end(tmp_path):
    run_dir = tmp_path / "run"
    proc = start_run(run_dir, "-m", "dyn_multi", "-n", "2", "--oversubscribe")
    snap = wait_for_items(run_dir, proc)
    assert snap.workflow == "pipeline" and snap.mapping == "dyn_multi"
    assert [p.name for p in snap.pes] == ["Source", "Stage", "Stage1", "Stage2"]
    assert snap.pes[0].total == 5000  # the input size: what the ETA is reckoned from
    status = run_cli("status", str(run_dir))
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0].startswith("running pipeline on dyn_multi: ")
    source = lines[1].split()
    assert source[0] == "Source" and source[1].endswith("/5000") and source[2:5] == ["done", source[3], "queued"]
    assert lines[-1].startswith("  (status.json written") and f"by process {proc.pid}" in lines[-1]
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    after = run_cli("status", str(run_dir)).stdout.splitlines()
    assert after[0].startswith("interrupted pipeline on dyn_multi: ")
    assert after[-1].startswith("  stopped by SIGTERM: checkpoint ") and "hpcflow resume" in after[-1]
    assert after[-2].startswith("  checkpoint ")  # what `hpcflow resume` would go on from
    m = metrics_of(run_dir)
    assert m["status"] == "interrupted" and m["error"].startswith(after[-1].strip())


def test_status_of_a_killed_run_says_its_process_is_gone(tmp_path):
    run_dir = tmp_path / "run"
    proc = start_run(run_dir, "-m", "simple", "-q")
    wait_for_status(run_dir)
    proc.kill()
    proc.communicate(timeout=30)
    lines = run_cli("status", str(run_dir)).stdout.splitlines()
    assert lines[0].startswith("running pipeline on simple")  # the last word the run wrote...
    assert f"but its process {proc.pid} on " in lines[-1] and "the run was killed" in lines[-1]


def test_status_of_no_run_directory_is_bad_input(tmp_path):
    out = run_cli("status", str(tmp_path))
    assert out.returncode == 2
    expected = f"{tmp_path} is no run directory (it has no status.json); give one that `hpcflow run` made"
    assert out.stderr == f"hpcflow: error: {expected}\n"


def test_ctrl_c_on_simple_stops_at_once_and_still_writes_the_run_directory(tmp_path):
    run_dir = tmp_path / "run"
    proc = start_run(run_dir, "-m", "simple", "-q")
    wait_for_status(run_dir)
    time.sleep(0.5)  # let items flow
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.splitlines()[-1].startswith("hpcflow: stopped by SIGINT: simple stops at once")  # a stop, not an error
    assert out == ""  # stdout names the directory of a run that finished, on stderr otherwise
    assert f"hpcflow: run directory {run_dir}" in err
    m = metrics_of(run_dir)
    assert m["status"] == "interrupted" and m["error"].startswith("stopped by SIGINT")
    done = m["items"]["Stage2"]
    assert 0 < done < 5000
    written = len((run_dir / "outputs.jsonl").read_text().splitlines())
    assert written in (done - 1, done)  # the item Stage2 was in when the signal came is counted, not written
    assert read_status(run_dir).state == "interrupted"


def test_a_second_ctrl_c_stops_at_once(tmp_path):
    run_dir = tmp_path / "run"
    proc = start_run(run_dir, "-m", "dyn_multi", "-n", "2", "--oversubscribe", "-q")
    wait_for_items(run_dir, proc)
    proc.send_signal(signal.SIGINT)
    message = proc.stderr.readline()  # said at once, unless the checkpoint was written first
    assert message.startswith("hpcflow: SIGINT: writing a checkpoint") or message.startswith("hpcflow: interrupted")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    m = metrics_of(run_dir)
    # the second signal stops the run at once, naming what a resume continues from, unless the
    # checkpoint was written before it came
    assert m["status"] == "interrupted"
    at_once = m["error"].startswith("stopped at once by a second signal (SIGINT)") and "continues from" in m["error"]
    assert at_once or m["error"].startswith("stopped by SIGINT: checkpoint "), m["error"]


def test_simple_refuses_items_no_parallel_mapping_could_send(tmp_path):
    (tmp_path / "lambdas.py").write_text(textwrap.dedent(LAMBDA))
    out = run_cli("run", "lambdas.py", "--run-dir", "out", "-q", cwd=tmp_path)
    assert out.returncode == 1
    last = out.stderr.splitlines()[-1]
    assert last.startswith("hpcflow: error: PE Functions[0] failed on item ")
    assert "UsageError: its output to 'output' cannot be pickled (" in last and "--no-pickle-check" in last
    assert metrics_of(tmp_path / "out")["status"] == "failed"
    unchecked = run_cli("run", "lambdas.py", "--run-dir", "out2", "-q", "--no-pickle-check", cwd=tmp_path)
    assert unchecked.returncode == 0, unchecked.stderr


def test_status_json_is_replaced_whole(tmp_path):
    """Written beside and renamed over: a reader sees the old file or the new, never half."""
    snap = Snapshot(state="running", workflow="w", mapping="simple", processes=1)
    write_status(tmp_path, snap)
    inode = (tmp_path / "status.json").stat().st_ino
    snap.elapsed_s = 1.5
    write_status(tmp_path, snap)
    assert (tmp_path / "status.json").stat().st_ino != inode
    assert read_status(tmp_path).elapsed_s == 1.5
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_monitor_finish_keeps_the_per_pe_picture(tmp_path):
    monitor = Monitor(tmp_path)
    monitor.finish(Snapshot(state="failed", workflow="w", mapping="m", last_error="PE X failed on item 1: E"))
    assert read_status(tmp_path).last_error == "PE X failed on item 1: E"


def test_the_eta_covers_feeding_the_roots_and_draining_the_queues():
    feeding = Snapshot(state="running", pes=[PEProgress("A", 30, 0, 3.0, 60), PEProgress("B", 20, 8, 4.0)])
    assert feeding.eta_s == 10.0  # 30 inputs left at 3 a second
    draining = Snapshot(state="running", pes=[PEProgress("A", 60, 0, 0.0, 60), PEProgress("B", 52, 8, 4.0)])
    assert draining.eta_s == 2.0  # the roots are done: 8 queued at 4 a second
    unknown = Snapshot(state="running", pes=[PEProgress("A", 5, 0, 1.0), PEProgress("B", 5, 0, 1.0)])
    assert unknown.eta_s is None  # no input size: no ETA


def test_status_lines_say_nothing_false():
    """A failed run is not said to have `no errors`; an auto-scaled run's target is set
    beside the pool workers it counts, apart from the pinned instances."""
    failed = Snapshot(state="failed", workflow="w", mapping="dyn_multi", last_error="PE X failed on item 10: E")
    assert "no errors" not in describe(failed)[0] and describe(failed)[-1] == "  last error: PE X failed on item 10: E"
    auto = Snapshot(state="running", workflow="w", mapping="hybrid_auto_multi", workers_active=9, workers=12)
    auto.target, auto.pool_active = 3, 3
    assert "workers 9/12 active (3 in the pool, auto-scaler target 3; 6 pinned), no errors" in describe(auto)[0]


def read_pty(fd: int, until: float) -> str:
    """What a program wrote to the terminal `fd` up to the monotonic time `until`."""
    out = b""
    while time.monotonic() < until:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                out += os.read(fd, 65536)
            except OSError:  # the program ended and closed its side
                break
    return out.decode(errors="replace")


@pytest.mark.parametrize("tty", [True, False])
def test_status_watch_redraws_in_place_on_a_terminal_and_appends_otherwise(tmp_path, tty):
    run_dir = tmp_path / "run"
    proc = start_run(run_dir, "-m", "dyn_multi", "-n", "2", "--oversubscribe", "-q")
    wait_for_items(run_dir, proc)
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="120", LINES="40")
    cmd = [sys.executable, "-m", "hpcflow", "status", str(run_dir), "--watch", "--interval", "0.3"]
    main, side = pty.openpty() if tty else os.pipe()
    watcher = subprocess.Popen(cmd, env=env, stdout=side, stderr=subprocess.STDOUT)
    os.close(side)
    try:
        shown = read_pty(main, time.monotonic() + 4)
    finally:
        watcher.kill()
        watcher.wait()
        os.close(main)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    blocks = shown.count("running pipeline on dyn_multi: ")
    assert blocks >= 2, shown
    if tty:  # each later block moves up over the lines of the one before and clears them
        block = shown.split("\x1b[J")[1]
        assert shown.count(f"\x1b[{block.count(chr(10))}F\x1b[J") == blocks - 1, shown
    else:
        assert "\x1b[" not in shown and "\n\nrunning pipeline on dyn_multi: " in shown
