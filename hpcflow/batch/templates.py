"""Job-script templates: a JobSpec as a SLURM or a PBS Pro script.

Both scripts end by `exec`-ing the launcher, so hpcflow *is* the batch shell and the
scheduler's SIGTERM before the walltime reaches it directly (hpcflow writes a checkpoint and stops).
SLURM is asked for that signal `WARNING_S` seconds early; PBS has no such request.
An --until-done job instead ends with the attempt logic of `untildone`, which passes
the signal on and submits the script again while the run is unfinished.
"""

from __future__ import annotations

import shlex

from .jobspec import JOINING_ENV, JobSpec
from .shell import end_workers_lines, launcher_lines, started_workers
from .untildone import Resubmission, attempt_lines

WARNING_S = 60  # SIGTERM this long before the walltime: time to write a checkpoint (mpi: to drain) and the metrics
PBS_KILL_DELAY_S = 10  # PBS's SIGTERM at the walltime comes this long before its SIGKILL (kill_delay's default)
SLURM_SCRIPT, PBS_SCRIPT = "job.sh", "job.pbs"  # the scripts' names in the run directory


def render_slurm(job: JobSpec) -> str:
    memory = job.memory()
    mem = f"{memory[0]}{memory[1]}" if memory else None
    directives = [
        f"--job-name={job.name}",
        f"--nodes={job.nodes}",
        "--ntasks-per-node=1",
        f"--cpus-per-task={job.cpus_per_node}",
        *_given("--time={}", job.walltime),
        *_given("--partition={}", job.partition),
        *_given("--account={}", job.account),
        *_given("--mem={}", mem),
        f"--output={job.run_dir / 'job.out'}",
        *(["--open-mode=append"] if job.resume_command else []),  # every attempt's lines in one job.out
        *(["--requeue"] if job.resume_command else []),  # a node failure: SLURM runs the job again, resuming
        f"--signal=B:{warning_signal(job)}@{warning_s(job)}",
    ]
    note = (
        f"# --signal: SLURM sends SIG{warning_signal(job)} to the batch shell {warning_s(job)} s before the walltime."
    )
    if job.resume_command:
        note += "\n# (USR1, not TERM: slurmstepd logs a TERM as the job CANCELLED; the shell passes it on as a TERM.)"
    again = Resubmission(
        "slurm",
        f'sbatch --parsable --dependency=afterany:"$SLURM_JOB_ID" {shlex.quote(str(job.run_dir / SLURM_SCRIPT))}',
        'scontrol show job -o "$SLURM_JOB_ID" | grep -q " JobState=RUNNING "',
        # SLURM counts a requeue in Restarts as it ends the job: more than when this instance started
        '[ "$(scontrol show job -o "$SLURM_JOB_ID" | grep -o " Restarts=[0-9]*" | cut -d= -f2)" -gt'
        ' "${SLURM_RESTART_COUNT:-0}" ] 2>/dev/null',
    )
    workers = []
    if job.nodes > 1:
        further = job.nodes - 1
        srun = ["srun", "--relative=1", f"--nodes={further}", f"--ntasks={further}", "--ntasks-per-node=1"]
        srun.append(f"--cpus-per-task={job.cpus_per_node}")
        workers = started_workers(shlex.join([*srun, *job.worker_command]) + " &")
    return _script("#SBATCH", directives, note, workers, job, again)


def render_pbs(job: JobSpec) -> str:
    memory = job.memory()
    chunk = f"select={job.nodes}:ncpus={job.cpus_per_node}:mpiprocs=1"
    if memory:
        chunk += f":mem={memory[0]}{memory[1].lower()}b"
    directives = [
        f"-N {job.name}",
        f"-l {chunk}",
        *_given("-l walltime={}", job.walltime),
        *_given("-q {}", job.partition),
        *_given("-A {}", job.account),
        "-j oe",
        f"-o {job.run_dir / 'job.out'}",
        "-V",
    ]
    note = (
        "# PBS has no early-warning signal: at the walltime it sends SIGTERM, then SIGKILL\n"
        "# after the server's kill_delay (10 s by default); -V passes this shell's environment."
    )
    if job.resume_command:
        note += (
            "\n# --until-done: the checkpoint and the next qsub must fit in that kill_delay; when they do\n"
            "# not, the newest --checkpoint-interval checkpoint is where `hpcflow resume` goes on from."
        )
    script = shlex.quote(str(job.run_dir / PBS_SCRIPT))
    # A qdel signals the job as the walltime does: qdel the next attempt too. Each attempt has its own output.
    again = Resubmission(
        "pbs", f'qsub -W depend=afterany:"$PBS_JOBID" -o "$run_dir/job.$((attempt + 1)).out" {script}', None
    )
    workers = []
    if job.nodes > 1:
        in_workdir = f"cd {shlex.quote(str(job.workdir))} && exec {shlex.join(job.worker_command)}"
        remote = shlex.join(["/bin/bash", "-c", in_workdir])
        each = started_workers(f'pbsdsh -n "$i" -- {remote} &')
        workers = [f"for i in $(seq 1 {job.nodes - 1}); do", *(f"    {line}" for line in each), "done"]
    return _script("#PBS", directives, note, workers, job, again)


def _given(form: str, value: str | None) -> list[str]:
    """The directive for an optional setting, or none: the scheduler's default applies."""
    return [] if value is None else [form.format(value)]


def warning_signal(job: JobSpec) -> str:
    """The early signal SLURM is asked for. The scripts that `exec` hpcflow take SIGTERM,
    which hpcflow handles. An --until-done script traps the signal and passes a SIGTERM on
    to hpcflow: it asks for USR1, as slurmstepd writes `*** JOB n CANCELLED ***` into
    job.out for every TERM it delivers, and a planned stop is no cancellation."""
    return "USR1" if job.resume_command else "TERM"


def warning_s(job: JobSpec) -> int:
    """How early SLURM is to send the SIGTERM: `WARNING_S`, but at most a quarter of a short
    walltime. slurmctld checks the clock about every 30 s and sends the signal at the first
    check that is within 30 s of the time asked for, so a warning close to the whole
    walltime would come at the start and leave no time for work."""
    walltime = job.walltime_s()
    return WARNING_S if walltime is None else max(1, min(WARNING_S, walltime // 4))


def drain_s(job: JobSpec, scheduler: str = "slurm") -> float:
    """The `mpi` mapping's drain timeout that fits the warning (SLURM's early SIGTERM, or
    PBS's kill_delay): half of it, so that the ranks stop, report and write metrics.json
    before the SIGKILL."""
    return (PBS_KILL_DELAY_S if scheduler == "pbs" else warning_s(job)) / 2


def _script(
    prefix: str, directives: list[str], note: str, workers: list[str], job: JobSpec, again: Resubmission
) -> str:
    lines = ["#!/bin/bash", *(f"{prefix} {d}" for d in directives), note, ""]
    lines += ["set -e", f"cd {shlex.quote(str(job.workdir))}"]
    lines += [f"module load {shlex.quote(m)}" for m in job.modules]
    if workers:
        lines += ["# One Redis worker on each further node; they join the run named after the run directory."]
        lines += ["# Each starts its node's CPUs in workers; the launcher's plan counts them, so it starts that many"]
        lines += ["# fewer itself (plan.own_pool) and no node runs more processes than it has CPUs."]
        lines += [f"export {JOINING_ENV}={job.joining}", 'workers=""', *workers]
    ending = end_workers_lines("TERM USR1" if job.resume_command else "TERM") if workers else []
    if job.resume_command:
        return "\n".join(lines + attempt_lines(job, again, ending)) + "\n"
    if workers:  # the shell stays, to end the worker step after the run
        lines += [
            "# hpcflow in the background: this shell passes the scheduler's SIGTERM on at once (shell.py).",
            f"set -- {shlex.join(job.run_command)}",
            *launcher_lines("TERM"),
            *ending,
            'exit "$status"',
        ]
        return "\n".join(lines) + "\n"
    lines += [
        "# exec: hpcflow replaces this shell, so the scheduler's SIGTERM reaches the launcher itself.",
        f"exec {shlex.join(job.run_command)}",
    ]
    return "\n".join(lines) + "\n"
