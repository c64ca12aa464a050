"""`hpcflow workflows`: the built-in workflows and their parameters, read from their
`build()` signatures, so the list cannot drift from the code."""

from __future__ import annotations

import importlib
import inspect

import click

from ..workflows import BUILTINS


def workflow_parameters(name: str) -> tuple[str, list[tuple[str, object]]]:
    """(first line of the module's docstring, [(parameter, default)]) of a built-in workflow."""
    module = importlib.import_module(BUILTINS[name])
    summary = (inspect.getdoc(module) or "").split("\n\n")[0].replace("\n", " ")
    signature = inspect.signature(module.build)
    params = [(p.name, p.default) for p in signature.parameters.values() if p.name != "run_dir"]
    return summary, params


@click.command("workflows", short_help="The built-in workflows and their parameters (-p KEY=VALUE).")
def workflows_cmd() -> None:
    """List the built-in workflows, what each is, and its parameters with their defaults
    (give them as -p KEY=VALUE to run, submit or a sweep's params:)."""
    for name in BUILTINS:
        summary, params = workflow_parameters(name)
        click.echo(f"{name}: {summary}")
        for key, default in params:
            click.echo(f"    {key:<14} default: {'none' if default is None else default}")
