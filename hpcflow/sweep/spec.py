"""An experiment file (DESIGN.md §6) and the cells it expands to.

```yaml
name: galaxy-autoscale
workflow: galaxy
params: {scale: [1, 5], heavy: true}   # a list is the values to sweep; a scalar, one value
mappings: [multi, dyn_multi, dyn_auto_multi]
cpus: [4, 8, 16]
repeats: 3
options: {autoscale: backlog}          # to every run: autoscale, redis_url, on_error, start_method, stall_timeout
compare: [[dyn_auto_multi, dyn_multi]] # ratio tables, numerator first
output: results/galaxy-autoscale       # relative to the current directory, as run directories are
oversubscribe: true                    # allow more processes than the allocation's CPUs
timeout: 600                           # seconds a run may take before it is stopped and failed
batch: {walltime: "00:20:00"}          # `--submit`: over the configuration's batch settings
```

The cells are the cross product params x mappings x cpus x repeats. They run repeat by
repeat (every cell once, then every cell again), so an interrupted sweep already has a
comparable first round, and a slow drift of the machine spreads over all mappings.
Everything is checked on loading, so a typo is one line before any run starts.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import BatchConfig, parse_config, read_yaml
from ..errors import UsageError
from ..mappings import get_mapping
from ..options import Options
from ..runcommand import RUN_FLAGS

KEYS = ("name", "workflow", "params", "mappings", "cpus", "repeats", "options", "compare", "output")
EXTRA_KEYS = ("oversubscribe", "timeout", "batch")
REQUIRED = ("name", "workflow", "mappings", "cpus")


@dataclass(frozen=True)
class Cell:
    """One run of a sweep: a params combination, a mapping, a CPU count and a repeat."""

    params: dict[str, Any]
    mapping: str
    cpus: int
    repeat: int

    @property
    def key(self) -> tuple[str, str, int, int]:
        return cell_key(self.params, self.mapping, self.cpus, self.repeat)

    def label(self, shown: list[str] | None = None) -> str:
        """`dyn_multi, 8 cpus, scale=5, repeat 2`, with the parameters in `shown` (default all)."""
        keys = list(self.params) if shown is None else [k for k in shown if k in self.params]
        text = "".join(f", {k}={_text(self.params[k])}" for k in keys)
        return f"{self.mapping}, {self.cpus} cpus{text}, repeat {self.repeat}"

    def dir_name(self) -> str:
        """A readable, unique directory name: `r0-dyn_multi-8cpus-scale=1,heavy=true`."""
        slug = params_slug(self.params)
        return f"r{self.repeat}-{self.mapping}-{self.cpus}cpus" + (f"-{slug}" if slug else "")


def params_slug(params: dict[str, Any]) -> str:
    """Params as part of a file name, `scale=1,heavy=true`; a hash keeps it unique when
    characters had to be replaced or it was cut short."""
    text = ",".join(f"{k}={_text(v)}" for k, v in params.items())
    safe = "".join(c if c.isalnum() or c in "-_.=," else "_" for c in text)
    if safe != text or len(safe) > 60:
        digest = hashlib.sha1(params_key(params).encode()).hexdigest()[:8]
        safe = f"{safe[:50]}-{digest}"
    return safe


def params_text(params: dict[str, Any]) -> str:
    """Params as a person reads them in a table or a title: `scale=1, heavy=true`."""
    return ", ".join(f"{k}={_text(v)}" for k, v in params.items())


def params_key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def cell_key(params: dict[str, Any], mapping: str, cpus: int, repeat: int) -> tuple[str, str, int, int]:
    """What makes a run the same cell again: how runs.jsonl is matched on resuming."""
    return params_key(params), mapping, int(cpus), int(repeat)


@dataclass(frozen=True)
class SweepSpec:
    name: str
    workflow: str
    params: dict[str, list[Any]]
    mappings: tuple[str, ...]
    cpus: tuple[int, ...]
    repeats: int = 1
    options: dict[str, Any] = field(default_factory=dict)
    compare: tuple[tuple[str, str], ...] = ()
    output: Path = Path("results")
    oversubscribe: bool = False
    timeout: float | None = None
    batch: BatchConfig | None = None  # given in the file: over the configuration's
    path: Path | None = None

    def param_sets(self) -> list[dict[str, Any]]:
        keys = list(self.params)
        return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(self.params[k] for k in keys))]

    def varying(self) -> list[str]:
        """The parameters with more than one value: the ones a cell's label needs."""
        return [k for k, values in self.params.items() if len(values) > 1]

    def cells(self) -> list[Cell]:
        return [
            Cell(params, mapping, cpus, repeat)
            for repeat in range(self.repeats)
            for params in self.param_sets()
            for cpus in self.cpus
            for mapping in self.mappings
        ]


def load_sweep(path: str | Path) -> SweepSpec:
    path = Path(path)
    return parse_sweep(read_yaml(path, "sweep"), path)


def parse_sweep(data: Any, path: Path) -> SweepSpec:
    """A SweepSpec from the parsed YAML of `path` (named in every error)."""

    def fail(message: str) -> UsageError:
        return UsageError(f"sweep {path}: {message}")

    if not isinstance(data, dict):
        raise fail(f"the file must be a mapping of keys to values, not {type(data).__name__}")
    unknown = [str(k) for k in data if k not in KEYS + EXTRA_KEYS]
    if unknown:
        raise fail(f"unknown key {unknown[0]} (known: {', '.join(KEYS + EXTRA_KEYS)})")
    missing = [k for k in REQUIRED if data.get(k) in (None, [], "")]
    if missing:
        raise fail(f"missing {', '.join(missing)} (needed: {', '.join(REQUIRED)})")
    name, workflow = data["name"], data["workflow"]
    if not isinstance(name, str) or not isinstance(workflow, str):
        raise fail("name and workflow must be text")

    params = data.get("params") or {}
    if not isinstance(params, dict):
        raise fail(f"params must be a mapping of names to values or lists of values, not {type(params).__name__}")
    params = {str(k): v if isinstance(v, list) else [v] for k, v in params.items()}
    empty = [k for k, v in params.items() if not v]
    if empty:
        raise fail(f"params.{empty[0]} has no values")

    mappings = _list(data["mappings"], "mappings", fail)
    for mapping in mappings:
        if not isinstance(mapping, str):
            raise fail(f"mappings must be mapping names, not {mapping!r}")
        try:
            get_mapping(mapping)
        except UsageError as exc:
            raise fail(str(exc)) from None
    cpus = _list(data["cpus"], "cpus", fail)
    for n in cpus:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise fail(f"cpus must be whole numbers of at least 1, got {n!r}")
    repeats = data.get("repeats", 1)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise fail(f"repeats must be a whole number of at least 1, got {repeats!r}")

    options = data.get("options") or {}
    if not isinstance(options, dict):
        raise fail("options must be a mapping")
    unknown = [k for k in options if k not in RUN_FLAGS]
    if unknown:
        raise fail(f"unknown option {unknown[0]} (known: {', '.join(RUN_FLAGS)})")
    try:
        Options.from_kwargs(dict(options))
    except UsageError as exc:
        raise fail(str(exc)) from None

    compare = _list(data.get("compare") or [], "compare", fail)
    for pair in compare:
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(m, str) for m in pair)):
            raise fail(f"compare must be a list of [numerator, denominator] mapping pairs, got {pair!r}")
        absent = [m for m in pair if m not in mappings]
        if absent:
            raise fail(f"compare names {absent[0]}, which is not one of the mappings ({', '.join(mappings)})")

    output = data.get("output", f"results/{name}")
    if not isinstance(output, str):
        raise fail("output must be a directory path")
    oversubscribe = data.get("oversubscribe", False)
    if not isinstance(oversubscribe, bool):
        raise fail(f"oversubscribe must be true or false, got {oversubscribe!r}")
    timeout = data.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise fail(f"timeout must be a number of seconds above 0, got {timeout!r}")
    batch = None
    if data.get("batch") is not None:
        try:
            batch = parse_config({"batch": data["batch"]}, path).batch
        except UsageError as exc:
            raise fail(str(exc).removeprefix(f"config {path}: ")) from None

    return SweepSpec(
        name=name,
        workflow=workflow,
        params=params,
        mappings=tuple(dict.fromkeys(mappings)),
        cpus=tuple(dict.fromkeys(cpus)),
        repeats=repeats,
        options=dict(options),
        compare=tuple((a, b) for a, b in compare),
        output=Path(output),
        oversubscribe=oversubscribe,
        timeout=float(timeout) if timeout is not None else None,
        batch=batch,
        path=path,
    )


def _list(value: Any, key: str, fail) -> list:
    if isinstance(value, list):
        return value
    if isinstance(value, (str, int)) and not isinstance(value, bool) and key != "compare":
        return [value]  # `cpus: 8`, `mappings: dyn_multi`
    raise fail(f"{key} must be a list")


def _text(value: Any) -> str:
    """A parameter value as a person writes it: true, 0.5, text."""
    return json.dumps(value) if not isinstance(value, str) else value
