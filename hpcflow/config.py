"""Configuration files: what to run and how to ask the batch system for it, in YAML.

```yaml
workflow: galaxy
mapping: dyn_auto_multi
cpus: 32
params: {scale: 1}
autoscale: backlog            # a policy name, or {policy: name, ...parameters}
redis_url: redis://host:6379
stall_timeout: 900            # seconds without a finished task before a run stops (0: never)
drain_timeout: 30             # mpi: seconds a SIGTERM's drain may take before the ranks stop at once
batch: {partition: short, account: proj42, walltime: "01:00:00", mem: 8G, modules: [python/3.11], scheduler: slurm}
elastic: {max_jobs: 4, cpus_per_job: 8, walltime: "00:30:00", min_backlog_s: 5, idle_s: 30}  # for run --elastic
```

Every key is optional. A file that is not YAML, not a mapping, or has an unknown key or a
value of the wrong type is a UsageError naming the file and the key, so a typo never
silently falls back to a default. How files, the environment and the command line
combine is `settings`' business; this module reads one file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .autoscale.elastic import ElasticConfig
from .batch.schedulers import SCHEDULERS
from .errors import UsageError

DEFAULT_CONFIG = Path("configs") / "default.yaml"


@dataclass(frozen=True)
class BatchConfig:
    partition: str | None = None
    account: str | None = None
    walltime: str | None = None
    mem: str | None = None
    modules: tuple[str, ...] = ()  # `module load` lines of the job script
    scheduler: str | None = None  # slurm | pbs; default: whichever submission command is on PATH


@dataclass(frozen=True)
class ConfigValues:
    """The keys of a configuration and their values: what one file holds (`Config`) and
    what a command ends up with from every place it looks (`settings.Settings`)."""

    workflow: str | None = None
    mapping: str | None = None
    cpus: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    autoscale: str | dict[str, Any] | None = None
    redis_url: str | None = None
    stall_timeout: float | None = None
    drain_timeout: float | None = None
    batch: BatchConfig = field(default_factory=BatchConfig)
    elastic: dict[str, Any] = field(default_factory=dict)  # ElasticConfig's fields that were set


@dataclass(frozen=True)
class Config(ConfigValues):
    path: Path | None = None  # the file it came from


def load_config(path: str | Path | None = None) -> Config:
    """`path`, which must exist; without one, `configs/default.yaml` of the current
    directory if there is one, else an empty Config."""
    if path is None:
        if not DEFAULT_CONFIG.is_file():
            return Config()
        path = DEFAULT_CONFIG
    path = Path(path)
    return parse_config(read_yaml(path, "config"), path)


def read_yaml(path: Path, kind: str) -> Any:
    """The YAML document in `path`; a file that cannot be read or parsed is a UsageError
    that starts `{kind} {path}:` and says where the YAML went wrong."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"{kind} {path}: cannot read it: {exc.strerror or exc}") from None
    import yaml  # (only where a file is read: a run without one starts without it)

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"{kind} {path}: not valid YAML: {_yaml_problem(exc)}") from None


def parse_config(data: Any, path: Path) -> Config:
    """A Config from the parsed YAML document of `path` (named in errors)."""
    if data is None:
        return Config(path=path)
    top = _mapping(data, path, "the file")
    _known_keys(top, ConfigValues, path, "")
    batch = _mapping(top.get("batch") or {}, path, "batch")
    _known_keys(batch, BatchConfig, path, "batch.")
    elastic = _mapping(top.get("elastic") or {}, path, "elastic")
    _known_keys(elastic, ElasticConfig, path, "elastic.")
    return Config(
        workflow=_text(top, "workflow", path),
        mapping=_text(top, "mapping", path),
        cpus=_positive_int(top, "cpus", path),
        params=dict(_mapping(top.get("params") or {}, path, "params")),
        autoscale=_autoscale(top.get("autoscale"), path),
        redis_url=_text(top, "redis_url", path),
        stall_timeout=_seconds(top, "stall_timeout", path),
        drain_timeout=_seconds(top, "drain_timeout", path),
        batch=BatchConfig(
            partition=_text(batch, "partition", path, "batch."),
            account=_text(batch, "account", path, "batch."),
            walltime=_walltime(batch, path),
            mem=_text(batch, "mem", path, "batch."),
            modules=_modules(batch.get("modules"), path),
            scheduler=_scheduler(batch, path),
        ),
        elastic=_elastic(elastic, path),
        path=path,
    )


def _yaml_problem(exc: Exception) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else problem


def _mapping(value: Any, path: Path, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UsageError(f"config {path}: {what} must be a mapping of keys to values, not {type(value).__name__}")
    return value


def _known_keys(data: dict, cls: type, path: Path, prefix: str) -> None:
    known = list(cls.__dataclass_fields__)
    unknown = [str(key) for key in data if key not in known]
    if unknown:
        raise UsageError(
            f"config {path}: unknown key {prefix}{unknown[0]} (known: {', '.join(prefix + k for k in known)})"
        )


def _text(data: dict, key: str, path: Path, prefix: str = "") -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # `mem: 4000` or `partition: 2` are meant as text
    raise UsageError(f"config {path}: {prefix}{key} must be text, not {type(value).__name__}")


def _positive_int(data: dict, key: str, path: Path, prefix: str = "") -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"config {path}: {prefix}{key} must be a whole number of at least 1, got {value!r}")
    return value


def _seconds(data: dict, key: str, path: Path, prefix: str = "") -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise UsageError(f"config {path}: {prefix}{key} must be a number of seconds, 0 or more, got {value!r}")
    return float(value)


def _autoscale(value: Any, path: Path) -> str | dict[str, Any] | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("policy"), str):
        return value
    raise UsageError(f"config {path}: autoscale must be a policy name or a mapping with a 'policy' name")


def _walltime(section: dict, path: Path, prefix: str = "batch.") -> str | None:
    """YAML 1.1 reads an unquoted `1:00:00` as the integer 3600 (base 60): turn it back."""
    value = section.get("walltime")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return f"{value // 3600:02d}:{value // 60 % 60:02d}:{value % 60:02d}"
    return _text(section, "walltime", path, prefix)


def _scheduler(batch: dict, path: Path) -> str | None:
    value = _text(batch, "scheduler", path, "batch.")
    if value is not None and value not in SCHEDULERS:
        raise UsageError(f"config {path}: batch.scheduler {value!r} is not one of {', '.join(SCHEDULERS)}")
    return value


def _modules(value: Any, path: Path) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(m, str) for m in value):
        return tuple(value)
    raise UsageError(f"config {path}: batch.modules must be a module name or a list of them")


def _elastic(elastic: dict, path: Path) -> dict[str, Any]:
    """The `elastic:` keys given, checked: whole numbers of at least 1, seconds, walltime."""
    values: dict[str, Any] = {"walltime": _walltime(elastic, path, "elastic.")}
    for key in ("max_jobs", "cpus_per_job", "max_failures"):
        values[key] = _positive_int(elastic, key, path, "elastic.")
    for key in ("min_backlog_s", "idle_s"):
        values[key] = _seconds(elastic, key, path, "elastic.")
    values = {k: v for k, v in values.items() if v is not None}
    try:
        ElasticConfig(**values)
    except ValueError as exc:
        raise UsageError(f"config {path}: {exc}") from None
    return values
