"""The default `backlog` policy on scripted loads with a fake clock."""

from __future__ import annotations

from dataclasses import replace

from autoscale_scripts import INTERVAL, burst, constant, cycle, drive, observe

from hpcflow.autoscale import AutoScaler, Observation
from hpcflow.autoscale.backlog import BacklogPolicy
from hpcflow.autoscale.simulate import direction_changes


def backlog(max_workers: int = 16, min_workers: int = 1, **params) -> AutoScaler:
    return AutoScaler(BacklogPolicy(**params), max_workers, min_workers)


def test_starts_at_the_minimum_and_answers_a_burst_in_one_step():
    scaler = backlog()
    assert scaler.initial() == 1
    # 200 tasks x 0.1 s = 20 s of work: 40 workers to drain it in 0.5 s, 16 exist.
    assert drive(scaler, burst(200), 3) == [16, 16, 16]


def test_a_small_burst_gets_the_workers_it_needs_not_the_pool():
    # 20 tasks x 0.1 s / 0.5 s = 4 workers, in the first step, and no more after.
    assert drive(backlog(drain=0.5), burst(20), 5) == [4, 4, 4, 4, 4]
    assert drive(backlog(drain=1.0), burst(20), 2) == [2, 2]
    assert drive(backlog(), burst(20), 2) == [8, 8]  # the default drain, 0.25 s


def test_unmeasured_tasks_get_a_worker_each():
    scaler = backlog()
    scaler.initial()
    assert scaler.step(observe(0.0, queued=5, busy=0, active=1, service={})) == 5
    assert scaler.step(observe(0.1, queued=50, busy=5, active=5, service={})) == 16
    # Tasks counted in `queued` but not split by PE are unmeasured too.
    assert scaler.step(Observation(t=0.2, queued=3, active=16, busy=16)) == 16


def test_long_tasks_each_get_a_worker_but_no_worker_waits_for_nothing():
    scaler = backlog()
    scaler.initial()
    # 3 tasks of 10 s: "work them off in 0.5 s" would be 60 workers; 3 can start now.
    assert scaler.step(observe(0.0, queued=3, busy=2, active=2, service={"Work": 10.0})) == 5


def test_ready_caps_the_target_when_fewer_tasks_can_run_than_are_queued():
    obs = Observation(t=0.0, queued=10, ready=2, active=1, busy=1, queued_by_pe={"Work": 10}, service_s={"Work": 5.0})
    assert BacklogPolicy().want(obs) == 3


def test_busy_workers_count_as_capacity_for_short_tasks():
    # 10 tasks x 0.1 s = 1 s of work = 4 workers; the 6 busy ones will take it in time.
    assert BacklogPolicy().want(observe(0.0, queued=10, busy=6, active=6)) == 6


def test_an_active_worker_with_a_task_to_run_is_kept():
    # 2 tasks x 0.1 s need 1 worker, but the 2 idle active ones can start them now:
    # parking one would save none of its busy time and stretch the queue's tail.
    assert BacklogPolicy().want(observe(0.0, queued=2, busy=6, active=8)) == 8
    # With 1 task queued, one of the 2 idle workers has nothing to run.
    assert BacklogPolicy().want(observe(0.0, queued=1, busy=6, active=8)) == 7


def test_workers_being_woken_count_as_capacity():
    scaler = backlog(drain=0.5)
    scaler.initial()
    assert scaler.step(observe(0.0, queued=40, busy=1, active=1)) == 8
    # Six of the eight are still waking and the queue has not moved: ask for no more.
    still = observe(0.1, queued=40, busy=2, active=8)
    assert scaler.step(replace(still, waking=6)) == 8


def test_drain_waits_k_samples_then_parks_the_idle_workers():
    load = burst(200)
    load_then_nothing = lambda i, active: load(i, active) if i < 5 else (0, 0)  # noqa: E731
    targets = drive(backlog(k=3), load_then_nothing, 10)
    assert targets == [16] * 5 + [16, 16, 1, 1, 1]


def test_a_dip_shorter_than_k_samples_changes_nothing():
    dips = cycle([(100, 16)] * 4 + [(0, 10)] * 2)
    targets = drive(backlog(k=3), dips, 60)
    assert set(targets) == {16}


def test_scaling_down_goes_to_the_highest_target_of_the_window():
    # After the burst the pool runs dry: 8, 5, then 3 workers have a task; k = 3 -> 8.
    steps = [(200, 16), (2, 6), (1, 4), (0, 3)]
    targets = drive(backlog(drain=0.5, k=3), lambda i, active: steps[min(i, 3)], 4)
    assert targets == [16, 16, 16, 8]


def test_never_parks_below_busy():
    scaler = backlog()
    scaler.initial()
    for i in range(20):
        assert scaler.step(observe(i * INTERVAL, queued=0, busy=7, active=16)) >= 7
    assert scaler.target == 7


def test_the_minimum_holds_through_an_idle_run():
    assert drive(backlog(min_workers=2), constant(0, 0), 10) == [2] * 10


def test_with_no_minimum_an_idle_pool_is_parked_whole_and_woken_by_queued_work():
    scaler = backlog(min_workers=0)
    assert scaler.initial() == 0
    assert scaler.step(observe(0.0, queued=0, busy=0, active=0)) == 0
    assert scaler.demand(observe(0.05, queued=3, busy=0, active=0, service={})) == 3  # unmeasured: one each
    assert scaler.step(observe(0.1, queued=0, busy=3, active=3)) == 3  # busy workers are kept
    assert scaler.demand(observe(0.15, queued=0, busy=0, active=3)) == 0  # done, nothing queued


def test_a_flat_load_never_moves_the_target():
    # 30 tasks x 0.1 s / 0.25 s = 12 workers, whatever the hysteresis.
    targets = drive(backlog(), constant(queued=30, busy=6), 300)
    assert set(targets) == {12}
    assert direction_changes(targets) == 0


def test_a_noisy_flat_load_does_not_thrash_when_holding_k_samples():
    # Queue and busy count jitter around a steady 6-7 workers' worth every sample.
    noise = cycle([(30, 6), (28, 5), (35, 7), (27, 6), (31, 5), (33, 7)])
    targets = drive(backlog(drain=0.5, k=3), noise, 300)
    assert direction_changes(targets) <= 2
    assert set(targets) <= {6, 7}


def test_the_default_follows_a_noisy_flat_load_within_its_range():
    # k = 1 tracks the jitter (free on shared memory, where demand wakes at once)
    # but never leaves the range the load asks for.
    noise = cycle([(30, 6), (28, 5), (35, 7), (27, 6), (31, 5), (33, 7)])
    targets = drive(backlog(), noise, 300)
    assert set(targets) <= {11, 12, 13, 14}  # 27-35 tasks x 0.1 s / 0.25 s


def test_demand_scales_up_between_steps_and_restarts_the_window():
    scaler = backlog(drain=0.5, k=3)
    scaler.initial()
    assert scaler.step(observe(0.0, queued=0, busy=0, active=1)) == 1
    assert scaler.demand(observe(0.05, queued=40, busy=1, active=1)) == 8
    assert scaler.history[-1] == (0.05, 8)
    # Two samples below, then a demand that is not a raise: nothing moves...
    scaler.step(observe(0.1, queued=0, busy=2, active=8))
    scaler.step(observe(0.2, queued=0, busy=2, active=8))
    assert scaler.demand(observe(0.25, queued=4, busy=2, active=8)) == 8
    # ...and the window goes on: the third sample below parks.
    assert scaler.step(observe(0.3, queued=0, busy=2, active=8)) == 2


def test_demand_lowers_at_once_only_with_a_window_of_one():
    for k, expected in [(1, 9), (3, 16)]:
        scaler = backlog(k=k)
        scaler.initial()
        scaler.step(observe(0.0, queued=200, busy=0, active=1))
        # A worker finishes with nothing queued: 9 others are still busy.
        assert scaler.demand(observe(0.05, queued=0, busy=9, active=16)) == expected


def test_history_keeps_the_peak_between_two_steps():
    scaler = backlog()
    scaler.initial()
    scaler.step(observe(0.0, queued=0, busy=0, active=1))
    for t, queued, busy in [(0.02, 4, 1), (0.04, 0, 2), (0.06, 10, 2), (0.08, 0, 1)]:
        scaler.demand(observe(t, queued=queued, busy=busy, active=scaler.target))
    scaler.step(observe(0.1, queued=0, busy=0, active=scaler.target))
    assert scaler.history == [(0.0, 1), (0.06, 4), (0.1, 1)]  # 2 at 0.02, 4 at 0.06, 1 at 0.08
