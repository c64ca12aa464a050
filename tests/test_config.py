"""Configuration files: what loads, and the one-line errors for what does not."""

from pathlib import Path

import pytest

from hpcflow.config import Config, load_config
from hpcflow.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_full_config_loads(tmp_path):
    path = write(
        tmp_path,
        """
workflow: galaxy
mapping: dyn_auto_multi
cpus: 32
params: {scale: 5, heavy: true}
autoscale: {policy: backlog, keep_alive: 2}
redis_url: redis://login1:6379
stall_timeout: 600
batch:
  partition: short
  account: proj42
  walltime: "01:30:00"
  mem: 8G
  modules: [python/3.11, openmpi]
""",
    )
    config = load_config(path)
    assert (config.workflow, config.mapping, config.cpus) == ("galaxy", "dyn_auto_multi", 32)
    assert config.params == {"scale": 5, "heavy": True}
    assert config.autoscale == {"policy": "backlog", "keep_alive": 2}
    assert config.redis_url == "redis://login1:6379" and config.stall_timeout == 600.0
    assert config.batch.partition == "short" and config.batch.account == "proj42"
    assert config.batch.walltime == "01:30:00" and config.batch.mem == "8G"
    assert config.batch.modules == ("python/3.11", "openmpi")
    assert config.path == path


def test_empty_file_is_an_empty_config(tmp_path):
    assert load_config(write(tmp_path, "# nothing yet\n")).workflow is None


def test_unquoted_walltime_read_by_yaml_as_base_60_comes_back_as_text(tmp_path):
    assert load_config(write(tmp_path, "batch: {walltime: 1:30:00}\n")).batch.walltime == "01:30:00"


def test_a_single_module_may_be_a_string(tmp_path):
    assert load_config(write(tmp_path, "batch: {modules: python/3.11}\n")).batch.modules == ("python/3.11",)


def test_without_a_path_the_default_file_of_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config() == Config()
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "default.yaml").write_text("workflow: pipeline\n")
    assert load_config().workflow == "pipeline"


def test_the_repository_default_config_loads(monkeypatch):
    monkeypatch.chdir(ROOT)
    config = load_config()
    assert (config.workflow, config.mapping, config.cpus) == ("galaxy", "dyn_auto_multi", None)
    assert config.autoscale["policy"] == "backlog"


@pytest.mark.parametrize("profile", sorted((ROOT / "configs" / "clusters").glob("*.yaml")), ids=lambda p: p.stem)
def test_the_cluster_profiles_load(profile):
    config = load_config(profile)
    assert config.batch.scheduler in ("slurm", "pbs") and config.batch.walltime


def test_a_scheduler_must_be_known(tmp_path):
    with pytest.raises(UsageError, match="batch.scheduler 'lsf' is not one of slurm, pbs"):
        load_config(write(tmp_path, "batch: {scheduler: lsf}\n"))


@pytest.mark.parametrize(
    "text, message",
    [
        ("workflow: [galaxy\n", r"not valid YAML: line 2, column 1"),
        ("cpus: 4\n  mapping: simple\n", r"not valid YAML: line 2"),
        ("- galaxy\n- pipeline\n", r"the file must be a mapping"),
        ("cpu: 4\n", r"unknown key cpu \(known: workflow, mapping, cpus"),
        ("batch: {queue: short}\n", r"unknown key batch.queue"),
        ("batch: [short]\n", r"batch must be a mapping"),
        ("cpus: many\n", r"cpus must be a whole number of at least 1, got 'many'"),
        ("cpus: 0\n", r"cpus must be a whole number"),
        ("cpus: true\n", r"cpus must be a whole number"),
        ("params: [1, 2]\n", r"params must be a mapping"),
        ("mapping: {a: 1}\n", r"mapping must be text"),
        ("autoscale: 3\n", r"autoscale must be a policy name"),
        ("batch: {modules: [1, 2]}\n", r"batch.modules must be"),
        ("stall_timeout: soon\n", r"stall_timeout must be a number of seconds, 0 or more, got 'soon'"),
        ("stall_timeout: -5\n", r"stall_timeout must be a number of seconds"),
    ],
)
def test_malformed_config_is_one_usage_error_naming_the_file(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(UsageError, match=message) as err:
        load_config(path)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_a_missing_named_config_is_an_error(tmp_path):
    with pytest.raises(UsageError, match="cannot read it"):
        load_config(tmp_path / "nope.yaml")


def test_malformed_config_on_the_command_line_is_exit_2(cli, tmp_path):
    path = write(tmp_path, "workflow: pipeline\ncpus: [\n")
    done = cli("submit", "--config", str(path), "--dry-run", "--scheduler", "slurm")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "not valid YAML" in done.stderr
    assert "Traceback" not in done.stderr
