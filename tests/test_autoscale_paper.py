"""The paper's `naive` and `idle` rules on scripted loads: one worker a step."""

from __future__ import annotations

import pytest
from autoscale_scripts import burst, constant, cycle, drive

from hpcflow.autoscale import AutoScaler, Observation
from hpcflow.autoscale.paper import IdlePolicy, NaivePolicy
from hpcflow.autoscale.simulate import direction_changes


@pytest.mark.parametrize(("max_workers", "start"), [(1, 1), (2, 1), (3, 2), (8, 4), (16, 8), (63, 32)])
def test_both_start_at_floor_of_n_minus_one_over_two_plus_one(max_workers, start):
    assert AutoScaler(NaivePolicy(), max_workers).initial() == start
    assert AutoScaler(IdlePolicy(), max_workers).initial() == start


def test_naive_answers_a_burst_one_worker_a_step():
    targets = drive(AutoScaler(NaivePolicy(), 16), burst(200), 10)
    assert targets == [9, 10, 11, 12, 13, 14, 15, 16, 16, 16]


def test_naive_shrinks_one_a_step_to_one_when_the_queue_is_short():
    assert drive(AutoScaler(NaivePolicy(), 16), constant(queued=5, busy=0), 9) == [7, 6, 5, 4, 3, 2, 1, 1, 1]


def test_naive_shrinks_while_a_long_queue_is_shrinking():
    queue = [100, 90, 80, 85]
    targets = drive(AutoScaler(NaivePolicy(), 16), lambda i, active: (queue[i], active), 4)
    assert targets == [9, 8, 7, 8]


def test_naive_threshold_is_a_parameter():
    assert drive(AutoScaler(NaivePolicy(threshold=50), 16), constant(queued=30, busy=8), 3) == [7, 6, 5]


def test_naive_thrashes_on_a_noisy_flat_load():
    # The comparison the backlog policy's no-thrash test is measured against.
    noise = cycle([(30, 6), (28, 5), (35, 7), (27, 6), (31, 5), (33, 7)])
    targets = drive(AutoScaler(NaivePolicy(), 16), noise, 300)
    assert direction_changes(targets) > 100


def idle_obs(t: float, idle_s: float, active: int = 8) -> Observation:
    return Observation(t=t, queued=0, active=active, busy=0, idle_s=idle_s)


def test_idle_grows_one_a_step_while_workers_wait_less_than_the_threshold():
    scaler = AutoScaler(IdlePolicy(threshold=0.5), 16)
    scaler.initial()
    assert [scaler.step(idle_obs(i * 0.1, idle_s=0.05)) for i in range(10)] == [9, 10, 11, 12, 13, 14, 15, 16, 16, 16]


def test_idle_shrinks_one_a_step_once_workers_wait_longer_than_the_threshold():
    scaler = AutoScaler(IdlePolicy(threshold=0.5), 16)
    scaler.initial()
    assert [scaler.step(idle_obs(i * 0.1, idle_s=0.8)) for i in range(9)] == [7, 6, 5, 4, 3, 2, 1, 1, 1]
