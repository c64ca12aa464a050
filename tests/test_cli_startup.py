"""What `hpcflow run` loads before its first task: only the command it runs.

The CLI imports a command's module when that command is used, so a run does not load
the sweep, report, submit and status modules; YAML is read only where a config file or
a -p value is, and psutil only where another process is looked at."""

from __future__ import annotations

import json
import subprocess
import sys

AWAY = (  # other commands' modules, and libraries a plain run does not need
    *("hpcflow.sweep", "hpcflow.htmlreport", "hpcflow.report", "hpcflow.cli.submit", "hpcflow.cli.status"),
    *("hpcflow.batch.submit", "hpcflow.batch.elastic", "yaml", "psutil"),
)


def loaded_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_the_run_command_loads_no_other_command():
    code = "import click\nfrom hpcflow.cli import cli\ncli.get_command(click.Context(cli), 'run')\n"
    code += "import hpcflow.engines.coordinator, hpcflow.transports.shm"  # what a run imports next
    modules = loaded_after(code)
    assert "hpcflow.cli.run" in modules
    assert not [m for m in AWAY if m in modules]


def test_every_command_is_still_listed_and_loads_on_use():
    code = "import click, json\nfrom hpcflow.cli import cli\nctx = click.Context(cli)\n"
    code += "print(json.dumps([cli.get_command(ctx, name).name for name in cli.list_commands(ctx)]))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    names = json.loads(done.stdout)
    assert names == sorted(names)
    assert {"run", "resume", "submit", "status", "sweep", "report", "worker", "workflows", "mappings", "info"} <= set(
        names
    )
