"""The elastic policy against a fake scheduler and a fake clock: bursts, a slow queue,
jobs that fail to start, the max_jobs cap, giving jobs back."""

import pytest

from hpcflow.autoscale.elastic import GONE, PENDING, RUNNING, ElasticConfig, ElasticPolicy


class FakeScheduler:
    """Jobs start `start_s` after submission (never, if None) and, when `fail`, end at
    once after starting; cancelled jobs leave the queue."""

    def __init__(self, start_s: float | None = 1.0, fail: bool = False):
        self.start_s, self.fail = start_s, fail
        self.jobs: dict[str, float] = {}
        self.cancelled: set[str] = set()

    def submit(self, now: float) -> str:
        job_id = str(len(self.jobs) + 1)
        self.jobs[job_id] = now
        return job_id

    def states(self, now: float) -> dict[str, str]:
        out = {}
        for job_id, at in self.jobs.items():
            if job_id in self.cancelled:
                continue
            if self.start_s is None or now < at + self.start_s:
                out[job_id] = PENDING
            elif not self.fail:
                out[job_id] = RUNNING
        return out

    def queued_or_running(self, now: float) -> int:
        return len(self.states(now))


def drive(policy, sched, seconds, target, workers_of, dt=1.0, start=0.0):
    """Step the policy every `dt` s from `start` to `seconds`; `workers_of(t, policy)`
    gives (workers, joined)."""
    t = start
    peak = 0
    while t <= seconds:
        policy.observe(sched.states(t), t)
        workers, joined = workers_of(t, policy)
        decision = policy.step(t, target(t), workers, joined)
        for _ in range(decision.submit):
            policy.submitted(sched.submit(t), t)
        sched.cancelled.update(decision.cancel)
        peak = max(peak, sched.queued_or_running(t))
        t += dt
    return peak


def joined_from_running(own: int, cpus: int):
    def workers_of(t, policy):
        joined = cpus * sum(1 for j in policy.jobs.values() if j.state == RUNNING)
        return own + joined, joined

    return workers_of


def test_a_burst_is_answered_by_one_submission_of_the_whole_shortfall_after_min_backlog():
    policy = ElasticPolicy(ElasticConfig(max_jobs=8, cpus_per_job=2, min_backlog_s=3, idle_s=100))
    sched = FakeScheduler(start_s=1)
    drive(policy, sched, 2, lambda t: 10, joined_from_running(2, 2))
    assert sched.jobs == {}, "nothing before min_backlog_s"
    drive(policy, sched, 20, lambda t: 10, joined_from_running(2, 2), start=3)
    assert len(sched.jobs) == 4  # (10 - 2) / 2 workers a job, all submitted at t = 3
    assert set(sched.jobs.values()) == {3.0}


def test_pending_jobs_count_as_coming_capacity_no_submit_storm():
    policy = ElasticPolicy(ElasticConfig(max_jobs=50, cpus_per_job=1, min_backlog_s=1, idle_s=1000))
    sched = FakeScheduler(start_s=None)  # the queue never starts them
    drive(policy, sched, 300, lambda t: 6, joined_from_running(2, 1))
    assert len(sched.jobs) == 4


def test_a_slow_queue_starts_the_jobs_late_and_nothing_more_is_asked_meanwhile():
    policy = ElasticPolicy(ElasticConfig(max_jobs=10, cpus_per_job=1, min_backlog_s=2, idle_s=1000))
    sched = FakeScheduler(start_s=60)

    def workers_of(t, policy):  # workers join 5 s after their job starts
        joined = sum(1 for j in policy.jobs.values() if j.started is not None and t >= j.started + 5)
        return 2 + joined, joined

    drive(policy, sched, 120, lambda t: 5, workers_of)
    assert len(sched.jobs) == 3
    assert all(j.state == RUNNING for j in policy.jobs.values())


def test_the_max_jobs_cap_holds_queued_plus_running():
    policy = ElasticPolicy(ElasticConfig(max_jobs=3, cpus_per_job=1, min_backlog_s=0, idle_s=1000))
    sched = FakeScheduler(start_s=2)
    peak = drive(policy, sched, 100, lambda t: 100, joined_from_running(2, 1))
    assert peak == 3
    assert len(sched.jobs) == 3


def test_jobs_that_fail_to_start_back_off_then_give_up():
    config = ElasticConfig(max_jobs=2, cpus_per_job=1, min_backlog_s=1, idle_s=1000, max_failures=3)
    policy = ElasticPolicy(config)
    sched = FakeScheduler(start_s=1, fail=True)  # every job ends as soon as it would run
    drive(policy, sched, 1000, lambda t: 10, joined_from_running(2, 1))
    assert policy.gave_up is not None and "3 worker jobs in a row" in policy.gave_up
    assert policy.failed >= 3
    # two jobs at t = 1 (after min_backlog_s) end at t = 2: two failures, a wait of
    # 2**2 x 1 s; two more at t = 6 end at t = 7: four in a row, no more submissions
    assert sorted(sched.jobs.values()) == [1.0, 1.0, 6.0, 6.0]
    assert policy.metrics(1000)["jobs_failed"] == policy.failed


def test_workers_above_the_target_for_idle_s_give_their_jobs_back():
    policy = ElasticPolicy(ElasticConfig(max_jobs=4, cpus_per_job=1, min_backlog_s=0, idle_s=10))
    sched = FakeScheduler(start_s=1)
    drive(policy, sched, 5, lambda t: 6, joined_from_running(2, 1))
    assert len(policy.live()) == 4
    drive(policy, sched, 15, lambda t: 4, joined_from_running(2, 1), start=6)
    assert len(policy.live()) == 4, "not before idle_s"
    drive(policy, sched, 30, lambda t: 4, joined_from_running(2, 1), start=16)
    assert len(policy.live()) == 2  # 6 workers, target 4: two jobs of one worker given back
    assert policy.metrics(30)["jobs_cancelled"] == 2


def test_finish_cancels_every_live_job_and_their_end_is_no_failure():
    policy = ElasticPolicy(ElasticConfig(max_jobs=3, cpus_per_job=2, min_backlog_s=0, idle_s=1000))
    sched = FakeScheduler(start_s=None)
    drive(policy, sched, 3, lambda t: 20, joined_from_running(2, 2))
    cancelled = policy.finish(4)
    assert sorted(cancelled) == sorted(sched.jobs)
    sched.cancelled.update(cancelled)
    policy.observe(sched.states(5), 5)
    assert policy.failed == 0 and policy.live() == {}
    assert all(j.state == GONE for j in policy.jobs.values())


@pytest.mark.parametrize("bad", [{"max_jobs": 0}, {"cpus_per_job": 0}, {"idle_s": -1}])
def test_bad_config_is_refused(bad):
    with pytest.raises(ValueError):
        ElasticConfig(**bad)
