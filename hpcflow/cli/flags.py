"""The flags `run` and `submit` share, and the settings they come to once the
environment and the configuration files have filled in what was left out."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

from ..mappings import MAPPINGS
from ..settings import Settings, resolve
from .params import parse_params

Command = TypeVar("Command", bound=Callable[..., Any])

RUN_OPTIONS = ("autoscale", "redis_url", "stall_timeout", "drain_timeout")  # the settings that are options of run()

CONFIG_OPTION = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    envvar="HPCFLOW_CONFIG",
    default=None,
    help="YAML configuration file, over configs/default.yaml [env HPCFLOW_CONFIG].",
)


def workflow_options(mapping_help: str, cpus_help: str) -> Callable[[Command], Command]:
    """WORKFLOW, -p, -m, -n, --autoscale, --stall-timeout and --drain-timeout: what to run, and how. The
    command receives them as one argument, `given`: the settings given on the command
    line as `command_settings` takes them (None where left out; `params` the -p pairs)."""
    options = [
        click.argument("workflow", required=False, metavar="[WORKFLOW]"),
        click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="Workflow parameter."),
        click.option(
            "-m", "--mapping", default=None, metavar="MAPPING", help=f"{mapping_help} One of: {', '.join(MAPPINGS)}."
        ),
        click.option("-n", "--cpus", type=int, default=None, help=cpus_help),
        click.option(
            "--autoscale",
            default=None,
            metavar="POLICY[:K=V,...]",
            help="Auto-scaling policy of the *_auto_* mappings.",
        ),
        click.option(
            "--stall-timeout",
            type=float,
            default=None,
            metavar="SECONDS",
            help="Stop a run in which no task finishes for this long, naming the PEs that hold work; "
            "0: never [default: the config's, else 900].",
        ),
        click.option(
            "--drain-timeout",
            type=float,
            default=None,
            metavar="SECONDS",
            help="mpi: how long the drain on SIGTERM/SIGINT may take before every rank stops at once "
            "(metrics.json says interrupted, with the counts so far) [default: the config's, else 30].",
        ),
    ]

    def decorate(command: Command) -> Command:
        @functools.wraps(command)
        def with_given(*args: Any, **kwargs: Any) -> Any:
            given = {
                key: kwargs.pop(key)
                for key in ("workflow", "mapping", "cpus", "autoscale", "stall_timeout", "drain_timeout")
            }
            given["params"] = parse_params(kwargs.pop("params"))
            return command(*args, given=given, **kwargs)

        for option in reversed(options):
            with_given = option(with_given)
        return with_given

    return decorate


def command_settings(
    given: Mapping[str, Any], config_file: str | None, built_in: Mapping[str, Any] | None = None
) -> Settings:
    """The settings of a command from the flags `given` over the environment and the
    configuration files; a WORKFLOW is required, from one or the other."""
    settings = resolve(given, config_file, built_in=built_in)
    settings.require_workflow()
    return settings


def run_options(settings: Settings) -> dict[str, Any]:
    """The options of `run()` the settings set."""
    return {key: getattr(settings, key) for key in RUN_OPTIONS if getattr(settings, key) not in (None, "")}
