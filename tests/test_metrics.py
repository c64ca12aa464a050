"""Metrics: attributes and extras, JSON out, and safe to copy and pickle."""

from __future__ import annotations

import copy
import json
import pickle

import numpy as np
import pytest

from hpcflow.metrics import ActiveClock, Metrics, to_jsonable


def metrics(**extra):
    return Metrics(
        workflow="w",
        params={"n": 1},
        mapping="simple",
        processes=1,
        runtime_s=1.0,
        process_time_s=1.0,
        cpu_time_s=0.5,
        items={"A": 3},
        extra=extra,
    )


def test_extras_are_attributes_and_keys():
    m = metrics(work_s=2.5, status="ok")
    assert m.work_s == 2.5 and m.to_dict()["status"] == "ok"
    assert "extra" not in m.to_dict()


def test_a_missing_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="nothing"):
        _ = metrics().nothing
    assert not hasattr(metrics(), "nothing")


def test_a_bare_instance_does_not_recurse():
    bare = Metrics.__new__(Metrics)  # what pickle and copy create before restoring the state
    with pytest.raises(AttributeError):
        _ = bare.extra_or_not


@pytest.mark.parametrize("clone", [copy.copy, copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))])
def test_copies_and_pickles_keep_fields_and_extras(clone):
    m = metrics(work_s=2.5)
    c = clone(m)
    assert c == m and c.work_s == 2.5 and c.to_dict() == m.to_dict()


def test_a_field_wins_over_an_extra_of_the_same_name():
    m = metrics(mapping="not this")
    assert m.mapping == m.to_dict()["mapping"] == "simple"


def test_write_makes_json_of_what_pes_emit(tmp_path):
    m = metrics(arr=np.arange(3), scalar=np.float64(1.5), tags={"b", "a"}, raw=b"hi", other=complex(1, 2))
    m.write(tmp_path / "m.json")
    d = json.loads((tmp_path / "m.json").read_text())
    assert (d["arr"], d["scalar"], d["tags"], d["raw"], d["other"]) == ([0, 1, 2], 1.5, ["a", "b"], "hi", "(1+2j)")
    assert d["items"] == {"A": 3} and d["hpcflow_version"]


def test_to_jsonable():
    assert to_jsonable(np.array([[1, 2]])) == [[1, 2]]
    assert to_jsonable(frozenset({2, 1})) == [1, 2]


def test_active_clock_counts_only_active_spans():
    clock = ActiveClock()
    assert clock.active_s == 0.0
    clock.start()
    clock.start()  # already active: no restart
    clock.stop()
    once = clock.active_s
    clock.stop()  # already stopped: nothing added
    assert clock.active_s == once >= 0.0
    assert clock.cpu_s() >= 0.0
