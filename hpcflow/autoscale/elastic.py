"""Elastic allocations: when to ask the batch scheduler for worker jobs, and when to give them back.

The backlog policy sizes the pool inside the workers a run has; when its target stays
above them, only more jobs help. This policy turns (target, workers, the state of the
jobs it asked for) into decisions, shaped like Dask's `AdaptiveCore` (planned,
requested, observed) and Parsl's block strategy, with no scheduler, process or clock of
its own: `batch.elastic` runs the commands, tests drive it with a fake clock.

- Submit when the target exceeds the workers the run has *plus the capacity still
  coming* (pending jobs, and running jobs whose workers have not joined yet) for
  `min_backlog_s` without a break: a queue that waits does not cause a submit storm.
  The whole shortfall is asked for at once (a burst is one decision), in jobs of
  `cpus_per_job` workers, never more than `max_jobs` queued or running.
- A job that ends on its own while the run goes on has failed: its workers would have
  served until the run ended. Each failure doubles the wait before the next
  submission (from `min_backlog_s`); after `max_failures` in a row, the policy gives up
  submitting for the rest of the run and says why (`gave_up`). A job seen running
  resets the count.
- Cancel when the workers stay above the target for `idle_s` without a break (the
  surplus is parked or idle workers): first pending jobs, then running ones, newest
  first, only as many as the surplus covers in whole jobs. Which workers a job holds
  is not known here, so a cancelled job may take a busy worker with it; the Redis
  transport replays what it held (fenced, issue #17), so nothing is lost, only redone.
- At the end of the run, every job still queued or running is cancelled (`finish`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..batch.jobspec import WALLTIME

PENDING, RUNNING, GONE = "pending", "running", "gone"
"""A job's state as the scheduler reports it: queued, started, or no longer there."""


@dataclass(frozen=True)
class ElasticConfig:
    """The `elastic:` settings of a run (config file keys of the same names)."""

    max_jobs: int = 4  # worker jobs queued or running at once
    cpus_per_job: int = 1  # CPUs each job asks for, and the workers it starts
    walltime: str | None = None  # HH:MM:SS of each job; the scheduler's default if unset
    min_backlog_s: float = 5.0  # the target must exceed the workers this long before a submission
    idle_s: float = 30.0  # workers above the target this long: their jobs are cancelled
    max_failures: int = 3  # jobs ending on their own in a row before the policy stops submitting

    def __post_init__(self) -> None:
        if self.max_jobs < 1 or self.cpus_per_job < 1 or self.max_failures < 1:
            raise ValueError("elastic max_jobs, cpus_per_job and max_failures must be at least 1")
        if self.min_backlog_s < 0 or self.idle_s < 0:
            raise ValueError("elastic min_backlog_s and idle_s must be 0 or more seconds")
        if self.walltime is not None and not WALLTIME.fullmatch(self.walltime):
            raise ValueError(f"elastic walltime {self.walltime!r} is not HH:MM:SS")


@dataclass(frozen=True)
class Decision:
    submit: int = 0  # jobs to submit now
    cancel: tuple[str, ...] = ()  # job ids to cancel now


@dataclass
class Job:
    """One job the policy asked for: when it was submitted, started and ended."""

    submitted: float
    state: str = PENDING
    started: float | None = None
    ended: float | None = None
    cancelled: bool = False

    def held_s(self, now: float) -> float:
        """Seconds it has held its CPUs (running), up to now or its end."""
        if self.started is None:
            return 0.0
        return (self.ended if self.ended is not None else now) - self.started


@dataclass
class ElasticPolicy:
    config: ElasticConfig = field(default_factory=ElasticConfig)
    jobs: dict[str, Job] = field(default_factory=dict)
    failures: int = 0  # jobs that ended on their own since the last one seen running
    failed: int = 0  # in all
    gave_up: str | None = None
    _short_since: float | None = None  # since when the target has exceeded the coming capacity
    _surplus_since: float | None = None  # since when the workers have exceeded the target
    _not_before: float = 0.0  # no submission before this (back-off after a failure)

    def live(self) -> dict[str, Job]:
        """The jobs queued or running."""
        return {i: j for i, j in self.jobs.items() if j.state != GONE}

    def submitted(self, job_id: str, now: float) -> None:
        """Record a job the caller submitted after a decision."""
        self.jobs[job_id] = Job(submitted=now)

    def observe(self, states: Mapping[str, str], now: float) -> None:
        """The scheduler's states of our live jobs; a job it no longer lists is gone."""
        for job_id, job in self.live().items():
            state = states.get(job_id, GONE)
            if state == RUNNING and job.started is None:
                job.started = now
                self.failures = 0
            if state == GONE:
                job.ended = now
                if not job.cancelled:
                    self.failed_job(now)
            job.state = state

    def failed_job(self, now: float) -> None:
        self.failures += 1
        self.failed += 1
        if self.gave_up is None and self.failures >= self.config.max_failures:
            self.gave_up = (
                f"{self.failures} worker jobs in a row ended on their own while the run went on; "
                "no more are submitted (see their job.out under elastic/)"
            )
        self._not_before = now + max(1.0, self.config.min_backlog_s) * 2**self.failures

    def step(self, now: float, target: int, workers: int, joined: int) -> Decision:
        """Decide, given the workers the run wants (`target`, not clamped to what it
        has), the pool workers it has (`workers`) and how many of them joined from jobs
        (`joined`); call `observe` first."""
        cfg = self.config
        live = self.live()
        pending = [i for i, j in live.items() if j.state == PENDING]
        running = [i for i, j in live.items() if j.state == RUNNING]
        coming = cfg.cpus_per_job * len(pending) + max(0, cfg.cpus_per_job * len(running) - joined)
        short = target - workers - coming
        self._short_since = (self._short_since if self._short_since is not None else now) if short > 0 else None
        self._surplus_since = (
            (self._surplus_since if self._surplus_since is not None else now) if workers > target else None
        )
        if short > 0 and self.gave_up is None and now >= self._not_before:
            if now - self._short_since >= cfg.min_backlog_s:
                n = min(math.ceil(short / cfg.cpus_per_job), cfg.max_jobs - len(live))
                if n > 0:
                    self._short_since = now  # the next shortfall waits its own min_backlog_s
                    return Decision(submit=n)
        if self._surplus_since is not None and now - self._surplus_since >= cfg.idle_s and live:
            surplus = workers - target + coming
            newest = sorted(pending, key=lambda i: -live[i].submitted)
            newest += sorted(running, key=lambda i: -live[i].submitted)
            cancel = tuple(newest[: surplus // cfg.cpus_per_job])
            if cancel:
                self._surplus_since = now
                return Decision(cancel=self.cancelling(cancel, now))
        return Decision()

    def cancelling(self, job_ids: tuple[str, ...], now: float) -> tuple[str, ...]:
        """Mark jobs as cancelled by us: gone from now on, and not a failure."""
        for job_id in job_ids:
            job = self.jobs[job_id]
            job.cancelled, job.state, job.ended = True, GONE, now
        return job_ids

    def finish(self, now: float) -> tuple[str, ...]:
        """The run ended: every job still queued or running, to cancel."""
        return self.cancelling(tuple(self.live()), now)

    def metrics(self, now: float) -> dict:
        jobs = self.jobs.values()
        return {
            "jobs_submitted": len(self.jobs),
            "jobs_started": sum(1 for j in jobs if j.started is not None),
            "jobs_cancelled": sum(1 for j in jobs if j.cancelled),
            "jobs_failed": self.failed,
            "job_process_s": round(sum(j.held_s(now) for j in jobs) * self.config.cpus_per_job, 3),
            "gave_up": self.gave_up,
        }
