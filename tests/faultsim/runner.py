"""Plays one schedule against the real `hpcflow` command and judges every end.

The invariant, checked at the end of every attempt:
- a run that says `ok` (exit 0, or metrics.json's status) has outputs equal to `simple`'s;
- a refusal is exit 2 with one line on stderr and no traceback;
- any other end (failed, interrupted, killed) leaves no traceback, a last line from
  hpcflow, metrics.json not `ok` and status.json not `running` (the launcher SIGKILLed
  and a full disk excepted: they may leave the previous ones), no process behind, and is
  resumed, as a user would (`hpcflow resume RUN_DIR`, after restarting a lost Redis
  server or freeing the disk), until it is done or refused.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import yaml

from . import inject
from .schedule import MAX_ATTEMPTS, Fault, Schedule
from .workflow import expected_outputs, outputs_of, simple_outputs

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = Path(__file__).with_name("workflow.py")
ATTEMPT_TIMEOUT = 60.0  # an attempt of a run of a few seconds that lasts this long hangs
LINGER_S = 15.0  # processes of an attempt still there this long after it ended were left behind
OK_ENDS = ("exact", "resumed-exact", "refused")
BETWEEN = ("corrupt", "other_settings", "fail_write")  # act before or after an attempt, not at a moment of it
UNEXPECTED = "(--debug shows the traceback)"  # how `hpcflow` ends on an exception it did not expect
FAIL_WRITE = "HPCFLOW_FAIL_WRITE"  # durable.py's fault-injection point
_NEW_CPUS = {7: 5, 8: 10, 4: 6, 5: 3}  # another CPU count: some too few for the mapping (a refusal)


@dataclass
class Attempt:
    number: int
    command: list[str]
    code: int | None = None
    stderr: str = ""
    status: str | None = None  # metrics.json's status after it
    seconds: float = 0.0
    injected: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    schedule: Schedule
    result: str  # exact | resumed-exact | refused | WRONG | crash | hang | linger | unfinished
    problem: str = ""
    injected: Counter = field(default_factory=Counter)  # kind -> times it struck
    attempts: list[Attempt] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def holds(self) -> bool:
        return self.result in OK_ENDS

    def report(self) -> str:
        lines = [f"{self.result}: {self.problem}" if self.problem else self.result, str(self.schedule)]
        lines.append(f"replay: {self.schedule.replay()}")
        for a in self.attempts:
            lines.append(
                f"  attempt {a.number}: {' '.join(a.command[2:])} -> exit {a.code}, status {a.status} ({a.seconds} s)"
            )
            lines.extend(f"    injected {one}" for one in a.injected)
            lines.extend(f"    stderr: {one}" for one in a.stderr.strip().splitlines()[-12:])
        return "\n".join(lines)


_EXPECTED: dict[tuple, Counter] = {}
_EXPECTED_LOCK = threading.Lock()


def expected(params: dict) -> Counter:
    """`simple`'s outputs for these parameters (computed once), checked against the corpus."""
    k = tuple(sorted(params.items()))
    with _EXPECTED_LOCK:
        if k not in _EXPECTED:
            got = simple_outputs(**{**params, "latency": 0})  # the outputs do not depend on it
            assert got == expected_outputs(**params), f"simple disagrees with the corpus for {params}"
            _EXPECTED[k] = got
        return _EXPECTED[k]


class Player:
    def __init__(self, schedule: Schedule, workdir: Path, redis_binary: str | None = None):
        self.s = schedule
        self.workdir = workdir
        self.run_dir = workdir / "run"
        self.config_path = workdir / "config.yaml"
        self.outcome = Outcome(schedule, "unfinished")
        self.redis: inject.RedisServer | None = None
        self.disk: inject.SmallDisk | None = None
        self.redis_binary = redis_binary
        self.extra: list[str] = []  # flags of the next resume
        self.changed = False  # the next resume runs with other settings
        self.sent: set[int] = set()  # the signals sent to this attempt's launcher
        self.write_fails = False  # this attempt runs with HPCFLOW_FAIL_WRITE

    # -- the whole schedule --------------------------------------------------------------
    def play(self) -> Outcome:
        start = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._setup()
            self._attempts()
        finally:
            self.outcome.seconds = round(time.monotonic() - start, 2)
            if self.redis is not None:
                self.redis.close()
            if self.disk is not None:
                self.disk.close()
        return self.outcome

    def _setup(self) -> None:
        kinds = set(self.s.kinds())
        if self.s.mapping.endswith("_redis"):
            if self.redis_binary is None:
                raise RuntimeError("redis-server is needed for a *_redis schedule")
            self.redis = inject.RedisServer(self.redis_binary, self.workdir)
        if "disk_full" in kinds:
            if not inject.SmallDisk.possible():
                raise RuntimeError("disk_full needs root (a tmpfs mount)")
            self.disk = inject.SmallDisk(self.run_dir)
        self._write_config(self._config())

    def _config(self) -> dict:
        config = {
            "workflow": str(WORKFLOW),
            "mapping": self.s.mapping,
            "cpus": self.s.cpus,
            "params": dict(self.s.params),
        }
        if self.redis is not None:
            config["redis_url"] = self.redis.url
        return config

    def _write_config(self, config: dict) -> None:
        self.config_path.write_text(yaml.safe_dump(config))

    def _attempts(self) -> None:
        command = ["run", "--config", str(self.config_path), "--oversubscribe", "--run-dir", str(self.run_dir)]
        command += ["--checkpoint-interval", str(self.s.interval)]
        for number in range(MAX_ATTEMPTS):
            attempt = Attempt(number, [sys.executable, "-m", "hpcflow", *command, "-q", *self.extra])
            self.outcome.attempts.append(attempt)
            end = self._attempt(attempt)
            if end is not None:
                return
            self._between(number)
            command = ["resume", str(self.run_dir)]
        self._verdict("unfinished", f"not done after {MAX_ATTEMPTS} attempts")

    def _verdict(self, result: str, problem: str = "") -> bool:
        self.outcome.result, self.outcome.problem = result, problem
        return True

    # -- one attempt ---------------------------------------------------------------------
    def _attempt(self, attempt: Attempt) -> bool | None:
        """Run it, strike its faults, judge its end: True when the schedule has ended."""
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        env.pop(FAIL_WRITE, None)
        self.write_fails = False
        for fault in self.s.of_attempt(attempt.number):
            if fault.kind == "fail_write":  # from the start: the attempt's N-th write of that file fails
                env[FAIL_WRITE] = f"{fault.detail['file']}:{fault.detail['nth']}"
                attempt.injected.append(f"{fault}: {env[FAIL_WRITE]}")
                self.outcome.injected[fault.kind] += 1
                self.write_fails = True
        proc = subprocess.Popen(
            attempt.command,
            cwd=self.workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        reader = _Drain(proc)
        began = time.monotonic()
        killed_launcher = False
        self.sent = set()
        started = self._wait_running(proc)
        if started is not None:
            for fault in (f for f in self.s.of_attempt(attempt.number) if f.kind not in BETWEEN):
                delay = started + fault.at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                if proc.poll() is not None:
                    break
                done = self._strike(fault, proc)
                if done:
                    attempt.injected.append(f"{fault}: {done}")
                    self.outcome.injected[fault.kind] += 1
                    killed_launcher |= fault.kind == "kill_launcher"
        try:
            proc.wait(timeout=ATTEMPT_TIMEOUT)
        except subprocess.TimeoutExpired:
            _kill_session(proc.pid)
            proc.wait()
            reader.join()
            attempt.code, attempt.stderr = proc.returncode, reader.err
            return self._verdict("hang", f"attempt {attempt.number} still running after {ATTEMPT_TIMEOUT} s")
        reader.join()
        attempt.code, attempt.stderr = proc.returncode, reader.err
        attempt.seconds = round(time.monotonic() - began, 2)
        (self.workdir / f"attempt-{attempt.number}.stderr").write_text(attempt.stderr)
        left = _wait_session_empty(proc.pid, LINGER_S)
        if left:
            _kill_session(proc.pid)
            return self._verdict("linger", f"attempt {attempt.number} left processes: {left}")
        return self._judge(attempt, killed_launcher)

    def _wait_running(self, proc: subprocess.Popen) -> float | None:
        """The moment status.json says this very process runs (None: it ended first)."""
        deadline = time.monotonic() + ATTEMPT_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            s = self._json("status.json")
            if isinstance(s, dict) and s.get("pid") == proc.pid and s.get("state") == "running":
                return time.monotonic()
            time.sleep(0.005)
        return None

    def _strike(self, fault: Fault, proc: subprocess.Popen) -> str | None:
        d = fault.detail
        if "signals" in d and fault.kind.startswith("signal"):
            self.sent.update(int(inject.SIGNALS[name]) for name in d["signals"].split("+"))
        if fault.kind == "signal":
            return inject.send_signals(proc.pid, d["signals"], 0.0)
        if fault.kind == "signals":
            return inject.send_signals(proc.pid, d["signals"], d["gap"])
        if fault.kind == "signal_in_checkpoint":
            saw = inject.wait_for_checkpoint_write(self.run_dir / "checkpoint", lambda: proc.poll() is None)
            sent = inject.send_signals(proc.pid, d["signals"], d["gap"])
            return f"{saw}: {sent}" if sent else None
        if fault.kind == "kill_launcher":
            return inject.kill_launcher(proc.pid, d["group"])
        if fault.kind == "kill_pinned":  # status.json names them from its first update after the start
            deadline = time.monotonic() + 3.0
            while not (pinned := self._pinned(proc)) and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            return inject.kill_one(pinned, d["pick"])
        if fault.kind == "kill_pool":
            killed = []
            for i in range(d["times"]):
                if i:
                    time.sleep(0.2)
                one = inject.kill_one(inject.pool_workers(proc.pid, set(self._pinned(proc))), d["pick"] + i)
                if one:
                    killed.append(one)
            return ",".join(killed) or None
        if fault.kind == "disk_full":
            return self.disk.fill()
        if fault.kind == "redis_kill":
            return self.redis.kill() if self.redis.alive() else None
        if fault.kind == "redis_pause":
            return self.redis.pause(d["for"]) if self.redis.alive() else None
        raise ValueError(f"unknown fault kind {fault.kind}")

    def _pinned(self, proc: subprocess.Popen) -> list[int]:
        s = self._json("status.json")
        if not isinstance(s, dict) or s.get("pid") != proc.pid:
            return []
        return [pid for pid in (s.get("pinned_pids") or {}).values() if isinstance(pid, int)]

    def _json(self, name: str):
        try:
            return json.loads((self.run_dir / name).read_text())
        except (OSError, ValueError):
            return None

    # -- judging an end ------------------------------------------------------------------
    def _judge(self, attempt: Attempt, killed_launcher: bool) -> bool | None:
        code, err = attempt.code, attempt.stderr
        signalled = self.sent
        m = self._json("metrics.json")
        attempt.status = m.get("status") if isinstance(m, dict) else None
        says_ok = code == 0 or attempt.status == "ok"
        if says_ok:
            return self._judge_ok(attempt, killed_launcher)
        if "Traceback" in err:
            return self._verdict("crash", f"attempt {attempt.number}: a traceback (exit {code})")
        if UNEXPECTED in err:  # cli.main's line for an exception no part of hpcflow expected: a bug
            bare = next(one for one in err.splitlines() if UNEXPECTED in one)
            return self._verdict("crash", f"attempt {attempt.number}: an unexpected error (exit {code}): {bare}")
        if code == 2:  # one line that says why ("hpcflow: error: ..."), beside at most hpcflow's own context
            lines = err.strip().splitlines()
            errors = [one for one in lines if one.startswith("hpcflow: error:")]
            if len(errors) != 1 or not all(one.startswith("hpcflow: ") for one in lines):
                return self._verdict("crash", f"attempt {attempt.number}: exit 2 without one clear line: {lines[-3:]}")
            if self.changed:  # refused the other settings: the user resumes with the run's own
                self._write_config(self._config())
                self.extra, self.changed = [], False
                return None
            if (self.redis is not None and not self.redis.alive()) or (self.disk is not None and self.disk.full):
                return None  # refused for want of its server or of space: the user brings them back (_between)
            return self._verdict("refused", errors[0])
        disk_full = (self.disk is not None and self.disk.full) or self.write_fails
        if code < 0 and not (killed_launcher and code == -signal.SIGKILL) and -code not in signalled:
            return self._verdict("crash", f"attempt {attempt.number}: the launcher died of signal {-code}")
        if code >= 0:
            last = err.strip().splitlines()[-1:] or [""]
            if not last[0].startswith("hpcflow"):
                return self._verdict("crash", f"attempt {attempt.number}: exit {code}, last line {last[0]!r}")
        if (code >= 0 or -code in signalled) and not disk_full:
            # a late SIGTERM/SIGINT may end the launcher by its default action once the
            # run has stopped (as 143/130 would): what it leaves must still be right
            if attempt.status is None:
                return self._verdict("crash", f"attempt {attempt.number}: exit {code} and no metrics.json")
            s = self._json("status.json")
            if isinstance(s, dict) and s.get("state") == "running":
                return self._verdict("crash", f"attempt {attempt.number}: exit {code}, status.json still 'running'")
        return None

    def _judge_ok(self, attempt: Attempt, killed_launcher: bool) -> bool:
        want = expected(self.s.params)
        try:
            got = outputs_of(self.run_dir / "outputs.jsonl")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return self._verdict("WRONG", f"attempt {attempt.number} says ok, outputs.jsonl unreadable: {exc}")
        if got != want:
            extra, missing = got - want, want - got
            return self._verdict(
                "WRONG",
                f"attempt {attempt.number} says ok (exit {attempt.code}); {sum(extra.values())} outputs too many, "
                f"{sum(missing.values())} missing; e.g. extra {list(extra)[:2]}, missing {list(missing)[:2]}",
            )
        if attempt.code not in (0, -signal.SIGKILL) or (attempt.code != 0 and not killed_launcher):
            return self._verdict("crash", f"attempt {attempt.number}: metrics.json says ok but exit {attempt.code}")
        if attempt.status != "ok":
            return self._verdict("crash", f"attempt {attempt.number}: exit 0 but metrics.json says {attempt.status}")
        return self._verdict("exact" if attempt.number == 0 else "resumed-exact")

    # -- between attempts: what the storage or the user does -----------------------------
    def _between(self, number: int) -> None:
        if self.redis is not None and not self.redis.alive():
            self.redis.start()  # the operator brings the server back, empty
        if self.disk is not None and self.disk.full:
            self.disk.free()  # the user frees space
        for fault in self.s.of_attempt(number):
            if fault.kind == "corrupt":
                d = fault.detail
                done = inject.corrupt(self.run_dir / "checkpoint", d["pick"], d["how"], d["where"])
                self._note(number, fault, done)
            elif fault.kind == "other_settings":
                self._note(number, fault, self._change(fault.detail["change"]))

    def _note(self, number: int, fault: Fault, done: str | None) -> None:
        if done:
            self.outcome.attempts[number].injected.append(f"{fault}: {done}")
            self.outcome.injected[fault.kind] += 1

    def _change(self, change: str) -> str:
        config = self._config()
        new_cpus = _NEW_CPUS[self.s.cpus]
        if change == "flag_cpus":
            self.extra = ["-n", str(new_cpus)]
        elif change == "flag_interval":
            self.extra = ["--checkpoint-interval", "0.7"]
        elif change == "config_cpus":
            config["cpus"] = new_cpus
        elif change == "config_params":
            config["params"].update(lines=config["params"]["lines"] + 40, seed=config["params"]["seed"] + 1)
        elif change == "config_latency":
            config["params"]["latency"] = 0.001
        elif change.startswith("config_mapping:"):
            config["mapping"] = change.split(":", 1)[1]
        else:
            raise ValueError(f"unknown change {change}")
        self._write_config(config)
        self.changed = True
        return change


class _Drain:
    """Reads a child's stdout and stderr to their end (a full pipe would stop it)."""

    def __init__(self, proc: subprocess.Popen):
        self.err = ""
        self._threads = [
            threading.Thread(target=self._read, args=(proc.stdout, False), daemon=True),
            threading.Thread(target=self._read, args=(proc.stderr, True), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _read(self, stream, keep: bool) -> None:
        data = stream.read()
        if keep:
            self.err = data

    def join(self) -> None:
        for t in self._threads:  # orphaned workers may hold the pipes: the linger check names them
            t.join(timeout=LINGER_S)


def _session(sid: int) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == sid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return found


def _wait_session_empty(sid: int, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := _session(sid)) and time.monotonic() < deadline:
        time.sleep(0.2)  # each look reads every process of the machine
    return [_describe(p) for p in left]


def _describe(proc: psutil.Process) -> str:
    try:
        return f"{proc.pid} ({' '.join(proc.cmdline())[:120]}, parent {proc.ppid()})"
    except psutil.Error:
        return str(proc.pid)


def _kill_session(sid: int) -> None:
    for proc in _session(sid):
        try:
            proc.kill()
        except psutil.Error:
            pass


def play(schedule: Schedule, base: Path, redis_binary: str | None, keep: bool = False) -> Outcome:
    """Plays `schedule` in `base/s<seed>` (removed afterwards unless it failed or `keep`)."""
    workdir = base / f"s{schedule.seed}"
    outcome = Player(schedule, workdir, redis_binary).play()
    if outcome.holds and not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return outcome
