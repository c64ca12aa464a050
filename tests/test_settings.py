"""The effective configuration: command line > HPCFLOW_* > --config FILE >
configs/default.yaml > built-in, each setting with its source, stored in the metrics."""

from __future__ import annotations

import json

import pytest

from hpcflow.errors import UsageError
from hpcflow.settings import autoscale_text, resolve

DEFAULT = """
workflow: pipeline
mapping: dyn_multi
cpus: 3
params: {items: 11, stages: 2}
autoscale: naive
redis_url: redis://default:6379
batch: {partition: short, walltime: "00:10:00"}
"""

OTHER = """
mapping: dyn_auto_multi
cpus: 5
params: {items: 13}
autoscale: {policy: backlog, drain: 0.25}
batch: {partition: long, account: proj}
"""


@pytest.fixture
def configs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "default.yaml").write_text(DEFAULT)
    (tmp_path / "other.yaml").write_text(OTHER)
    return tmp_path


def test_each_layer_wins_over_the_ones_below(configs):
    built_in = {"mapping": "simple"}
    only_default = resolve({}, None, env={}, built_in=built_in)
    assert (only_default.mapping, only_default.cpus, only_default.autoscale) == ("dyn_multi", 3, "naive")
    assert only_default.sources["mapping"] == "config configs/default.yaml"

    with_file = resolve({}, "other.yaml", env={}, built_in=built_in)
    assert (with_file.workflow, with_file.mapping, with_file.cpus) == ("pipeline", "dyn_auto_multi", 5)
    assert with_file.autoscale == {"policy": "backlog", "drain": 0.25}
    assert with_file.params == {"items": 13, "stages": 2}  # merged key by key
    batch = with_file.batch
    assert (batch.partition, batch.account, batch.walltime) == ("long", "proj", "00:10:00")
    assert with_file.redis_url == "redis://default:6379" and with_file.sources["cpus"] == "config other.yaml"

    env = {"HPCFLOW_MAPPING": "multi", "HPCFLOW_CPUS": "7", "HPCFLOW_AUTOSCALE": "idle", "HPCFLOW_PARTITION": "env"}
    with_env = resolve({}, "other.yaml", env=env, built_in=built_in)
    assert (with_env.mapping, with_env.cpus, with_env.autoscale) == ("multi", 7, "idle")
    assert with_env.batch.partition == "env"
    assert with_env.sources["cpus"] == "HPCFLOW_CPUS"

    flags = {"mapping": "simple", "cpus": 1, "params": {"items": 2}, "batch.partition": "cli", "autoscale": None}
    with_cli = resolve(flags, "other.yaml", env=env, built_in=built_in)
    assert (with_cli.mapping, with_cli.cpus, with_cli.params) == ("simple", 1, {"items": 2, "stages": 2})
    assert with_cli.autoscale == "idle"  # a flag left out (None) does not hide the layers below
    assert with_cli.batch.partition == "cli" and with_cli.sources["mapping"] == "command line"


def test_stall_timeout_from_a_file_the_environment_or_a_flag(configs):
    (configs / "slow.yaml").write_text("stall_timeout: 3600\n")
    assert resolve({}, None, env={}).stall_timeout is None  # left to run()'s own default
    from_file = resolve({}, "slow.yaml", env={})
    assert (from_file.stall_timeout, from_file.sources["stall_timeout"]) == (3600.0, "config slow.yaml")
    from_env = resolve({}, "slow.yaml", env={"HPCFLOW_STALL_TIMEOUT": "0"})
    assert (from_env.stall_timeout, from_env.sources["stall_timeout"]) == (0.0, "HPCFLOW_STALL_TIMEOUT")
    assert resolve({"stall_timeout": 60.0}, "slow.yaml", env={"HPCFLOW_STALL_TIMEOUT": "0"}).stall_timeout == 60.0


def test_built_in_defaults_when_nothing_else_says(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = resolve({"workflow": "pipeline"}, None, env={}, built_in={"mapping": "simple"})
    assert (settings.mapping, settings.cpus, settings.autoscale) == ("simple", None, None)
    assert settings.sources == {"mapping": "built-in", "workflow": "command line"} and settings.files == ()


def test_a_files_params_belong_to_its_workflow(configs):
    settings = resolve({"workflow": "galaxy"}, None, env={})
    assert settings.params == {}  # default.yaml's params are pipeline's
    (configs / "anon.yaml").write_text("params: {seed: 4}\n")
    assert resolve({"workflow": "galaxy"}, "anon.yaml", env={}).params == {"seed": 4}


@pytest.mark.parametrize(
    "env, message",
    [
        ({"HPCFLOW_CPUS": "lots"}, "HPCFLOW_CPUS='lots' must be a whole number of at least 1"),
        ({"HPCFLOW_CPUS": "0"}, "HPCFLOW_CPUS='0'"),
        ({"HPCFLOW_SCHEDULER": "lsf"}, "HPCFLOW_SCHEDULER='lsf' is not one of slurm, pbs"),
        ({"HPCFLOW_STALL_TIMEOUT": "soon"}, "HPCFLOW_STALL_TIMEOUT='soon' must be a number of seconds, 0 or more"),
        ({"HPCFLOW_STALL_TIMEOUT": "-1"}, "HPCFLOW_STALL_TIMEOUT='-1'"),
    ],
)
def test_a_malformed_variable_is_a_usage_error(tmp_path, monkeypatch, env, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=message):
        resolve({}, None, env=env)


def test_autoscale_text_round_trips_a_mapping():
    assert autoscale_text({"policy": "backlog", "drain": 0.25, "k": 2}) == "backlog:drain=0.25,k=2"
    assert autoscale_text({"drain": 1}) == "backlog:drain=1"
    assert autoscale_text("idle") == "idle" and autoscale_text(None) is None


def test_run_takes_everything_from_the_config_and_stores_it_in_the_metrics(cli, tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "default.yaml").write_text("workflow: pipeline\nmapping: dyn_multi\ncpus: 2\n")
    (tmp_path / "mine.yaml").write_text("params: {items: 9}\nautoscale: {policy: backlog, k: 2}\n")
    env = {"HPCFLOW_MAPPING": "dyn_auto_multi", "HPCFLOW_OVERSUBSCRIBE": "1"}
    done = cli("run", "--config", "mine.yaml", "-q", "--run-dir", "out", env=env)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert (metrics["workflow"], metrics["mapping"], metrics["processes"]) == ("pipeline", "dyn_auto_multi", 2)
    assert metrics["params"] == {"items": 9} and metrics["items"]["Source"] == 9
    assert metrics["autoscale"] == "backlog"
    config = metrics["config"]
    assert config["autoscale"] == {"policy": "backlog", "k": 2}
    assert config["sources"] == {
        "workflow": "config configs/default.yaml",
        "mapping": "HPCFLOW_MAPPING",
        "cpus": "config configs/default.yaml",
        "autoscale": "config mine.yaml",
        "params": "config mine.yaml",
    }


def test_config_cpus_beyond_the_allocation_name_their_source(cli, tmp_path):
    (tmp_path / "mine.yaml").write_text("workflow: pipeline\ncpus: 8\n")
    slurm_4 = {"SLURM_JOB_ID": "9", "SLURM_CPUS_ON_NODE": "4", "SLURM_JOB_CPUS_PER_NODE": "4"}
    done = cli("run", "--config", "mine.yaml", env=slurm_4)
    assert done.returncode == 2
    assert done.stderr == (
        "hpcflow: error: cpus 8 (from config mine.yaml) is more than the 4 CPUs of this allocation "
        "(slurm, from SLURM_CPUS_ON_NODE); add --oversubscribe to run anyway\n"
    )


def test_submit_passes_the_configured_autoscale_policy_to_the_job(cli, tmp_path):
    (tmp_path / "mine.yaml").write_text("workflow: pipeline\nautoscale: {policy: backlog, drain: 0.25}\n")
    done = cli("submit", "--config", "mine.yaml", "--cpus", "2", "--mapping", "dyn_auto_multi", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "--autoscale backlog:drain=0.25" in done.stdout


def test_submit_passes_the_configured_stall_timeout_to_the_job(cli, tmp_path):
    (tmp_path / "mine.yaml").write_text("workflow: pipeline\nstall_timeout: 7200\n")
    done = cli("submit", "--config", "mine.yaml", "--cpus", "2", "--mapping", "dyn_multi", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "--stall-timeout 7200.0" in done.stdout


def test_a_cluster_profile_sets_the_scheduler_and_batch_options(cli, tmp_path):
    (tmp_path / "cluster.yaml").write_text("batch: {scheduler: pbs, partition: workq, modules: [python/3.11]}\n")
    done = cli("submit", "pipeline", "--config", "cluster.yaml", "--cpus", "2", "--mapping", "simple", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "#PBS -q workq" in done.stdout and "module load python/3.11" in done.stdout
