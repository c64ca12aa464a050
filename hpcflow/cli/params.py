"""What the command line gives as text and hpcflow needs as values: `-p key=value`,
`--inputs`, and `--cpus` checked against the allocation."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

from ..batch.allocation import Allocation
from ..errors import UsageError
from ..settings import COMMAND_LINE


def parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    """`-p key=value` pairs; values are read as YAML scalars (3, 0.5, true, text)."""
    import yaml  # (only for a run given -p: it takes a tenth of the start)

    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"parameter {pair!r} is not key=value")
        try:
            params[key] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            params[key] = value
    return params


def parse_inputs(text: str | None) -> Any:
    """`--inputs`: JSON (an int or {pe: int | [dicts]}) or the path of a JSON file."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        error = exc
    try:  # not JSON: a file? (a long JSON string is no valid path: OSError)
        text = Path(text).read_text()
    except OSError:
        raise UsageError(f"--inputs is neither JSON nor a JSON file: {error}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--inputs file is not JSON: {exc}") from None


def check_cpus(
    cpus: int | None, mapping: str, oversubscribe: bool, alloc: Allocation, source: str | None = None
) -> None:
    """Refuse `--cpus` beyond the allocation unless asked to oversubscribe (left out, run()
    takes the allocation's CPUs).

    Only the command line checks: the Python API runs any number of processes, as the
    tests and benchmarks do on small machines. A Redis or MPI run may span the job's nodes."""
    from ..batch.submit import is_redis_mapping  # (the batch modules: not for a run's start)

    spans_nodes = is_redis_mapping(mapping) or mapping == "mpi"
    limit = alloc.total_cpus if spans_nodes else alloc.cpus
    if cpus is not None and cpus > limit and not oversubscribe:
        given = f"--cpus {cpus}" if source in (None, COMMAND_LINE) else f"cpus {cpus} (from {source})"
        raise UsageError(
            f"{given} is more than the {limit} CPUs of this allocation "
            f"({alloc.scheduler}, from {alloc.source}); add --oversubscribe to run anyway"
        )


class Seconds(click.ParamType):
    """A positive, finite number of seconds (`nan`, `inf`, 0 and below are refused: a
    checkpoint interval of nan would silently write none)."""

    name = "seconds"

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = math.nan
        if not (math.isfinite(seconds) and seconds > 0):
            self.fail(f"{value!r} is not a positive, finite number of seconds", param, ctx)
        return seconds


INTERVAL_HELP = (
    "Write a checkpoint to RUN_DIR/checkpoint every SECONDS (positive; one is written on SIGTERM/SIGINT anyway). "
    "Checkpoints are spaced at least {factor:g}x the time the last one took, so they cost at most about "
    "{share:.0%} of the run however small SECONDS is."
)
