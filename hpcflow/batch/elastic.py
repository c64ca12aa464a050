"""The elastic controller: the run's own worker jobs, submitted and given back as it goes.

The coordinator hands it what it sees at each sample (`observe`, a few attribute
writes); a thread of its own asks the scheduler for its jobs' states (one `squeue` /
`qstat` call a step, every `STEP_S`), asks the policy (`autoscale.elastic`) what to do
and does it, so a slow scheduler command never holds up the coordinator's loop. The
jobs run `hpcflow worker --redis-url ... --run ... --cpus N`, rendered with the same
templates as `hpcflow submit`; each has a folder under RUN_DIR/elastic/ for its script
and job.out.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

from ..autoscale.backlog import BacklogPolicy
from ..autoscale.elastic import PENDING, RUNNING, ElasticConfig, ElasticPolicy
from ..autoscale.observation import Observation
from ..config import BatchConfig
from ..errors import UsageError
from ..rundir import safe_name
from .jobspec import JobSpec
from .schedulers import Scheduler, find_scheduler
from .submit import requested, submit_job

log = logging.getLogger("hpcflow.elastic")
STEP_S = 2.0
"""Seconds between two looks at the queue: a scheduler answers in tens of milliseconds
but serves every user of the cluster, and jobs take seconds to start anyway."""


def worker_job(
    run_dir: Path, redis_url: str | None, config: ElasticConfig, batch: BatchConfig, n: int, python: str
) -> JobSpec:
    """The `n`th worker job of the run in `run_dir`: `cpus_per_job` workers joining it."""
    command = [python, "-m", "hpcflow", "worker", "--redis-url", redis_url or "auto", "--run", run_dir.name]
    command += ["--cpus", str(config.cpus_per_job), "--key-file", str(run_dir / "run.key")]
    if redis_url in (None, "auto"):  # the launcher's private server: its URL is in the run directory
        command += ["--run-dir", str(run_dir)]
    folder = run_dir / "elastic" / f"job-{n}"
    folder.mkdir(parents=True, exist_ok=True)
    resources = requested(batch)
    resources["walltime"] = config.walltime or batch.walltime
    return JobSpec(
        name=f"hpcflow-worker-{safe_name(run_dir.name)}"[:64],
        workdir=Path.cwd().absolute(),
        run_dir=folder,
        run_command=tuple(command),
        cpus=config.cpus_per_job,
        **resources,
    )


class ElasticController:
    """Worker jobs for one run, between `start` and `close`."""

    def __init__(
        self,
        config: ElasticConfig,
        run_dir: Path,
        redis_url: str | None,
        batch: BatchConfig | None = None,
        scheduler: Scheduler | None = None,
        python: str = sys.executable,
    ) -> None:
        self.config = config
        self.policy = ElasticPolicy(config)
        self.backlog = BacklogPolicy()  # the target, not clamped to the workers the run has
        self.scheduler = scheduler or find_scheduler((batch or BatchConfig()).scheduler)
        self.make_job = lambda n: worker_job(run_dir, redis_url, config, batch or BatchConfig(), n, python)
        self.inputs = (0, 0, 0)  # (target, workers, joined) at the last sample
        self.peak_target = 0
        self.errors: list[str] = []
        self.latest: dict = {}  # the jobs after the last step, for status.json (replaced whole, never changed)
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="hpcflow-elastic", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def observe(self, obs: Observation, workers: int, joined: int) -> None:
        """From the coordinator's sampling step: what the pool wants and has."""
        target = self.backlog.want(obs)
        self.peak_target = max(self.peak_target, target)
        self.inputs = (target, workers, joined)

    def _loop(self) -> None:
        while not self._halt.wait(STEP_S):
            try:
                self.step(time.monotonic())
            except (OSError, UsageError) as exc:  # a scheduler command failed: try again next step
                self.errors.append(str(exc))
                log.warning("elastic: %s", exc)

    def step(self, now: float) -> None:
        live = list(self.policy.live())
        self.policy.observe(self.scheduler.job_states(live), now)
        decision = self.policy.step(now, *self.inputs)
        if decision.cancel:
            log.info("elastic: cancelling job(s) %s", " ".join(decision.cancel))
            self.scheduler.cancel(list(decision.cancel))
        for _ in range(decision.submit):
            job_id = submit_job(self.make_job(len(self.policy.jobs) + 1), self.scheduler)
            self.policy.submitted(job_id, now)
            log.info("elastic: submitted worker job %s", job_id)
        states = [job.state for job in self.policy.live().values()]
        self.latest = {
            **self.policy.metrics(now),
            "pending": states.count(PENDING),
            "running": states.count(RUNNING),
            "scheduler": self.scheduler.name,
        }

    def halt(self) -> None:
        """The run is ending: decide nothing more (its workers are being stopped)."""
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join()

    def close(self) -> dict:
        """Cancel every job still queued or running; the metrics of the `elastic` key."""
        self.halt()
        now = time.monotonic()
        left = self.policy.finish(now)
        if left:
            try:
                self.scheduler.cancel(list(left))
            except OSError as exc:  # said in the metrics and the log; the run's result stands
                self.errors.append(str(exc))
                log.error("elastic: could not cancel job(s) %s: %s", " ".join(left), exc)
        return {
            **self.policy.metrics(now),
            "scheduler": self.scheduler.name,
            "job_ids": list(self.policy.jobs),
            "peak_target": self.peak_target,
            "scheduler_errors": self.errors[-5:],
            **{k: v for k, v in vars(self.config).items() if v is not None},
        }


def start_elastic(options) -> ElasticController | None:
    """The started controller of a run's own worker jobs, if `options.elastic` asks for
    them; the run directory is where `hpcflow run` put the run's key."""
    if options.elastic is None:
        return None
    controller = ElasticController(options.elastic, Path(options.key_file).parent, options.redis_url, options.batch)
    controller.start()
    return controller
