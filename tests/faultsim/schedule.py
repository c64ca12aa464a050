"""A fault schedule, drawn from a seed and nothing else: the same seed gives the same
mapping, settings, faults and moments on every machine (the interleaving with the run
itself is the machine's; a replay hits the same moments of a run's clock, not the
same instructions).

A fault belongs to an attempt (0: `hpcflow run`, 1...: the `hpcflow resume`s after it)
and strikes `at` seconds after that attempt's status.json says it runs; some act between
attempts instead (`corrupt`, `other_settings`, `disk_full`'s clean-up), as a user's
storage or a user would.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

MAPPINGS = ("multi", "hybrid_multi", "dyn_multi", "hybrid_redis")

# kind -> the mappings it applies to (None: all)
KINDS: dict[str, tuple[str, ...] | None] = {
    "signal": None,  # one SIGTERM or SIGINT
    "signals": None,  # two or three, some during the stop
    "signal_in_checkpoint": None,  # SIGTERM/SIGINT while a checkpoint is being written
    "kill_launcher": None,  # SIGKILL of the launcher (alone, or with its process group)
    "kill_pinned": None,  # SIGKILL of a pinned instance (a root, a stateful instance; all in multi)
    "kill_pool": ("dyn_multi", "hybrid_multi", "hybrid_redis"),  # SIGKILL of a pool worker
    "disk_full": None,  # the run directory's file system fills up (ENOSPC), later freed
    "fail_write": None,  # the N-th write of one file fails with ENOSPC (HPCFLOW_FAIL_WRITE, durable.py)
    "corrupt": None,  # bytes flipped or cut in a file under checkpoint/ after a stop
    "other_settings": None,  # the next resume with other settings (flags or the config file)
    "redis_kill": ("hybrid_redis",),  # the Redis server SIGKILLed, restarted empty before the resume
    "redis_pause": ("hybrid_redis",),  # the Redis server SIGSTOPped for a while
}
STOPPING = ("signal", "signals", "signal_in_checkpoint", "kill_launcher")  # end the attempt they strike
MAX_ATTEMPTS = 6  # the run and up to five resumes; faults strike the first three


@dataclass(frozen=True)
class Fault:
    kind: str
    attempt: int
    at: float  # seconds after the attempt started running
    detail: dict = field(default_factory=dict)

    def __str__(self) -> str:
        extra = ",".join(f"{k}={v}" for k, v in sorted(self.detail.items()))
        return f"{self.kind}@{self.attempt}:{self.at:.2f}s" + (f"[{extra}]" if extra else "")


@dataclass(frozen=True)
class Schedule:
    seed: int
    mapping: str
    cpus: int
    interval: float  # --checkpoint-interval
    params: dict
    faults: tuple[Fault, ...]
    kinds_drawn: tuple[str, ...] | None = None  # the kinds it was drawn from (None: all)

    def of_attempt(self, attempt: int) -> list[Fault]:
        return sorted((f for f in self.faults if f.attempt == attempt), key=lambda f: f.at)

    def kinds(self) -> list[str]:
        return [f.kind for f in self.faults]

    def replay(self) -> str:
        """The commands that play this schedule again."""
        kinds = f" HPCFLOW_FAULT_KINDS={','.join(self.kinds_drawn)}" if self.kinds_drawn is not None else ""
        bench = f" --kinds {','.join(self.kinds_drawn)}" if self.kinds_drawn is not None else ""
        return (
            f"HPCFLOW_FAULT_SEED={self.seed}{kinds} pytest -q tests/test_fault_schedules.py, or "
            f"python experiments/bench/faults.py --seed {self.seed} --schedules 1{bench}"
        )

    def __str__(self) -> str:
        faults = " ".join(map(str, self.faults)) or "none"
        return f"seed {self.seed}: {self.mapping} -n {self.cpus}, checkpoint every {self.interval} s, {faults}"


def draw(seed: int, mappings: tuple[str, ...] = MAPPINGS, kinds: tuple[str, ...] | None = None) -> Schedule:
    """The schedule of `seed`. `kinds` limits the faults drawn (CI leaves out a kind that
    still finds a known defect); `mappings` the mappings."""
    rng = random.Random(f"hpcflow-faults:{seed}")
    mapping = rng.choice(mappings)
    allowed = [k for k, only in KINDS.items() if (only is None or mapping in only) and (kinds is None or k in kinds)]
    stateful = 0 if mapping.startswith("dyn_") else 1
    lines = rng.choice((40, 60) if mapping.endswith("_redis") else (40, 60, 80))  # Redis: each item costs more
    params = {"lines": lines, "seed": rng.randrange(1000), "stateful": stateful}
    cpus = rng.choice((4, 5)) if not stateful else rng.choice((7, 8))
    interval = rng.choice((0.2, 0.3, 0.5, 1.0))
    faults: list[Fault] = []
    for attempt in range(3):
        if attempt == 0:
            n = rng.choice((1, 1, 2, 2, 3))
        else:
            n = 1 if rng.random() < 0.35 else 0
        for _ in range(n):
            if not allowed:
                break
            kind = rng.choice(allowed)
            faults.append(Fault(kind, attempt, round(rng.uniform(0.05, 1.0), 3), _detail(kind, rng, mapping)))
    drawn = None if kinds is None or set(KINDS) <= set(kinds) else tuple(kinds)
    return Schedule(seed, mapping, cpus, interval, params, tuple(faults), drawn)


def _detail(kind: str, rng: random.Random, mapping: str) -> dict:
    if kind == "signal":
        return {"signals": rng.choice(("TERM", "INT"))}
    if kind in ("signals", "signal_in_checkpoint"):
        n = rng.choice((1, 2, 3)) if kind == "signal_in_checkpoint" else rng.choice((2, 3))
        return {
            "signals": "+".join(rng.choice(("TERM", "INT")) for _ in range(n)),
            "gap": rng.choice((0.0, 0.02, 0.1, 0.3, 0.8)),
        }
    if kind == "kill_launcher":
        return {"group": rng.random() < 0.5}
    if kind == "kill_pinned":
        return {"pick": rng.randrange(1000)}
    if kind == "kill_pool":
        return {"pick": rng.randrange(1000), "times": rng.choice((1, 1, 2))}
    if kind == "corrupt":
        return {"pick": rng.randrange(10**6), "how": rng.choice(("flip", "flip", "cut", "zero")), "where": rng.random()}
    if kind == "other_settings":
        return {"change": rng.choice(_CHANGES[mapping])}
    if kind == "fail_write":
        return {"file": rng.choice(WRITTEN), "nth": rng.choice((1, 2, 3, 5, 8))}
    if kind == "redis_pause":
        return {"for": rng.choice((0.3, 1.0, 3.0))}
    return {}


# the files whose writes HPCFLOW_FAIL_WRITE can fail ("*": every file)
WRITTEN = (
    "outputs.jsonl",
    "metrics.json",
    "status.json",
    "report.html",
    "run.json",
    "sinks.log",
    "manifest.json",
    "coordinator.pkl",
    "*",
)

# what a user may change before a resume: its CPUs or checkpoint interval on the command
# line, or the config file the run was started with (its mapping, CPUs, parameters)
_COMMON = ("flag_cpus", "flag_interval", "config_cpus", "config_params", "config_latency")
_CHANGES = {
    "multi": (*_COMMON, "config_mapping:hybrid_multi", "config_mapping:dyn_multi"),
    "hybrid_multi": (*_COMMON, "config_mapping:multi", "config_mapping:hybrid_redis"),
    "hybrid_redis": (*_COMMON, "config_mapping:hybrid_multi", "config_mapping:multi"),
    "dyn_multi": (*_COMMON, "config_mapping:multi", "config_mapping:hybrid_multi"),
}
