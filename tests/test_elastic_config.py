"""The `elastic:` config section and `--elastic`: settings that reach the run, and bad
input refused with one line and exit code 2 before anything is submitted."""

import pytest

from hpcflow.autoscale.elastic import ElasticConfig
from hpcflow.config import load_config
from hpcflow.errors import UsageError
from hpcflow.options import Options
from hpcflow.settings import resolve


def test_the_elastic_section_loads_and_layers_key_by_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("elastic: {max_jobs: 6, cpus_per_job: 8, walltime: '00:30:00', idle_s: 45}\n")
    assert load_config(path).elastic == {"max_jobs": 6, "cpus_per_job": 8, "walltime": "00:30:00", "idle_s": 45.0}
    settings = resolve({}, path)
    assert ElasticConfig(**settings.elastic) == ElasticConfig(
        max_jobs=6, cpus_per_job=8, walltime="00:30:00", idle_s=45
    )
    assert settings.sources["elastic.max_jobs"] == f"config {path}"
    assert settings.to_dict()["elastic"]["cpus_per_job"] == 8


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("elastic: {max_job: 2}", "unknown key elastic.max_job"),
        ("elastic: {max_jobs: 0}", "elastic.max_jobs must be a whole number of at least 1"),
        ("elastic: {idle_s: -1}", "elastic.idle_s must be a number of seconds"),
        ("elastic: 3", "elastic must be a mapping"),
        ("elastic: {walltime: half an hour}", "walltime 'half an hour' is not HH:MM:SS"),
    ],
)
def test_a_bad_elastic_section_names_the_key(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text + "\n")
    with pytest.raises(UsageError, match=message):
        load_config(path)


def test_the_elastic_run_option_needs_a_run_directory_and_valid_values(tmp_path):
    with pytest.raises(UsageError, match="hpcflow run --elastic"):
        Options.from_kwargs({"elastic": {}})
    key = str(tmp_path / "run.key")
    with pytest.raises(UsageError, match="elastic"):
        Options.from_kwargs({"elastic": {"max_jobs": 0}, "key_file": key})
    assert Options.from_kwargs({"elastic": {"max_jobs": 2}, "key_file": key}).elastic == ElasticConfig(max_jobs=2)


def test_elastic_on_a_mapping_without_redis_is_exit_2(in_process):
    code, out, err = in_process("run", "pipeline", "--mapping", "dyn_multi", "--elastic", "-p", "items=2")
    assert code == 2
    assert err.strip().splitlines() == [
        "hpcflow: error: --elastic needs a *_redis mapping (such as dyn_redis), whose workers can join from jobs; "
        "not dyn_multi"
    ]
    assert out == ""


def test_a_bad_elastic_section_on_the_command_line_is_exit_2(in_process, tmp_path):
    (tmp_path / "c.yaml").write_text("elastic: {cpus_per_job: two}\n")
    code, _, err = in_process("run", "pipeline", "--mapping", "dyn_redis", "--elastic", "--config", "c.yaml")
    assert code == 2 and "elastic.cpus_per_job" in err and len(err.strip().splitlines()) == 1
