"""The effective configuration of a command: each setting from the first place that has it.

    command line  >  environment (HPCFLOW_*)  >  --config FILE  >  configs/default.yaml  >  built-in

Every setting remembers where it came from (`sources`), and a run stores the lot in its
metrics, so a result can be traced to the file or variable that shaped it.

A file's `params` belong to the workflow it names: they are used only when that is the
workflow being run (or when the file names none), so `hpcflow run pipeline` next to a
configs/default.yaml written for galaxy does not receive galaxy's parameters.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .autoscale.spec import DEFAULT_POLICY
from .batch.schedulers import SCHEDULERS
from .config import DEFAULT_CONFIG, BatchConfig, Config, ConfigValues, load_config
from .errors import UsageError

COMMAND_LINE = "command line"
BUILT_IN = "built-in"

ENVIRONMENT = {  # setting -> variable; batch settings are "batch.<field>"
    "workflow": "HPCFLOW_WORKFLOW",
    "mapping": "HPCFLOW_MAPPING",
    "cpus": "HPCFLOW_CPUS",
    "autoscale": "HPCFLOW_AUTOSCALE",
    "redis_url": "HPCFLOW_REDIS_URL",
    "stall_timeout": "HPCFLOW_STALL_TIMEOUT",
    "drain_timeout": "HPCFLOW_DRAIN_TIMEOUT",
    "batch.partition": "HPCFLOW_PARTITION",
    "batch.account": "HPCFLOW_ACCOUNT",
    "batch.walltime": "HPCFLOW_WALLTIME",
    "batch.scheduler": "HPCFLOW_SCHEDULER",
}

TOP_LEVEL = tuple(f.name for f in fields(ConfigValues) if f.name not in ("params", "batch", "elastic"))  # a value each


@dataclass(frozen=True)
class Settings(ConfigValues):
    sources: dict[str, str] = field(default_factory=dict)  # setting -> where its value came from
    files: tuple[str, ...] = ()  # the configuration files read, lowest precedence first

    def require_workflow(self) -> str:
        """The workflow, or a UsageError saying where it was looked for."""
        if self.workflow is None:
            where = " or ".join(self.files) or f"{DEFAULT_CONFIG} (there is none here)"
            raise UsageError(f"no WORKFLOW given and no workflow: in {where}")
        return self.workflow

    def to_dict(self) -> dict[str, Any]:
        """For the metrics: what was set, and where from (batch only where set)."""
        batch = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.batch).items() if v or v == 0}
        d = {f.name: getattr(self, f.name) for f in fields(ConfigValues) if f.name not in ("batch", "elastic")}
        elastic = {"elastic": dict(self.elastic)} if self.elastic else {}
        return {**d, **({"batch": batch} if batch else {}), **elastic, "sources": dict(self.sources)}


def resolve(
    command_line: Mapping[str, Any] | None = None,
    config_file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    built_in: Mapping[str, Any] | None = None,
) -> Settings:
    """The settings of one command. `command_line` holds the flags given (None = not
    given; `params` the `-p` pairs; batch flags as "batch.<field>"), `built_in` the
    command's own defaults (run: mapping simple)."""
    env = os.environ if env is None else env
    layers: list[tuple[str, dict[str, Any], dict[str, Any], str | None]] = []  # (source, values, params, workflow)
    configs = _config_files(config_file)
    for config in configs:
        layers.append((f"config {config.path}", _config_values(config), config.params, config.workflow))
    layers.append(("environment", _env_values(env), {}, None))
    given = {k: v for k, v in (command_line or {}).items() if v is not None and k != "params"}
    layers.append((COMMAND_LINE, given, dict((command_line or {}).get("params") or {}), None))

    values: dict[str, Any] = {k: v for k, v in (built_in or {}).items() if v is not None}
    sources = dict.fromkeys(values, BUILT_IN)
    for source, layer, _, _ in layers:
        for key, value in layer.items():
            values[key] = value
            sources[key] = ENVIRONMENT[key] if source == "environment" else source
    workflow = values.get("workflow")
    params: dict[str, Any] = {}
    for source, _, layer_params, layer_workflow in layers:
        if layer_params and layer_workflow in (None, workflow):
            params.update(layer_params)
            sources["params"] = source if "params" not in sources else f"{sources['params']} + {source}"
    batch = BatchConfig(**{k.removeprefix("batch."): v for k, v in values.items() if k.startswith("batch.")})
    elastic = {k.removeprefix("elastic."): v for k, v in values.items() if k.startswith("elastic.")}
    return Settings(
        **{k: values.get(k) for k in TOP_LEVEL},
        params=params,
        batch=batch,
        elastic=elastic,
        sources=sources,
        files=tuple(str(c.path) for c in configs),
    )


def _config_files(config_file: str | Path | None) -> list[Config]:
    """configs/default.yaml (when there is one) under the named file."""
    files = [load_config()] if Path(DEFAULT_CONFIG).is_file() else []
    if config_file is not None and (not files or Path(config_file).resolve() != Path(DEFAULT_CONFIG).resolve()):
        files.append(load_config(config_file))
    return files


def _config_values(config: Config) -> dict[str, Any]:
    values = {k: getattr(config, k) for k in TOP_LEVEL if getattr(config, k) is not None}
    for f in fields(BatchConfig):
        value = getattr(config.batch, f.name)
        if value not in (None, ()):
            values[f"batch.{f.name}"] = value
    values.update({f"elastic.{k}": v for k, v in config.elastic.items()})
    return values


def _env_values(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, name in ENVIRONMENT.items():
        text = env.get(name, "").strip()
        if not text:
            continue
        parse = _ENV_NUMBERS.get(key)
        values[key] = parse(name, text) if parse else text
    scheduler = values.get("batch.scheduler")
    if scheduler is not None and scheduler not in SCHEDULERS:
        raise UsageError(f"HPCFLOW_SCHEDULER={scheduler!r} is not one of {', '.join(SCHEDULERS)}")
    return values


def _env_cpus(name: str, text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"{name}={text!r} must be a whole number of at least 1")
    return int(text)


def _env_seconds(name: str, text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not seconds >= 0:
        raise UsageError(f"{name}={text!r} must be a number of seconds, 0 or more")
    return seconds


_ENV_NUMBERS = {
    "cpus": _env_cpus,
    "stall_timeout": _env_seconds,
    "drain_timeout": _env_seconds,
}  # the settings that are not text


def autoscale_text(spec: str | Mapping[str, Any] | None) -> str | None:
    """An `autoscale` setting as the `NAME:KEY=VALUE,...` text of `--autoscale`, for a
    command line (a job script) that must say the same as a config file's mapping."""
    if spec is None or isinstance(spec, str):
        return spec
    params = dict(spec)
    name = str(params.pop("policy", DEFAULT_POLICY))
    pairs = ",".join(f"{k}={v}" for k, v in params.items())
    return f"{name}:{pairs}" if pairs else name
