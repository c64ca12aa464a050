"""Shell lines that job scripts share: the launcher in the background of the batch
shell, and the end of the worker step that a job of several nodes starts beside it.

A batch shell that stays (rather than `exec` hpcflow) runs hpcflow in the background and
`wait`s for it: bash runs a trap only between commands, and an interrupted `wait` is the
one place where that is at once, so a signal for the batch shell alone (SLURM's
`--signal=B:...`) is passed on to hpcflow as a SIGTERM without delay.

The worker step (`srun ... hpcflow worker` or PBS's `pbsdsh`) ends by itself once the run
is over: its workers leave when the run's keys are gone. Its client on the first node can
still miss the end of a task: a node whose link was cut when its worker gave up sends that
exit to no one, and `srun` waits for it forever. A cluster that tracks a job's processes
by cgroup ends such an `srun` with the job; one that tracks them by parentage
(proctrack/linuxproc, proctrack/pgid without a process group of its own) loses it once
the batch shell is gone. So the batch shell ends its worker step itself: it waits
`WORKERS_GRACE_S` for the step to end, then ends it (TERM, then KILL).
"""

from __future__ import annotations

WORKERS_GRACE_S = 15  # after the run: time for the workers on the other nodes to leave by themselves
WORKERS_KILL_S = 5  # after the TERM: time for srun/pbsdsh to end the step before the KILL


def started_workers(command: str) -> list[str]:
    """`command` (ending with `&`) started, its pid added to $workers."""
    return [command, 'workers="$workers $!"']


def launcher_lines(signals: str) -> list[str]:
    """Run the launcher, "$@", in the background; `signals` are passed on to it as a
    SIGTERM. Leaves its exit code in $status."""
    return [
        f"trap 'kill -TERM \"$launcher\" 2>/dev/null || :' {signals}",  # (a failing trap ends a set -e shell)
        '"$@" &',
        "launcher=$!",
        'while kill -0 "$launcher" 2>/dev/null; do wait "$launcher" || :; done',
        "status=0",
        'wait "$launcher" || status=$?',
    ]


def end_workers_lines(signals: str) -> list[str]:
    """End the worker step if it is still there once the run is over; at once on one of
    `signals` (the walltime is near)."""
    return [
        "# The worker step: its workers leave once the run is over; its client is ended if it missed",
        "# the end of a task (a node out of reach when its worker gave up), so nothing outlives the job.",
        'workers_alive() { for pid in $workers; do kill -0 "$pid" 2>/dev/null && return 0; done; return 1; }',
        f"hurry=false && trap 'hurry=true' {signals}",
        f"for _ in $(seq {WORKERS_GRACE_S}); do workers_alive && ! $hurry || break; sleep 1; done",
        "if workers_alive; then",
        '    echo "hpcflow: the worker step outlived the run: ending it"',
        "    kill -TERM $workers 2>/dev/null || :",
        f"    for _ in $(seq {WORKERS_KILL_S}); do workers_alive || break; sleep 1; done",
        "    kill -KILL $workers 2>/dev/null || :",
        "fi",
    ]
