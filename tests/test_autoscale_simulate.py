"""The simulated pool, and the policies compared on it against all workers always on."""

from __future__ import annotations

import pytest

from hpcflow.autoscale import make_autoscaler
from hpcflow.autoscale.simulate import (
    Item,
    bursty_load,
    direction_changes,
    main,
    simulate,
    steady_load,
    upfront_load,
)

WORKERS = 16


def run(items, spec=None, **kw):
    return simulate(items, WORKERS, make_autoscaler(spec, WORKERS) if spec else None, **kw)


def test_always_on_process_time_is_every_worker_for_the_whole_run():
    out = run(bursty_load(bursts=2))
    assert out.process_time_s == pytest.approx(WORKERS * out.runtime_s)
    assert all(active == WORKERS for _, active, _ in out.timeline)


def test_one_worker_runs_every_stage_of_every_item_in_turn():
    items = [Item(0.0, (("A", 0.5), ("B", 0.25))), Item(0.0, (("A", 1.0),)), Item(3.0, (("B", 0.5),))]
    out = simulate(items, 1)
    assert out.runtime_s == pytest.approx(3.5)
    assert out.process_time_s == pytest.approx(3.5)


def test_the_simulation_is_deterministic():
    assert run(steady_load(duration_s=10), "backlog") == run(steady_load(duration_s=10), "backlog")


def test_a_pool_smaller_than_the_scaler_allows_is_refused():
    with pytest.raises(ValueError, match="16 workers, the pool has 4"):
        simulate(upfront_load(n=10), 4, make_autoscaler("backlog", WORKERS))


@pytest.mark.parametrize("spec", ["naive", "idle", "backlog"])
def test_active_workers_stay_within_bounds(spec):
    scaler = make_autoscaler(spec, WORKERS, min_workers=2)
    out = simulate(bursty_load(bursts=2), WORKERS, scaler)
    assert all(2 <= active <= WORKERS for _, active, _ in out.timeline)


def test_backlog_has_the_whole_pool_one_sample_after_each_burst():
    out = run(bursty_load(bursts=3, gap_s=10.0), "backlog")
    active_at = dict((round(t, 6), active) for t, active, _ in out.timeline)
    assert [active_at[round(b * 10.0 + 0.1, 6)] for b in range(3)] == [WORKERS] * 3
    assert [active_at[round(b * 10.0 + 9.9, 6)] for b in range(2)] == [1, 1]  # parked between bursts


def test_naive_grows_one_worker_a_step_from_half_the_pool():
    active = [n for _, n, _ in run(bursty_load(bursts=1), "naive").timeline]
    assert active[:2] == [8, 9]
    assert max(b - a for a, b in zip(active, active[1:], strict=False)) == 1


def test_backlog_saves_most_process_time_on_a_bursty_load_without_losing_runtime():
    items = bursty_load()
    always, backlog, naive = run(items), run(items, "backlog"), run(items, "naive")
    assert backlog.process_time_s < 0.4 * always.process_time_s
    assert backlog.runtime_s <= 1.01 * always.runtime_s
    assert naive.runtime_s > 1.03 * always.runtime_s  # the paper's rule pays in runtime


def test_backlog_follows_a_steady_beta_load_without_thrashing():
    items = steady_load()  # Beta(2,5)-second tasks at 20 a second: 5.7 workers' worth
    always, backlog, naive = run(items), run(items, "backlog"), run(items, "naive")
    held = run(items, "backlog:drain=0.5,k=3")
    assert backlog.process_time_s < 0.45 * always.process_time_s
    assert backlog.runtime_s <= 1.01 * always.runtime_s
    assert backlog.direction_changes < naive.direction_changes / 2
    assert held.direction_changes < naive.direction_changes / 8  # what holding k samples buys


def test_demand_wakes_between_steps_and_workers_done_above_target_are_parked():
    # One burst of 100 tasks at t = 0.05, between two steps: the whole pool works on it
    # before the next step, and it is parked again as the tasks run out.
    items = [Item(0.05, (("A", 0.2),)) for _ in range(100)]
    out = run(items, "backlog")
    active_at = {round(t, 6): active for t, active, _ in out.timeline}
    assert active_at[0.1] == WORKERS
    assert out.runtime_s == pytest.approx(0.05 + 7 * 0.2)  # ceil(100 / 16) rounds of 0.2 s
    assert out.process_time_s < WORKERS * out.runtime_s


def test_nothing_to_save_means_nothing_lost():
    items = upfront_load()
    always, backlog, naive = run(items), run(items, "backlog"), run(items, "naive")
    assert backlog.runtime_s == pytest.approx(always.runtime_s)
    assert naive.runtime_s > 1.5 * always.runtime_s


def test_slow_wake_up_costs_little_runtime():
    items = bursty_load()
    always, backlog = run(items, wake_s=0.05), run(items, "backlog", wake_s=0.05)
    assert backlog.runtime_s <= 1.01 * always.runtime_s


def test_direction_changes_count_turns_not_steps():
    assert direction_changes([1, 2, 3, 3, 4]) == 0
    assert direction_changes([1, 3, 3, 2, 2, 5, 1]) == 3


def test_the_command_prints_the_comparison(capsys):
    main(["backlog", "naive", "--load", "bursty", "--seeds", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["load", "policy"]
    assert [line.split()[1] for line in lines[1:]] == ["always-on", "backlog", "naive"]
