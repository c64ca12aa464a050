"""A child asks to be killed with its parent (prctl PDEATHSIG). A parent that died
before the child asked (a launcher SIGKILLed while its workers start) would never
trigger the request: the child would linger as an orphan. Found by the fault schedules
of issue 25 (`--kinds kill_launcher --mappings hybrid_redis --seed 300`, seed 307: a
worker of a resumed run alive 15 s after its launcher was SIGKILLed)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
from conftest import ROOT

FORK_THEN_ASK_LATE = """
import os, sys, time
from hpcflow.lifeline import signal_when_parent_dies
middle = os.getpid()
child = os.fork()
if child == 0:
    time.sleep(0.5)  # the middle process is gone by now
    open(sys.argv[1] + ".asking", "w").write(str(os.getppid()))
    signal_when_parent_dies(9, parent=middle)
    open(sys.argv[1], "w").write("still here")
    time.sleep(30)
    os._exit(0)
print(child, flush=True)
os._exit(0)
"""


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_child_whose_parent_died_before_it_asked_dies_at_once(tmp_path):
    marker = tmp_path / "survived"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", FORK_THEN_ASK_LATE, str(marker)], capture_output=True, text=True, env=env, timeout=60
    )
    child = int(out.stdout)
    deadline = time.monotonic() + 20
    while not gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    survived = not gone(child)
    if survived:
        os.kill(child, 9)
    asking = tmp_path / "survived.asking"
    assert asking.exists()  # it reached the request, orphaned already
    assert not survived and not marker.exists()
