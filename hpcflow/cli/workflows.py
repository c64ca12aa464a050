"""`hpcflow workflows`: the built-in workflows and their parameters: what each takes and
means from its `PARAMS` declarations, the default from its `build()` signature, so the
list cannot drift from the code."""

from __future__ import annotations

import importlib
import inspect

import click

from ..workflows import BUILTINS
from ..workflows.params import Param, defaults, shown


def workflow_parameters(name: str) -> tuple[str, list[tuple[str, object, Param | None]]]:
    """(first line of the module's docstring, [(parameter, default, declaration)]) of a built-in workflow."""
    module = importlib.import_module(BUILTINS[name])
    summary = (inspect.getdoc(module) or "").split("\n\n")[0].replace("\n", " ")
    declared = getattr(module, "PARAMS", {})
    return summary, [(key, default, declared.get(key)) for key, default in defaults(module.build).items()]


@click.command("workflows", short_help="The built-in workflows and their parameters (-p KEY=VALUE).")
def workflows_cmd() -> None:
    """List the built-in workflows, what each is, and its parameters: the default, what
    each takes (type, unit, least value) and what it means (give them as -p KEY=VALUE to
    run, submit or a sweep's params:)."""
    for name in BUILTINS:
        summary, params = workflow_parameters(name)
        click.echo(f"{name}: {summary}")
        click.echo(f"    {'parameter':<14} {'default':<10} {'takes':<34} meaning")
        for key, default, param in params:
            takes, meaning = (param.takes(), param.meaning) if param else ("", "")
            given = "-" if default is None else shown(default)  # None: not given (build() says what then)
            click.echo(f"    {key:<14} {given:<10} {takes:<34} {meaning}".rstrip())
