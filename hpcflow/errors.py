"""The two kinds of failure a user sees, and how the CLI answers them.

`UsageError` is bad input (unknown mapping, a cycle, too few processes...): the CLI
prints its one line and exits 2. `PEError` is a processing element that raised while
running: the run stops, metrics are still written, and the CLI exits 1.
"""

from __future__ import annotations


class HpcflowError(Exception):
    """Base class of every error hpcflow raises on purpose."""


class UsageError(HpcflowError):
    """Bad input: a workflow, mapping, option or graph that cannot run as given."""


class GraphError(UsageError):
    """A workflow graph that is malformed (unknown port, cycle, PE in two graphs)."""


class PEError(HpcflowError):
    """A PE raised while processing an item (or in preprocess/postprocess)."""

    def __init__(self, pe: str, instance: int | None, item: str, error: str, tb: str = ""):
        self.pe = pe
        self.instance = instance
        self.item = item
        self.error = error
        self.tb = tb
        where = pe if instance is None else f"{pe}[{instance}]"
        super().__init__(f"PE {where} failed on item {item}: {error}")

    def __reduce__(self):
        return (PEError, (self.pe, self.instance, self.item, self.error, self.tb))


class RunAborted(HpcflowError):
    """The run could not finish: a lost pinned instance, a signal, a stall."""

    def __init__(self, message: str, exit_code: int = 1, tb: str = ""):
        super().__init__(message)
        self.exit_code = exit_code
        self.tb = tb  # where it happened, for --debug and the run log; not part of the message

    def __reduce__(self):
        return (RunAborted, (str(self), self.exit_code, self.tb))
