"""`ProcessTimingPE`, as dispel4py's `new.monitoring` has it: wrap a PE to log the mean
time of its `process()` calls when it finishes.

dispel4py rewrites the wrapped object's class in place; here the wrapper is a PE of its
own that takes the wrapped PE's name and ports and hands every call on, so it pickles
to any worker. It only observes: the plan judges statefulness by the wrapped PE, so
timing a PE never moves it out of a dynamic pool.
"""

from __future__ import annotations

import time
from typing import Any

from .pe import GenericPE, explicit_numprocesses


class ProcessTimingPE(GenericPE):
    """`ProcessTimingPE(pe)` runs `pe` and, after its last input, logs
    "Average processing time: <seconds>" for this instance."""

    def __init__(self, pe: GenericPE):
        super().__init__()
        self._wrapped = pe
        self.name = pe.name
        self.inputconnections = pe.inputconnections
        self.outputconnections = pe.outputconnections
        self.stateful = pe.stateful
        fixed = explicit_numprocesses(pe)
        if fixed is not None:
            self.numprocesses = fixed
        self.times_total = 0.0
        self.times_count = 0

    def _hand_on(self) -> GenericPE:
        pe = self._wrapped
        pe._emit, pe.instance, pe.name = self._emit, self.instance, self.name
        return pe

    def preprocess(self) -> None:
        self._hand_on().preprocess()

    def process(self, inputs: dict[str, Any]) -> dict[str, Any] | None:
        t0 = time.perf_counter()
        result = self._hand_on().process(inputs)
        self.times_total += time.perf_counter() - t0
        self.times_count += 1
        return result

    def postprocess(self) -> None:
        self._hand_on().postprocess()
        if self.times_count:
            self.log(f"Average processing time: {self.times_total / self.times_count}")
