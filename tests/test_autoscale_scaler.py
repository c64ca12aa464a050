"""The AutoScaler's bounds and history, and `make_autoscaler`, the engine's entry point."""

from __future__ import annotations

import pytest
from autoscale_scripts import burst, constant, drive, observe
from hypothesis import given, settings
from hypothesis import strategies as st

from hpcflow.autoscale import DEFAULT_INTERVAL_S, AutoScaler, Observation, ServiceTimes, make_autoscaler
from hpcflow.autoscale.backlog import BacklogPolicy
from hpcflow.autoscale.paper import NaivePolicy
from hpcflow.errors import UsageError


def test_make_autoscaler_defaults_to_backlog_between_one_and_max():
    scaler = make_autoscaler(None, max_workers=8)
    assert isinstance(scaler.policy, BacklogPolicy)
    assert (scaler.name, scaler.min_workers, scaler.max_workers) == ("backlog", 1, 8)
    assert scaler.interval == DEFAULT_INTERVAL_S


def test_make_autoscaler_takes_the_option_value_and_bounds():
    scaler = make_autoscaler("naive:threshold=4,interval=0.2", max_workers=32, min_workers=2)
    assert isinstance(scaler.policy, NaivePolicy) and scaler.policy.threshold == 4
    assert (scaler.name, scaler.interval, scaler.min_workers, scaler.max_workers) == ("naive", 0.2, 2, 32)


@pytest.mark.parametrize(("spec", "max_workers", "min_workers"), [("naive", 4, 0), ("idle", 4, 0), ("backlog", 4, 5)])
def test_bounds_must_be_ordered_and_one_or_more_unless_the_policy_wakes_from_none(spec, max_workers, min_workers):
    with pytest.raises(UsageError, match="min_workers <= max_workers"):
        make_autoscaler(spec, max_workers, min_workers)


@pytest.mark.parametrize("spec", ["backlog", "naive", "idle"])
def test_an_empty_pool_is_refused(spec):
    with pytest.raises(UsageError, match="max_workers >= 1"):
        make_autoscaler(spec, 0, 0)


def test_free_wakes_let_backlog_park_the_whole_pool_but_not_the_papers_rules():
    assert make_autoscaler("backlog", 8, free_wakes=True).min_workers == 0
    assert make_autoscaler("backlog", 8).min_workers == 1  # a Redis consumer takes time to wake
    assert make_autoscaler("naive", 8, free_wakes=True).min_workers == 1  # at 0 it could never grow again
    assert make_autoscaler("idle:threshold=0.2", 8, free_wakes=True).min_workers == 1


def test_targets_are_clamped_to_the_bounds():
    assert drive(AutoScaler(NaivePolicy(), 6, min_workers=2), constant(queued=0, busy=0), 4) == [2, 2, 2, 2]
    assert drive(AutoScaler(NaivePolicy(), 6, min_workers=2), burst(500), 5) == [4, 5, 6, 6, 6]


def test_history_records_every_step_for_the_timeline():
    scaler = make_autoscaler("backlog", 16)
    drive(scaler, burst(20, at=2), 4)
    assert scaler.history == [(0.0, 1), (0.1, 1), (0.2, 8), pytest.approx((0.3, 8))]


def test_a_step_before_initial_starts_from_the_initial_size():
    scaler = make_autoscaler("naive", 16)
    assert scaler.step(observe(0.0, queued=100, busy=8, active=8)) == 9


def test_service_times_are_a_moving_average_per_pe():
    service = ServiceTimes(alpha=0.5)
    assert service.snapshot() == {}
    service.record("A", 1.0)
    service.record("A", 3.0)
    service.record("B", 0.25)
    assert service.snapshot() == {"A": 2.0, "B": 0.25}


SPECS = [
    "backlog",
    "backlog:drain=0.05,k=1",
    "backlog:drain=5,k=8",
    "naive",
    "naive:threshold=0",
    "idle",
    "idle:threshold=0",
]


@st.composite
def observations(draw, max_workers: int) -> Observation:
    """Any pool state a coordinator could report: busy and waking within active."""
    active = draw(st.integers(0, max_workers))
    busy = draw(st.integers(0, active))
    by_pe = draw(st.dictionaries(st.sampled_from(["A", "B", "C"]), st.integers(0, 5000), max_size=3))
    return Observation(
        t=draw(st.floats(0, 1e6)),
        queued=sum(by_pe.values()) + draw(st.integers(0, 100)),
        active=active,
        busy=busy,
        waking=draw(st.integers(0, active - busy)),
        ready=draw(st.none() | st.integers(0, 5000)),
        queued_by_pe=by_pe,
        service_s=draw(st.dictionaries(st.sampled_from(["A", "B"]), st.floats(1e-6, 100.0), max_size=2)),
        idle_s=draw(st.floats(0, 10)),
    )


@st.composite
def runs(draw):
    max_workers = draw(st.integers(1, 64))
    min_workers = draw(st.integers(1, max_workers))
    obs = draw(st.lists(observations(max_workers), min_size=1, max_size=20))
    return draw(st.sampled_from(SPECS)), min_workers, max_workers, obs


@settings(max_examples=150, deadline=None)
@given(runs())
def test_targets_stay_within_bounds_and_backlog_never_below_busy(run):
    spec, min_workers, max_workers, obs = run
    scaler = make_autoscaler(spec, max_workers, min_workers)
    assert min_workers <= scaler.initial() <= max_workers
    for o in obs:
        target = scaler.step(o)
        assert min_workers <= target <= max_workers
        if spec.startswith("backlog"):
            assert target >= o.busy
    assert [t for t, _ in scaler.history] == [o.t for o in obs]
    assert scaler.history[-1][1] == scaler.target
