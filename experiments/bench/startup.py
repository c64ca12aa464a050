"""Start-up: from asking for a run to its first task, hpcflow beside `multiprocessing.Pool`.

Two ways, each in fresh interpreters, hpcflow and Pool alternating, medians of `--repeats`:

- api: in a fresh Python process that has imported what a user imports (`from hpcflow
  import run`, resp. `import multiprocessing`), from `run(graph, inputs, MAPPING, N)`
  (resp. `Pool(N)` and `apply`) to the moment the first task starts (the source's first
  call, resp. the applied function), on the wall clock: what the call imports on first
  use counts, on both sides; also the same again in that process (warm).
- cli: from launching `hpcflow run THIS_FILE --mapping M --cpus N` (resp. `python -c`
  with a Pool of N) to the first task: what a user waits for at a prompt, interpreter
  and imports included.

The graph is one source call whose item a stage takes; each task writes its start time
to the file named by $HPCFLOW_STARTUP_STAMP (the first write wins). Python is run with
bytecode caching on (a package installed by pip has its .pyc files; one that compiles
every module on every start measures the compiler, not the start-up), after one
unmeasured run; set PYTHONPYCACHEPREFIX to keep the caches out of the source tree.

    python experiments/bench/startup.py [--processes 8] [--repeats 5] [--mappings dyn_multi,multi] [--compile]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hpcflow.graph import WorkflowGraph
from hpcflow.pe import IterativePE, ProducerPE

STAMP = "HPCFLOW_STARTUP_STAMP"
HERE = Path(__file__).resolve()


def stamp(_: object = None) -> float:
    """A task: its start time, written once to $HPCFLOW_STARTUP_STAMP."""
    now = time.time()
    path = os.environ.get(STAMP)
    if path:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            return now
        os.write(fd, repr(now).encode())
        os.close(fd)
    return now


class Source(ProducerPE):
    def _process(self, inputs):
        return stamp()


class Stage(IterativePE):
    def _process(self, data):
        stamp()
        return data


def build(**params):
    """The workflow `hpcflow run THIS_FILE` runs: one source call, one stage task."""
    graph = WorkflowGraph()
    source, stage = Source(), Stage()
    graph.connect(source, "output", stage, "input")
    return graph, {source: 1}


API_CHILD = """
import os, sys, time
{setup}
for path in sys.argv[1:]:
    os.environ[{stamp!r}] = path
    t0 = time.time()
    {call}
    print(repr(t0))
"""
HPCFLOW_SETUP = f"""sys.path.insert(0, {str(HERE.parent)!r})
import startup
from hpcflow import run
graph, inputs = startup.build()"""
HPCFLOW_CALL = "run(graph, inputs, {mapping!r}, {n})"
# The Pool's side imports no hpcflow: its task is this copy of `stamp`, defined in __main__.
POOL_SETUP = f"""import multiprocessing, os, time
def stamp():
    now = time.time()
    try:
        fd = os.open(os.environ[{STAMP!r}], os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return now
    os.write(fd, repr(now).encode())
    os.close(fd)
    return now"""
POOL_CALL = "with multiprocessing.get_context('fork').Pool({n}) as pool: pool.apply(stamp)"


NO_BYTECODE: dict[str, str] = {}  # --compile: the environment that makes every start compile every module


def env() -> dict[str, str]:
    out = dict(os.environ)
    out.pop("PYTHONDONTWRITEBYTECODE", None)
    out.pop(STAMP, None)
    return {**out, **NO_BYTECODE}


def read_stamp(path: Path) -> float:
    value = float(path.read_text())
    path.unlink()
    return value


def api(setup: str, call: str, tmp: Path) -> tuple[float, float]:
    """(cold, warm) seconds from the call to the first task, in one fresh interpreter."""
    stamps = [tmp / "cold", tmp / "warm"]
    code = API_CHILD.format(setup=setup, call=call, stamp=STAMP)
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, stamps)], env=env(), capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"startup.py: the api child failed: {done.stderr.strip()[-300:]}")
    starts = [float(line) for line in done.stdout.split()]
    return read_stamp(stamps[0]) - starts[0], read_stamp(stamps[1]) - starts[1]


def cli(command: list[str], tmp: Path) -> float:
    """Seconds from launching `command` to its first task."""
    path = tmp / "cli"
    t0 = time.time()
    done = subprocess.run(command, env={**env(), STAMP: str(path)}, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"startup.py: {' '.join(command[:3])} failed: {done.stderr.strip()[-300:]}")
    return read_stamp(path) - t0


def hpcflow_cli(mapping: str, n: int, tmp: Path) -> list[str]:
    run_dir = tmp / "run"
    return [sys.executable, "-m", "hpcflow", "run", str(HERE), "--mapping", mapping, "--cpus", str(n),
            "--oversubscribe", "-q", "--run-dir", str(run_dir)]  # fmt: skip


def pool_cli(n: int) -> list[str]:
    return [sys.executable, "-c", POOL_SETUP + "\n" + POOL_CALL.format(n=n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--processes", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--mappings", default="dyn_multi,multi")
    ap.add_argument(
        "--compile",
        action="store_true",
        help="no bytecode cache read or written, on both sides (the standard library too): an "
        "environment with PYTHONDONTWRITEBYTECODE=1 and an editable install compiles hpcflow at every start",
    )
    args = ap.parse_args()
    n, mappings = args.processes, args.mappings.split(",")
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="hpcflow-startup-") as d:
        tmp = Path(d)
        if args.compile:
            (tmp / "empty-pycache").mkdir()
            NO_BYTECODE.update(PYTHONDONTWRITEBYTECODE="1", PYTHONPYCACHEPREFIX=str(tmp / "empty-pycache"))
        cli(hpcflow_cli(mappings[0], n, tmp), tmp)  # once unmeasured: every module's bytecode is cached
        for _ in range(args.repeats):
            cold, warm = api(POOL_SETUP, POOL_CALL.format(n=n), tmp)
            rows.setdefault("api Pool", []).append(cold)
            rows.setdefault("api Pool (warm)", []).append(warm)
            rows.setdefault("cli Pool", []).append(cli(pool_cli(n), tmp))
            for m in mappings:
                cold, warm = api(HPCFLOW_SETUP, HPCFLOW_CALL.format(mapping=m, n=n), tmp)
                rows.setdefault(f"api hpcflow {m}", []).append(cold)
                rows.setdefault(f"api hpcflow {m} (warm)", []).append(warm)
                rows.setdefault(f"cli hpcflow {m}", []).append(cli(hpcflow_cli(m, n, tmp), tmp))
    medians = {k: statistics.median(v) for k, v in rows.items()}
    how = ", every module compiled" if args.compile else ""
    print(f"start-up to the first task, {n} processes{how}, median of {args.repeats} (ms; x: / Pool's, the same way)")
    print(f"{'':34} {'ms':>8} {'x Pool':>7}")
    for key, value in medians.items():
        way, _, rest = key.partition(" ")
        pool = medians[f"{way} Pool" + (" (warm)" if rest.endswith("(warm)") else "")]
        print(f"{key:34} {value * 1000:8.1f} {value / pool:7.2f}")


if __name__ == "__main__":
    main()
