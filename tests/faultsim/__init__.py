"""Randomized fault schedules (issue 25), in the manner of Jepsen and FoundationDB's
simulation testing: a seed draws a schedule (a mapping, settings, and faults at moments
of the run and of its resumes); the runner plays it against the real `hpcflow` command
and checks one invariant at every end: a run never ends `ok` unless its outputs equal
`simple`'s exactly, and every other end is resumed to the exact result or refused with
one clear line (exit 2, no traceback).

`schedule.py` draws (a pure function of the seed), `inject.py` does the harm,
`runner.py` plays one schedule and judges it, `workflow.py` is the stateful workflow
whose answer is known. tests/test_fault_schedules.py runs a fixed set in CI;
experiments/bench/faults.py runs as many as asked and writes the table.
"""
