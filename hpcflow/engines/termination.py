"""Exact termination: counting, not idle timeouts.

Every task is counted when it is created (a root's whole feed up front, a PE's outputs
in the same report that completes the task that made them) and when it completes. A task
for PE Y can only exist while the task that created it is counted as pending upstream,
so "every upstream PE done, nothing pending for Y" means Y will never get another item.
Y is then finalized: each of its instances runs postprocess(), whose outputs are counted
for the PEs downstream before the instance reports back, and only then is Y done. The
run ends the moment the last PE is done.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class Termination:
    def __init__(self, order: Iterable[str], upstream: Mapping[str, Iterable[str]], finalizers: Mapping[str, int]):
        """`order`: PEs in topological order; `upstream`: each PE's upstream PEs;
        `finalizers`: how many instances of each PE must run postprocess() (0 for PEs a
        dynamic pool runs, whose postprocess is the no-op default)."""
        self.order = list(order)
        self.upstream = {pe: frozenset(upstream.get(pe, ())) for pe in self.order}
        self.finalizers = {pe: int(finalizers.get(pe, 0)) for pe in self.order}
        self.pending = {pe: 0 for pe in self.order}
        self._finalizing: set[str] = set()
        self._finalized: dict[str, set[int]] = {pe: set() for pe in self.order}
        self._done: set[str] = set()

    def created(self, pe: str, n: int = 1) -> None:
        self.pending[pe] += n

    def completed(self, pe: str, n: int = 1) -> None:
        self.pending[pe] -= n

    def is_done(self, pe: str) -> bool:
        return pe in self._done

    @property
    def all_done(self) -> bool:
        return len(self._done) == len(self.order)

    def ready_to_finalize(self) -> list[str]:
        """PEs that will get no more items and whose postprocess() may now run; each is
        returned once. PEs with no finalizers become done at once (and may unlock more)."""
        ready = []
        progress = True
        while progress:
            progress = False
            for pe in self.order:
                if pe in self._finalizing or self.pending[pe] != 0:
                    continue
                if not all(up in self._done for up in self.upstream[pe]):
                    continue
                self._finalizing.add(pe)
                if self.finalizers[pe] == 0:
                    self._done.add(pe)
                    progress = True
                else:
                    ready.append(pe)
        return ready

    def finalized(self, pe: str, instance: int) -> None:
        """Instance `instance` of `pe` ran postprocess() and its outputs were counted."""
        self._finalized[pe].add(instance)
        if len(self._finalized[pe]) >= self.finalizers[pe]:
            self._done.add(pe)

    def was_finalized(self, pe: str, instance: int) -> bool:
        return instance in self._finalized[pe]

    def finalized_instances(self) -> dict[str, list[int]]:
        """What a checkpoint keeps: the instances that ran postprocess(), by PE."""
        return {pe: sorted(done) for pe, done in self._finalized.items() if done}

    def restore(self, pending: dict[str, int], finalized: dict[str, list[int]]) -> None:
        """Continue from a checkpoint: the tasks not done, by PE (every other count is
        zero), and the instances that had run postprocess(). A PE of which only some
        instances had finalized is finalized again when ready: the others only."""
        self.pending = {pe: int(pending.get(pe, 0)) for pe in self.order}
        for pe, instances in finalized.items():
            for instance in instances:
                self.finalized(pe, instance)
        self._finalizing = set(self._done)

    def cancel_pending(self, pe: str, n: int) -> None:
        """Forget `n` tasks of `pe` that will never be given out (sources stopped early)."""
        self.pending[pe] -= n

    def holding_work(self) -> dict[str, int]:
        """PEs with pending tasks, for a stall report."""
        return {pe: n for pe, n in self.pending.items() if n}
