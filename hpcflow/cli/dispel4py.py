"""`hpcflow-dispel4py`: dispel4py's command line, so that job scripts port by renaming
the command.

    hpcflow-dispel4py simple module.py -i 10
    hpcflow-dispel4py multi module.py -n 4 -d '{"Producer": [{"input": "data.txt"}]}'
    mpiexec -n 6 hpcflow-dispel4py mpi package.module -a graph -f inputs.json

The flags are dispel4py's (`dispel4py.new.processor.create_arg_parser` and the mappings'
`parse_args`): TARGET (simple, multi, mpi, their module names, or any hpcflow mapping),
MODULE (a module name or a .py file), `-a` the graph attribute, `-f` a JSON file of
inputs, `-d` inputs as JSON, `-i` iterations of every root (1), `-n` processes, `-s`
(dispel4py's partitioned "simple" mode: accepted, with no effect, since every hpcflow
mapping gives the same outputs). The run is an `hpcflow run` (same run directory,
metrics and outputs.jsonl; the `simple` target also prints `Inputs:` and `Outputs:` on
stdout, as dispel4py's does); any other flag is passed on to it (`--run-dir`, `-q`,
`--autoscale`...). Processes are not checked against the allocation, as dispel4py does not.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

# dispel4py's target names (dispel4py.new.mappings.config) and their module names.
TARGETS = {
    "simple": "simple",
    "multi": "multi",
    "mpi": "mpi",
    "dispel4py.new.simple_process": "simple",
    "dispel4py.new.multi_process": "multi",
    "dispel4py.new.mpi_process": "mpi",
}
UNSUPPORTED = ("storm", "spark", "dispel4py.storm.storm_submission", "dispel4py.new.spark_process")
PROG = "hpcflow-dispel4py"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line and exit 2, as every hpcflow command
        print(f"{PROG}: error: {message}", file=sys.stderr)
        sys.exit(2)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Run a dispel4py graph with hpcflow, with dispel4py's flags.")
    p.add_argument("target", help="simple, multi, mpi, or an hpcflow mapping (dyn_multi, hybrid_redis...)")
    p.add_argument("module", help="module that creates a dispel4py graph (python module or file name)")
    p.add_argument("-a", "--attr", metavar="attribute", help="name of graph variable in the module")
    p.add_argument("-f", "--file", metavar="inputfile", help="file containing input dataset in JSON format")
    p.add_argument("-d", "--data", metavar="inputdata", help="input dataset in JSON format")
    p.add_argument("-i", "--iter", metavar="iterations", type=int, default=1, help="number of iterations")
    p.add_argument("-n", "--num", metavar="num_processes", type=int, help="number of processes to run")
    p.add_argument("-s", "--simple", action="store_true", help="accepted for dispel4py's scripts; no effect")
    return p


def translate(argv: list[str]) -> list[str]:
    """The `hpcflow run` arguments that do what `dispel4py ARGV` does."""
    args, rest = parser().parse_known_args(argv)
    if args.target in UNSUPPORTED:
        parser().error(f"target {args.target!r} (Storm, Spark) has no hpcflow mapping; `hpcflow mappings` lists them")
    mapping = TARGETS.get(args.target, args.target)
    workflow = f"{args.module}:{args.attr}" if args.attr else args.module
    out = ["run", workflow, "--mapping", mapping, "--oversubscribe"]
    if mapping == "simple":  # dispel4py's simple prints its inputs and outputs
        out.append("--print-results")
    if args.num is not None and mapping != "mpi":  # mpi: the ranks of the MPI job, as in dispel4py
        out += ["--cpus", str(args.num)]
    if args.file:  # dispel4py reads -f before -d
        out += ["--inputs", args.file]
    elif args.data:
        out += ["--inputs", args.data]
    else:
        if args.iter < 0:
            parser().error(f"argument -i/--iter: must not be negative, got {args.iter}")
        out += ["--inputs", str(args.iter)]
    return out + rest


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point of `hpcflow-dispel4py`."""
    from . import main as hpcflow_main

    hpcflow_main(translate(sys.argv[1:] if argv is None else list(argv)))


if __name__ == "__main__":
    main()
