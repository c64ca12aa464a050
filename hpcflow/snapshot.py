"""The snapshot contract of a stateful PE: what a checkpoint keeps of an instance.

By default an instance's own attributes are pickled: what `__init__` and `preprocess()`
set up and `process()` updates (a word count's dict, a running total). The attributes
the framework gives every PE (its name, ports, instance number, output function) are
left out: the instance that restores it has them already. A PE whose state does not
pickle (an open file, a model, a connection) defines

    def snapshot(self):          # -> anything picklable
    def restore(self, state):    # given what snapshot() returned

and is restored after its `preprocess()` ran again in the new process, so `preprocess()`
can reopen what `restore()` then positions. dispel4py has no such contract; a PE written
for it is checkpointed by the default.
"""

from __future__ import annotations

import pickle
from typing import Any

from .errors import PEError

# set by GenericPE.__init__ and the graph: the same in every instance that restores
FRAMEWORK_ATTRS = frozenset({"name", "inputconnections", "outputconnections", "instance", "_emit", "_graph_id"})


def take_snapshot(pe: Any) -> bytes:
    """The pickled state of instance `pe` (PEError naming the PE if it cannot be pickled)."""
    if callable(getattr(pe, "snapshot", None)):
        state, how = pe.snapshot(), "what its snapshot() returned"
    else:
        state = {k: v for k, v in vars(pe).items() if k not in FRAMEWORK_ATTRS}
        how = "its attributes"
    try:
        return pickle.dumps(state, pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise PEError(
            pe.name,
            pe.instance,
            "<checkpoint>",
            f"{how} cannot be pickled for a checkpoint ({type(exc).__name__}: {exc}); define snapshot() and "
            "restore(state) on the PE",
        ) from None


def restore_snapshot(pe: Any, blob: bytes) -> None:
    """Give instance `pe` (after its preprocess()) the state `take_snapshot` pickled."""
    state = pickle.loads(blob)
    if callable(getattr(pe, "restore", None)):
        pe.restore(state)
    else:
        vars(pe).update(state)
