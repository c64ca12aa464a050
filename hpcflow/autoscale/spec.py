"""Policies by name, and the `autoscale=` option that selects one.

The option is a name (`"backlog"`), a spec string (`"backlog:drain=0.5,k=3"`, handy on
a command line or in a sweep's YAML) or a dict (`{"policy": "backlog", "drain": 0.5}`).
Parameters are a policy's dataclass fields; `interval` (seconds between observations)
is accepted by every policy and belongs to the scaler. Anything unknown is a
`UsageError` of one line that names the valid choices.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from typing import Any, Protocol

from ..errors import UsageError
from .backlog import BacklogPolicy
from .observation import Observation
from .paper import IdlePolicy, NaivePolicy

DEFAULT_POLICY = "backlog"
DEFAULT_INTERVAL_S = 0.1
"""Seconds between observations. 100 ms is far longer than a sample costs (a few
counters), and short enough that a burst is answered before a worker would have
finished a typical task; 50-200 ms all work, the policies count in samples."""


class Policy(Protocol):
    """A scaling rule: a starting size, then a desired active count per observation.

    A policy may also have `demand(obs, current) -> int`, asked between steps when
    work is queued while workers are parked or a worker is left with nothing to do, to
    answer at once (see `AutoScaler.demand`); `backlog` has one, the paper's rules do
    not."""

    def initial(self, min_workers: int, max_workers: int) -> int: ...

    def target(self, obs: Observation, current: int) -> int:
        """Desired active workers, given the previous target `current`; the scaler
        clamps it to its bounds."""
        ...


POLICIES: dict[str, type[Policy]] = {
    "backlog": BacklogPolicy,
    "naive": NaivePolicy,
    "idle": IdlePolicy,
}


@dataclasses.dataclass(frozen=True)
class ScalerSpec:
    """A parsed `autoscale=` option: the policy, its name and the sampling interval."""

    name: str
    policy: Policy
    interval: float = DEFAULT_INTERVAL_S


def parse_spec(spec: str | Mapping[str, Any] | None) -> ScalerSpec:
    """Build a fresh policy (policies keep state) from an `autoscale=` option value;
    `None` or `""` selects the default policy with its default parameters."""
    if spec is None or spec == "":
        return ScalerSpec(DEFAULT_POLICY, POLICIES[DEFAULT_POLICY]())
    if isinstance(spec, str):
        name, params = _split(spec)
    elif isinstance(spec, Mapping):
        params = dict(spec)
        name = str(params.pop("policy", DEFAULT_POLICY))
    else:
        raise UsageError(f"autoscale must be a policy name, a 'name:key=value,...' string or a dict, not {spec!r}")
    cls = POLICIES.get(name)
    if cls is None:
        raise UsageError(f"unknown autoscale policy {name!r}; choose one of: {', '.join(POLICIES)}")
    interval = _number(name, "interval", params.pop("interval", DEFAULT_INTERVAL_S), float)
    if not interval > 0:
        raise UsageError(f"autoscale interval must be more than 0 seconds, got {interval}")
    types = parameters(cls)
    unknown = sorted(set(params) - set(types))
    if unknown:
        valid = ", ".join([*types, "interval"])
        raise UsageError(f"unknown parameter(s) {', '.join(unknown)} for autoscale policy {name!r}; valid: {valid}")
    values = {key: _number(name, key, value, types[key]) for key, value in params.items()}
    try:
        policy = cls(**values)
    except ValueError as e:
        raise UsageError(f"autoscale policy {name!r}: {e}") from None
    return ScalerSpec(name, policy, interval)


def parameters(cls: type) -> dict[str, type]:
    """A policy's parameters and their types: its dataclass fields set by `__init__`."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _split(spec: str) -> tuple[str, dict[str, str]]:
    name, _, rest = spec.partition(":")
    params: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise UsageError(f"malformed autoscale spec {spec!r}; expected NAME or NAME:KEY=VALUE,...")
        params[key.strip()] = value.strip()
    return name.strip(), params


def _number(policy: str, key: str, value: Any, kind: type) -> int | float:
    """`value` (a string from a spec, or a YAML/JSON number) as an int or a float."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not math.isfinite(number) or (kind is int and not number.is_integer()):
        what = "an integer" if kind is int else "a number"
        raise UsageError(f"autoscale policy {policy!r}: {key} must be {what}, got {value!r}")
    return kind(number)
