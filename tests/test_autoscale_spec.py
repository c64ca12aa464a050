"""Parsing the `autoscale=` option: a name, a 'name:key=value,...' string, or a dict."""

from __future__ import annotations

import pytest

from hpcflow.autoscale import POLICIES, parse_spec
from hpcflow.autoscale.backlog import BacklogPolicy
from hpcflow.autoscale.paper import IdlePolicy, NaivePolicy
from hpcflow.errors import UsageError


@pytest.mark.parametrize("spec", [None, "", "backlog", {"policy": "backlog"}, {}])
def test_default_is_backlog_with_its_defaults(spec):
    parsed = parse_spec(spec)
    assert parsed.name == "backlog"
    assert parsed.policy == BacklogPolicy(drain=0.25, k=1)
    assert parsed.interval == 0.1


def test_a_name_selects_each_policy():
    assert {name: type(parse_spec(name).policy) for name in POLICIES} == {
        "backlog": BacklogPolicy,
        "naive": NaivePolicy,
        "idle": IdlePolicy,
    }


def test_spec_string_parameters_are_typed():
    parsed = parse_spec("backlog:drain=1,k=5")
    assert parsed.policy == BacklogPolicy(drain=1.0, k=5)
    assert isinstance(parsed.policy.k, int) and isinstance(parsed.policy.drain, float)
    assert parse_spec(" idle : threshold = 0.2 ").policy == IdlePolicy(threshold=0.2)


def test_dict_parameters_as_from_yaml_or_json():
    parsed = parse_spec({"policy": "naive", "threshold": 20, "interval": 0.05})
    assert parsed.policy == NaivePolicy(threshold=20)
    assert parsed.interval == 0.05
    assert parse_spec({"drain": "0.75", "k": 4.0}).policy == BacklogPolicy(drain=0.75, k=4)


def test_each_parse_gives_a_fresh_policy():
    assert parse_spec("backlog").policy is not parse_spec("backlog").policy


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fastest", "unknown autoscale policy 'fastest'; choose one of: backlog, naive, idle"),
        ({"policy": "queue"}, "unknown autoscale policy 'queue'; choose one of: backlog, naive, idle"),
        ("backlog:drian=1", "unknown parameter(s) drian for autoscale policy 'backlog'; valid: drain, k, interval"),
        ({"policy": "naive", "k": 3}, "unknown parameter(s) k for autoscale policy 'naive'; valid: threshold, inter"),
        ("backlog:drain", "malformed autoscale spec 'backlog:drain'; expected NAME or NAME:KEY=VALUE,..."),
        ("backlog:=1", "malformed autoscale spec"),
        ("backlog:drain=fast", "autoscale policy 'backlog': drain must be a number, got 'fast'"),
        ("backlog:k=2.5", "autoscale policy 'backlog': k must be an integer, got '2.5'"),
        ({"k": True}, "k must be an integer, got True"),
        ("backlog:drain=nan", "drain must be a number"),
        ("backlog:drain=inf", "drain must be a number"),
        ("backlog:drain=0", "autoscale policy 'backlog': drain must be more than 0 seconds"),
        ("backlog:k=0", "autoscale policy 'backlog': k must be at least 1"),
        ("naive:threshold=-1", "autoscale policy 'naive': threshold must be at least 0"),
        ("idle:interval=0", "autoscale interval must be more than 0 seconds, got 0.0"),
        (["backlog"], "autoscale must be a policy name, a 'name:key=value,...' string or a dict"),
    ],
)
def test_bad_option_values_are_one_clear_line(spec, message):
    with pytest.raises(UsageError) as err:
        parse_spec(spec)
    assert message in str(err.value)
    assert "\n" not in str(err.value)
