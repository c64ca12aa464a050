"""Workflow loading: a built-in name, a module path, or a `.py` file that exposes
`build(**params) -> (graph, inputs[, info])` (and may declare its parameters in `PARAMS`,
see params.py), or a dispel4py-style module with a `WorkflowGraph` attribute
(`module.py:NAME` picks one, as dispel4py's `-a NAME`)."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..graph import WorkflowGraph
from .params import check_params

BUILTINS = {
    "galaxy": "hpcflow.workflows.galaxy",
    "seismic": "hpcflow.workflows.seismic",
    "sentiment": "hpcflow.workflows.sentiment",
    "pipeline": "hpcflow.workflows.pipeline",
}


@dataclass
class Workflow:
    name: str
    graph: WorkflowGraph
    inputs: Any
    info: dict[str, Any] = field(default_factory=dict)  # extra metrics, e.g. work_s


def _import(spec: str):
    if spec in BUILTINS:
        return importlib.import_module(BUILTINS[spec])
    path = Path(spec)
    if spec.endswith(".py"):
        if not path.is_file():
            raise UsageError(f"workflow file {spec} does not exist")
        mod_name = f"hpcflow_user_{path.stem}"
        mspec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(mspec)
        sys.modules[mod_name] = module
        try:
            mspec.loader.exec_module(module)
        except Exception as exc:
            raise UsageError(f"workflow file {spec} failed to import: {type(exc).__name__}: {exc}") from exc
        return module
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name and spec.startswith(exc.name):
            raise UsageError(
                f"unknown workflow {spec!r}: not a built-in ({', '.join(BUILTINS)}), a module or a .py file"
            ) from exc
        raise UsageError(f"workflow module {spec} failed to import: {exc}") from exc
    except Exception as exc:
        raise UsageError(f"workflow module {spec} failed to import: {type(exc).__name__}: {exc}") from exc


def load_workflow(
    spec: str, params: dict[str, Any] | None = None, run_dir: str | None = None, given_as: str = "-p "
) -> Workflow:
    """Import workflow `spec` and build it with `params` (and `run_dir` if it takes one);
    `given_as` is how an error names where a parameter came from (`-p `, `params: `)."""
    params = dict(params or {})
    spec, attr = split_attr(spec)
    module = _import(spec)
    name = spec if spec in BUILTINS else Path(spec).stem if spec.endswith(".py") else spec
    build = getattr(module, "build", None)
    if callable(build):
        sig = inspect.signature(build)
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
        allowed = [p for p in sig.parameters if p != "run_dir"]
        unknown = [k for k in params if k not in allowed and not accepts_any]
        if unknown:
            raise UsageError(
                f"workflow {name} has no parameter {', '.join(map(repr, unknown))} "
                f"(parameters: {', '.join(allowed) or 'none'})"
            )
        declared = getattr(module, "PARAMS", None)
        if isinstance(declared, dict):  # each value checked before build() sees it (params.py)
            params = check_params(declared, build, params, given_as)
        if "run_dir" in sig.parameters and run_dir is not None:
            params["run_dir"] = run_dir
        try:
            built = build(**params)
        except UsageError:
            raise
        except Exception as exc:  # a parameter build() cannot use (-p items=abc) is bad input too
            raise UsageError(f"workflow {name}: build() failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(built, tuple) or len(built) not in (2, 3) or not isinstance(built[0], WorkflowGraph):
            raise UsageError(f"workflow {name}: build() must return (graph, inputs) or (graph, inputs, info)")
        info = dict(built[2]) if len(built) == 3 else {}
        return Workflow(name, built[0], built[1], info)
    if params:
        raise UsageError(f"workflow {name} is a plain graph module and takes no -p parameters")
    return Workflow(name, module_graph(module, name, attr), None)


def split_attr(spec: str) -> tuple[str, str | None]:
    """`module.py:NAME` or `package.module:NAME` -> (module, NAME); else (spec, None)."""
    head, sep, tail = spec.rpartition(":")
    if sep and head and tail.isidentifier():
        return head, tail
    return spec, None


def module_graph(module: Any, name: str, attr: str | None) -> WorkflowGraph:
    """The graph a dispel4py-style module runs: the attribute `attr`, else its one
    top-level graph (composites, and graphs inside another graph, are parts of it)."""
    if attr is not None:
        graph = getattr(module, attr, None)
        if not isinstance(graph, WorkflowGraph):
            raise UsageError(f"workflow {name} has no WorkflowGraph named {attr!r}")
        return graph
    graphs = {
        key: v
        for key, v in vars(module).items()
        if isinstance(v, WorkflowGraph) and v._parent is None and not (v.inputmappings or v.outputmappings)
    }
    if len(graphs) != 1:
        which = f" ({', '.join(graphs)}; pick one with {name}:NAME)" if graphs else ""
        raise UsageError(
            f"workflow {name} exposes no build(**params) and {len(graphs)} WorkflowGraph attributes"
            f" outside composites{which}; expose build() or exactly one graph"
        )
    return next(iter(graphs.values()))
