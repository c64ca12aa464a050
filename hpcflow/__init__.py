"""hpcflow: stream-based scientific workflows (dispel4py's API) inside HPC batch allocations."""

__version__ = "0.1.0"

from .api import run  # noqa: E402
from .errors import GraphError, HpcflowError, PEError, UsageError  # noqa: E402
from .graph import WorkflowGraph, create_iterative_chain  # noqa: E402
from .pe import ConsumerPE, GenericPE, IterativePE, ProducerPE, SimpleFunctionPE  # noqa: E402

__all__ = [
    "ConsumerPE",
    "GenericPE",
    "GraphError",
    "HpcflowError",
    "IterativePE",
    "PEError",
    "ProducerPE",
    "SimpleFunctionPE",
    "UsageError",
    "WorkflowGraph",
    "create_iterative_chain",
    "run",
    "__version__",
]
