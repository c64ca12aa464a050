"""What checkpoints cost (issue #19): the runtime of the stateful benchmark with
`--checkpoint-interval 5` against none, and the time from SIGTERM to a written checkpoint.

    python experiments/bench/checkpoint.py [--quick] [--articles 8000] [--latency 0.02]
        [--cpus 12] [--repeats 3] [--interval 5] [--stops 3] [--output DIR]

The load is the paper's stateful use case, the sentiment workflow (two scorers of
`--latency` s an article, two group-by HappyState PEs of 4 instances, two global Top3) on
`hybrid_multi` with `--cpus` processes: about 35 s a run here for 8000 articles, 6 minutes
in all (`--quick`: 800 articles, an interval of 1 s, 1 repeat, 1 stop; about 20 s in all).

- overhead: plain and checkpointed runs alternate, the order swapped each repeat (plain
  ckpt, ckpt plain, ...), so drift on a shared machine falls on both. The ratio is the mean
  runtime (metrics.json's runtime_s) with checkpoints over the mean without; every run's
  outputs must equal the first plain run's. Target: under 1.05.
- stop: runs without an interval get SIGTERM at evenly spread moments of the plain
  runtime (1/4, 2/4, 3/4 with 3 stops). Figures: signal -> the generation's
  manifest.json on disk (polled every 5 ms), signal -> the launcher's exit, the
  checkpoint's size; then `hpcflow resume` ends the run, and its outputs must equal the
  plain run's.

Timings on a shared 2-core machine drift: read the ratio measured within the run. With
--output DIR, the runs and the table are written to DIR/checkpoint.json and
DIR/checkpoint.md (checkpoint-quick.* with --quick).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGET = 1.05
POLL_S = 0.005


def hpcflow(*args: str) -> list[str]:
    return [sys.executable, "-m", "hpcflow", *args, "-q"]


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def run_command(args: argparse.Namespace, run_dir: Path, interval: float | None) -> list[str]:
    cmd = hpcflow("run", "sentiment", "-p", f"articles={args.articles}", "-p", f"latency={args.latency}")
    cmd += ["-m", "hybrid_multi", "-n", str(args.cpus), "--oversubscribe", "--run-dir", str(run_dir)]
    return cmd + (["--checkpoint-interval", str(interval)] if interval else [])


def outputs(run_dir: Path) -> Counter:
    rows = (json.loads(line) for line in (run_dir / "outputs.jsonl").read_text().splitlines())
    return Counter(json.dumps(row, sort_keys=True) for row in rows)


def generations(run_dir: Path) -> list[Path]:
    """Checkpoint generations with their manifest, oldest first."""
    base = run_dir / "checkpoint"
    found = [d for d in base.glob("[0-9]" * 8) if (d / "manifest.json").is_file()] if base.is_dir() else []
    return sorted(found, key=lambda d: int(d.name))


def timed_run(args: argparse.Namespace, run_dir: Path, interval: float | None) -> dict:
    """One run to its end in a fresh process: its runtime and how many checkpoints it wrote."""
    subprocess.run(run_command(args, run_dir, interval), env=environment(), check=True, stdout=subprocess.DEVNULL)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    written = generations(run_dir)
    return {
        "interval_s": interval,
        "runtime_s": metrics["runtime_s"],
        "process_time_s": metrics["process_time_s"],
        "checkpoints": int(written[-1].name) if written else 0,  # generations are numbered from 1
    }


def run_name(repeat: int, interval: float | None) -> str:
    return f"overhead-{repeat}-{'ckpt' if interval else 'plain'}"


def overhead(args: argparse.Namespace, work: Path) -> tuple[list[dict], Counter]:
    """The alternating runs; every run's outputs against those of the first plain one."""
    runs = []
    for repeat in range(args.repeats):
        order = (None, args.interval) if repeat % 2 == 0 else (args.interval, None)
        for interval in order:
            record = {"repeat": repeat, **timed_run(args, work / run_name(repeat, interval), interval)}
            runs.append(record)
            every = f"every {interval} s" if interval else "none"
            print(f"  repeat {repeat} {every:>12}: {record['runtime_s']:6.2f} s, {record['checkpoints']} checkpoints")
    reference = outputs(work / run_name(0, None))
    for record in runs:
        record["same_outputs"] = outputs(work / run_name(record["repeat"], record["interval_s"])) == reference
    return runs, reference


def stop(args: argparse.Namespace, work: Path, at_s: float, reference: Counter, n: int) -> dict:
    """SIGTERM `at_s` s after the run's status.json appears: how long until its
    checkpoint is on disk and until the launcher is gone; then resume it to the end."""
    run_dir = work / f"stop-{n}"
    cmd = run_command(args, run_dir, None)
    proc = subprocess.Popen(cmd, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (run_dir / "status.json").exists() and proc.poll() is None:
        time.sleep(POLL_S)
    time.sleep(at_s)  # the moment of the signal, not a wait for something
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    written_s = None
    while proc.poll() is None:
        if written_s is None and generations(run_dir):
            written_s = time.perf_counter() - t0
        time.sleep(POLL_S)
    exit_s = time.perf_counter() - t0
    found = generations(run_dir)
    if written_s is None and found:  # it appeared between the last poll and the exit
        written_s = exit_s
    record = {"at_s": at_s, "exit_code": proc.returncode, "written_s": written_s, "exit_s": exit_s}
    record["bytes"] = sum(f.stat().st_size for f in found[-1].rglob("*") if f.is_file()) if found else 0
    resumed = subprocess.run(hpcflow("resume", str(run_dir)), env=environment(), stdout=subprocess.DEVNULL)
    record["resumed_exit"] = resumed.returncode
    record["same_outputs"] = resumed.returncode == 0 and outputs(run_dir) == reference
    return record


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def table(args: argparse.Namespace, runs: list[dict], stops: list[dict]) -> tuple[list[str], dict]:
    plain = [r["runtime_s"] for r in runs if not r["interval_s"]]
    ckpt = [r["runtime_s"] for r in runs if r["interval_s"]]
    ratio = mean(ckpt) / mean(plain)
    summary = {
        "plain_s": mean(plain),
        "checkpointed_s": mean(ckpt),
        "ratio": ratio,
        "target_met": ratio < TARGET and all(r["same_outputs"] for r in runs),
        "written_s": [s["written_s"] for s in stops],
        "stops_ok": all(s["exit_code"] == 143 and s["same_outputs"] for s in stops),
    }
    lines = [
        f"sentiment, {args.articles} articles x {args.latency} s, hybrid_multi, {args.cpus} processes, "
        f"{args.repeats} repeats",
        "",
        "| runs | mean runtime s | checkpoints a run | same outputs |",
        "|---|---:|---:|---|",
        f"| no checkpoints | {mean(plain):.2f} | 0 | {all(r['same_outputs'] for r in runs if not r['interval_s'])} |",
        f"| --checkpoint-interval {args.interval} | {mean(ckpt):.2f} | "
        f"{mean([r['checkpoints'] for r in runs if r['interval_s']]):.1f} | "
        f"{all(r['same_outputs'] for r in runs if r['interval_s'])} |",
        "",
        f"checkpointed / plain: {ratio:.3f} (target < {TARGET}: {'met' if summary['target_met'] else 'NOT met'})",
    ]
    if stops:
        lines += [
            "",
            "| SIGTERM at s | exit | signal -> checkpoint s | signal -> exit s | checkpoint KB | resumed exact |",
            "|---:|---:|---:|---:|---:|---|",
        ]
        for s in stops:
            written = "none" if s["written_s"] is None else f"{s['written_s']:.3f}"
            lines.append(
                f"| {s['at_s']:.1f} | {s['exit_code']} | {written} | {s['exit_s']:.3f} | "
                f"{s['bytes'] / 1024:.0f} | {s['same_outputs']} |"
            )
    return lines, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="800 articles, --interval 1, 1 repeat, 1 stop")
    ap.add_argument("--articles", type=int, default=None, help="[default: 8000, --quick 800]")
    ap.add_argument("--latency", type=float, default=0.02)
    ap.add_argument("--cpus", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=None, help="[default: 3, --quick 1]")
    ap.add_argument("--interval", type=float, default=None, help="seconds [default: 5, --quick 1]")
    ap.add_argument("--stops", type=int, default=None, help="SIGTERM runs [default: 3, --quick 1]")
    ap.add_argument("--output", type=Path, default=None, help="write checkpoint.json and checkpoint.md here")
    args = ap.parse_args()
    args.articles = args.articles or (800 if args.quick else 8000)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.interval = args.interval or (1.0 if args.quick else 5.0)
    args.stops = args.stops if args.stops is not None else (1 if args.quick else 3)
    print(f"overhead: sentiment on hybrid_multi, --checkpoint-interval {args.interval} against none")
    with tempfile.TemporaryDirectory(prefix="hpcflow-bench-checkpoint-") as tmp:
        work = Path(tmp)
        runs, reference = overhead(args, work)
        plain_s = mean([r["runtime_s"] for r in runs if not r["interval_s"]])
        stops = []
        for n in range(args.stops):
            at_s = plain_s * (n + 1) / (args.stops + 1)
            print(f"stop: SIGTERM {at_s:.1f} s after the start")
            stops.append(stop(args, work, at_s, reference, n))
    lines, summary = table(args, runs, stops)
    print("\n".join(["", *lines]))
    if args.output:
        args.output.mkdir(parents=True, exist_ok=True)
        name = "checkpoint-quick" if args.quick else "checkpoint"
        record = {
            "recorded_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "summary": summary,
            "runs": runs,
            "stops": stops,
        }
        (args.output / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
        (args.output / f"{name}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # progress lines show while the runs go
    main()
