"""Randomized fault schedules (issue 25), as many as asked: the table of faults injected by
kind and of outcomes by mapping (exact / failed-then-resumed-exact / refused / WRONG and
the other violations: crash, hang, linger, unfinished).

    python experiments/bench/faults.py --schedules 500 [--seed S] [--lanes 2] [--output DIR]
        [--kinds signal,kill_pool] [--mappings multi,hybrid_multi] [--keep]

Schedule i has seed S+i (S: random unless given, printed first); each is replayed alone
with `HPCFLOW_FAULT_SEED=<seed> pytest -q tests/test_fault_schedules.py` or
`--seed <seed> --schedules 1`. The schedules are those of tests/faultsim (drawn from the
seed alone); the run directory of a schedule that broke the invariant is kept (under
$TMPDIR/hpcflow-faults-*, named at the end). disk_full needs root (a tmpfs mount). With --output DIR the table is
written to DIR/faults.md and each outcome to DIR/faults.jsonl.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from concurrent.futures import as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from faultsim.schedule import KINDS, MAPPINGS, draw  # noqa: E402
from faultsim.suite import Lanes, table  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--schedules", type=int, default=200)
    p.add_argument("--seed", type=int, default=None, help="the first schedule's seed [random]")
    p.add_argument("--lanes", type=int, default=2, help="schedules played at once")
    p.add_argument("--kinds", default=None, help="fault kinds drawn, comma-separated [all]")
    p.add_argument("--mappings", default=None, help="mappings drawn, comma-separated [all four]")
    p.add_argument("--output", type=Path, default=None)
    p.add_argument("--keep", action="store_true", help="keep every schedule's directory")
    args = p.parse_args()
    first = args.seed if args.seed is not None else random.randrange(10**6)
    kinds = tuple(args.kinds.split(",")) if args.kinds else None
    mappings = tuple(args.mappings.split(",")) if args.mappings else MAPPINGS
    for k in kinds or ():
        if k not in KINDS:
            p.error(f"unknown fault kind {k}; one of {', '.join(KINDS)}")
    print(f"seeds {first}..{first + args.schedules - 1}", flush=True)
    base = Path(tempfile.mkdtemp(prefix="hpcflow-faults-"))  # each schedule's runs; a failed one's are kept
    lanes = Lanes(base, args.lanes, keep=args.keep)
    start = time.monotonic()
    futures = [lanes.submit(draw(first + i, mappings, kinds)) for i in range(args.schedules)]
    outcomes = []
    try:
        for future in as_completed(futures):
            o = future.result()
            outcomes.append(o)
            mark = "" if o.holds else f"  <-- {o.problem}"
            print(
                f"[{len(outcomes)}/{args.schedules}] seed {o.schedule.seed} {o.schedule.mapping}: {o.result} "
                f"({o.seconds} s; {' '.join(sorted(o.injected.elements())) or 'no fault struck'}){mark}",
                flush=True,
            )
            if not o.holds:
                print(o.report(), flush=True)
    finally:
        lanes.close()
    outcomes.sort(key=lambda o: o.schedule.seed)
    text = table(outcomes, time.monotonic() - start)
    text += f"\n\nSeeds {first}..{first + args.schedules - 1}."
    if not all(o.holds for o in outcomes):
        text += f" The directories of the schedules that broke the invariant are kept under {base}."
    else:
        shutil.rmtree(base, ignore_errors=True)
    print(text)
    if args.output:
        args.output.mkdir(parents=True, exist_ok=True)
        (args.output / "faults.md").write_text(text + "\n")
        with open(args.output / "faults.jsonl", "w") as f:
            for o in outcomes:
                row = {
                    "seed": o.schedule.seed,
                    "mapping": o.schedule.mapping,
                    "result": o.result,
                    "problem": o.problem,
                    "injected": dict(o.injected),
                    "seconds": o.seconds,
                    "schedule": str(o.schedule),
                }
                f.write(json.dumps(row) + "\n")
    return 0 if all(o.holds for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
