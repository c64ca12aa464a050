"""hpcflow: stream-based scientific workflows (dispel4py's API) inside HPC batch allocations.

Everything a dispel4py workflow imports from `dispel4py.core`, `dispel4py.base`,
`dispel4py.workflow_graph` and `dispel4py.new.monitoring` is importable from here."""

__version__ = "0.1.0"

from .api import run  # noqa: E402
from .composite import CompositePE  # noqa: E402
from .draw import draw  # noqa: E402
from .errors import GraphError, HpcflowError, PEError, UsageError  # noqa: E402
from .graph import WorkflowGraph, create_iterative_chain  # noqa: E402
from .graphview import WorkflowNode  # noqa: E402
from .monitoring import ProcessTimingPE  # noqa: E402
from .pe import (  # noqa: E402
    DESCRIPTION,
    GROUPING,
    META,
    NAME,
    TYPE,
    WRITER,
    BasePE,
    ConsumerPE,
    GenericPE,
    IterativePE,
    ProducerPE,
    SimpleFunctionPE,
)

__all__ = [
    "DESCRIPTION",
    "GROUPING",
    "META",
    "NAME",
    "TYPE",
    "WRITER",
    "BasePE",
    "CompositePE",
    "ConsumerPE",
    "GenericPE",
    "GraphError",
    "HpcflowError",
    "IterativePE",
    "PEError",
    "ProcessTimingPE",
    "ProducerPE",
    "SimpleFunctionPE",
    "UsageError",
    "WorkflowGraph",
    "WorkflowNode",
    "create_iterative_chain",
    "draw",
    "run",
    "__version__",
]
