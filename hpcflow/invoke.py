"""Calling a PE's code: the one place that installs its output sink, counts its items and
turns what it raises into a PEError naming the PE, the instance and the item.

Every engine calls PEs through an Invoker, so the error policy (`on_error`: fail, skip,
retry:N) means the same thing in every mapping. Under skip and retry the outputs of a
call are held back until the call succeeds, so a failed or retried item never leaves
half of its outputs downstream. An output that cannot be routed (its group-by key is
missing) fails the run under every policy: it is a mismatch of graph and data, not a bad item.
"""

from __future__ import annotations

import reprlib
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .errors import PEError, UsageError
from .pe import GenericPE

Sink = Callable[[str, str, Any], None]  # (pe name, output port, data)

# What a PE's code may raise to fail an item. sys.exit() in a PE is a failure of that PE
# like any other (named, and under the on_error policy), not the end of the worker
# process or of the caller's interpreter; KeyboardInterrupt still stops the run.
PE_FAILURES = (Exception, SystemExit)

_repr = reprlib.Repr()
_repr.maxstring = 80
_repr.maxother = 80
_repr.maxlevel = 3


def short_repr(obj: Any) -> str:
    return _repr.repr(obj)


@dataclass(frozen=True)
class ErrorPolicy:
    mode: str = "fail"  # fail | skip | retry
    retries: int = 0
    then: str = "fail"  # what retry does when the retries are used up

    @classmethod
    def parse(cls, spec: str | None) -> ErrorPolicy:
        spec = (spec or "fail").strip()
        if spec in ("fail", "skip"):
            return cls(spec)
        if spec.startswith("retry"):
            head, _, rest = spec.partition(",")
            _, _, n = head.partition(":")
            then = rest.strip() or "fail"
            if n.isdigit() and int(n) >= 1 and then in ("fail", "skip"):
                return cls("retry", int(n), then)
        raise UsageError(f"unknown on_error {spec!r}; use fail, skip, retry:N or retry:N,skip")


def _no_write_in_preprocess(name: str) -> Callable[[str, Any], None]:
    def refuse(port: str, data: Any) -> None:
        raise UsageError(
            f"PE {name} wrote to {port!r} in preprocess(), which runs once per process, not once per run; "
            "write in process() or postprocess()"
        )

    return refuse


class Invoker:
    """Runs the PEs of one process and sends what they write to `sink`."""

    def __init__(self, pes: Iterable[GenericPE], sink: Sink, policy: ErrorPolicy | None = None):
        self.pes = {pe.name: pe for pe in pes}
        self.policy = policy or ErrorPolicy()
        self.items: Counter[str] = Counter()
        self.errors: list[dict[str, Any]] = []
        self._sink = sink
        self._held: list[tuple[str, str, Any]] | None = None
        for pe in self.pes.values():
            pe._emit = self._emitter(pe.name)
        self._plain = {n for n, pe in self.pes.items() if type(pe).write is GenericPE.write}  # write() not overridden

    def _emitter(self, name: str) -> Callable[[str, Any], None]:
        def emit(port: str, data: Any) -> None:
            if self._held is None:
                self._sink(name, port, data)
            else:
                self._held.append((name, port, data))

        return emit

    def preprocess(self, name: str) -> None:
        """Run `name`'s preprocess(), which must not write: it runs once per process that
        hosts the PE (every worker of a dynamic pool), so what it wrote would be copied
        or lost depending on the mapping."""
        pe = self.pes[name]
        pe._emit = _no_write_in_preprocess(name)
        try:
            self._call(name, pe.preprocess, None, "<preprocess>")
        finally:
            pe._emit = self._emitter(name)

    def postprocess(self, name: str) -> None:
        self._call(name, self.pes[name].postprocess, None, "<postprocess>")

    def process(self, name: str, inputs: dict[str, Any]) -> None:
        """Run one item through PE `name`; raises PEError under on_error=fail."""
        self.items[name] += 1
        pe = self.pes[name]
        if self.policy.mode != "fail":
            self._call(name, lambda: self._write_result(pe, pe.process(inputs)), inputs, None)
            return
        try:  # the hot path: no closures, outputs of declared ports straight to the sink
            result = pe.process(inputs)
            if result:
                if type(result) is dict and name in self._plain:
                    declared, sink = pe.outputconnections, self._sink
                    for port, data in result.items():
                        if port in declared:
                            sink(name, port, data)
                        else:
                            pe.write(port, data)
                else:
                    self._write_result(pe, result)
        except PE_FAILURES as exc:
            raise self._error(name, inputs, None, exc) from None

    @staticmethod
    def _write_result(pe: GenericPE, result: dict[str, Any] | None) -> None:
        if result is None:
            return
        if not isinstance(result, dict):
            raise UsageError(
                f"PE {pe.name}: process() returned a {type(result).__name__}; "
                "return a dict {output port: data} or None, or call write()"
            )
        write = pe.write
        for port, data in result.items():
            write(port, data)

    def _call(self, name: str, fn: Callable[[], Any], inputs: Any, label: str | None) -> None:
        policy = self.policy
        if policy.mode == "fail":
            try:
                fn()
            except PE_FAILURES as exc:
                raise self._error(name, inputs, label, exc) from None
            return
        attempts = 1 + policy.retries
        for attempt in range(attempts):
            self._held = []
            try:
                fn()
            except PE_FAILURES as exc:
                err = self._error(name, inputs, label, exc)
                if attempt + 1 < attempts:
                    continue
                if (policy.then if policy.mode == "retry" else policy.mode) == "skip":
                    self.errors.append(
                        {
                            "pe": err.pe,
                            "instance": err.instance,
                            "item": err.item,
                            "error": err.error,
                            "attempts": attempts,
                            "traceback": err.tb,
                        }
                    )
                    return
                raise err from None
            finally:
                held, self._held = self._held, None
            try:
                for out in held:
                    self._sink(*out)
            except Exception as exc:  # routing (a group-by key missing): never skipped, as under fail
                raise self._error(name, inputs, label, exc) from None
            return

    def _error(self, name: str, inputs: Any, label: str | None, exc: BaseException) -> PEError:
        if isinstance(exc, PEError):
            return exc
        pe = self.pes[name]
        item = label or short_repr(inputs)
        tb = traceback.format_exc()
        if isinstance(exc, SystemExit):
            return PEError(name, pe.instance, item, f"SystemExit: the PE called sys.exit({exc.code!r})", tb)
        return PEError(name, pe.instance, item, f"{type(exc).__name__}: {exc}", tb)
