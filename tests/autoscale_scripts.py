"""Scripted loads for the auto-scaling tests: observations on a fake clock, fed to a
scaler as the coordinator would, with the coordinator's effect on `active` applied
between steps (every target reached at once, as on shared memory)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from hpcflow.autoscale import AutoScaler, Observation

INTERVAL = 0.1
SERVICE = {"Work": 0.1}  # seconds a task, already measured


def observe(t: float, queued: int, busy: int, active: int, service: dict[str, float] | None = None) -> Observation:
    """The pool at `t`: `queued` tasks of PE "Work", `busy` of `active` workers running."""
    service = SERVICE if service is None else service
    return Observation(
        t=t,
        queued=queued,
        active=active,
        busy=min(busy, active),
        queued_by_pe={"Work": queued} if queued else {},
        service_s=service,
    )


Load = Callable[[int, int], tuple[int, int]]
"""(step number, active workers) -> (queued, busy) at that step."""


def drive(scaler: AutoScaler, load: Load, steps: int) -> list[int]:
    """Targets of `steps` observations of `load`, one every INTERVAL from t = 0."""
    active = scaler.initial()
    targets = []
    for i in range(steps):
        queued, busy = load(i, active)
        active = scaler.step(observe(i * INTERVAL, queued, busy, active))
        targets.append(active)
    return targets


def burst(size: int, at: int = 0) -> Load:
    """Nothing, then `size` queued tasks from step `at` on, every active worker busy."""
    return lambda i, active: (size, active) if i >= at else (0, 0)


def constant(queued: int, busy: int) -> Load:
    return lambda i, active: (queued, busy)


def cycle(values: Iterable[tuple[int, int]]) -> Load:
    """A noisy flat load: the same few (queued, busy) samples over and over."""
    samples = list(values)
    return lambda i, active: samples[i % len(samples)]
