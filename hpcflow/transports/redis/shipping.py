"""How a run's setup (graph, plan, options) reaches workers through Redis: pickled with
cloudpickle, as Dask and Ray ship code. Plain pickle stores a function by its name, so a
PE holding a function defined inside another function, or a lambda, could not leave the
process that made it; cloudpickle stores such a function by value. Workers read the setup
with plain `pickle.loads` (cloudpickle must be installed where they run: it comes with the
`redis` extra). What still cannot be shipped (an open file, a lock, a connection) is
refused before the run, naming the PE that holds it.
"""

from __future__ import annotations

from typing import Any

import cloudpickle

from ...engines.protocol import PROTOCOL
from ...errors import UsageError
from ...graph import WorkflowGraph


def ship(setup: Any) -> bytes:
    """The bytes of `setup` a worker on any node unpickles."""
    return cloudpickle.dumps(setup, PROTOCOL)


def check_shippable(graph: WorkflowGraph) -> None:
    """Refuse, naming the PE, a graph whose PEs cannot be shipped to a Redis worker."""
    for pe in graph.pes:
        try:
            cloudpickle.dumps(pe, PROTOCOL)
        except Exception as exc:  # pickling raises many kinds: each is this one failure
            raise UsageError(
                f"PE {pe.name} cannot be shipped to the Redis workers (cloudpickle: {type(exc).__name__}: {exc}); "
                "create what it holds in preprocess(), which runs in the worker"
            ) from None
