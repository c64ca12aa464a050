"""Every example of the README, experiments/README.md and hpcflow/engines/README.md runs
(a YAML example loads) as written, on this machine, in a fresh copy of the repository, and leaves its git tree
clean: a command that fails, or writes where git would see it (a sweep over the
published results, a report redrawing tracked plots), fails here before a reader meets it.

The copy is a git repository of the working tree's files with a virtualenv of its own
that sees this one's packages, so a block's `pip install -e .` installs the copy there
and never touches the environment running the tests. Python blocks of one document run
in order, each after the ones before it (as a reader runs them). Blocks that name SLURM,
Redis or MPI need those services (`HPCFLOW_REQUIRE_SERVICES=1`: missing is a failure);
batch jobs a block leaves queued are waited for, then cancelled. A block marked
`<!-- example: KIND: REASON -->` (tests/doc_examples.py) is not run here, for that reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, require
from doc_examples import KINDS, examples

from hpcflow.config import load_config
from hpcflow.sweep import load_sweep
from hpcflow.transports import find_server_binary

EXAMPLES = examples(ROOT)
BLOCK_TIMEOUT_S = 600
JOB_WAIT_S = 600  # a 64-CPU job waits for the whole node: other jobs on it first
pytestmark = pytest.mark.timeout(BLOCK_TIMEOUT_S + JOB_WAIT_S + 60)


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A git copy of the working tree's files and the environment a block runs with."""
    base = tmp_path_factory.mktemp("readme")
    repo = base / "hpcflow"
    files = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT).split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    git("init", "-q", cwd=repo)
    git("add", "-A", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "copy", cwd=repo)
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    mine = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = [p for p in sys.path if p.endswith("site-packages")]
    Path(mine, "hpcflow-tests-parent.pth").write_text("\n".join(ours) + "\n")  # this venv's packages, seen there
    for lib in Path(sys.prefix, "lib").iterdir():  # shared libraries wheels put beside them (mpich's libmpi)
        if not lib.name.startswith("python") and not (venv / "lib" / lib.name).exists():
            (venv / "lib" / lib.name).symlink_to(lib)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPCFLOW_") and k != "PYTHONPATH"}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = str(repo)  # before the copy is installed, `hpcflow` imports the copy
    return repo, env


def test_every_marker_names_a_known_kind_and_a_reason():
    assert EXAMPLES, "no examples found"
    bad = [(e.id, e.kind, e.reason) for e in EXAMPLES if e.kind is not None and (e.kind not in KINDS or not e.reason)]
    assert bad == []


def needs_services(code: str) -> None:
    if any(word in code for word in ("sbatch", "srun ", "qsub", "--elastic")) or (
        "hpcflow submit" in code and "--dry-run" not in code
    ):
        require(slurm_running(), "a running SLURM (scripts/local-slurm.sh)")
    if "redis" in code:
        require(find_server_binary() is not None, "redis-server")
    if "mpiexec" in code or "--mapping mpi" in code:
        require(
            shutil.which("mpiexec", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
            is not None,
            "mpiexec",
        )


def slurm_running() -> bool:
    if shutil.which("sinfo") is None:
        return False
    done = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=60)
    return done.returncode == 0 and any(state in done.stdout for state in ("idle", "mix"))


def jobs_under(where: Path) -> set[str]:
    """The queued or running jobs submitted from `where` or below (their working directory):
    the sandbox's, never another user's or another test's."""
    if shutil.which("squeue") is None:
        return set()
    done = subprocess.run(["squeue", "-h", "--me", "-o", "%i %Z"], capture_output=True, text=True, timeout=60)
    mine = set()
    for line in done.stdout.splitlines():
        job, _, workdir = line.partition(" ")
        if Path(workdir.strip()).is_relative_to(where):
            mine.add(job)
    return mine


def wait_for_jobs(where: Path) -> list[str]:
    """Wait for the batch jobs a block submitted; cancel those still there after JOB_WAIT_S."""
    deadline = time.monotonic() + JOB_WAIT_S
    while jobs_under(where) and time.monotonic() < deadline:
        time.sleep(3)
    left = sorted(jobs_under(where))
    if left:
        subprocess.run(["scancel", *left], timeout=60)
    return left


def load_yaml_example(example, repo: Path) -> None:
    """An experiment file (it has mappings:) loads as one, anything else as a configuration:
    a key the code does not know, or a value of the wrong type, fails here."""
    path = repo.parent / f"example-{example.line}.yaml"
    path.write_text(example.code)
    if "mappings:" in example.code:
        assert load_sweep(path).cells()
    else:
        assert load_config(path).workflow


def script_of(example, index: int) -> list[str]:
    if example.lang == "bash":
        return ["bash", "-e", "-o", "pipefail", "-c", example.code]
    before = [e.code for e in EXAMPLES[:index] if e.doc == example.doc and e.lang == "python" and e.kind is None]
    return ["python", "-c", "".join([*before, example.code])]


@pytest.mark.parametrize("index", range(len(EXAMPLES)), ids=[e.id for e in EXAMPLES])
def test_the_example_runs_as_written_and_leaves_the_tree_clean(index, sandbox):
    example = EXAMPLES[index]
    if example.kind == "slow" and os.environ.get("HPCFLOW_SLOW_EXAMPLES") != "1":
        pytest.skip(f"slow ({example.reason}): HPCFLOW_SLOW_EXAMPLES=1 runs it")
    if example.kind in ("cluster", "ci"):
        pytest.skip(f"{example.kind}: {example.reason}")
    repo, env = sandbox
    if example.lang == "yaml":
        return load_yaml_example(example, repo)
    needs_services(example.code)
    done = subprocess.run(
        script_of(example, index), cwd=repo, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S
    )
    left = wait_for_jobs(repo.parent)
    assert done.returncode == 0, (
        f"{example.id} failed ({done.returncode}):\n{example.code}\n{done.stdout}\n{done.stderr}"
    )
    assert left == [], f"{example.id} left batch jobs running for {JOB_WAIT_S} s: {left}"
    assert git("status", "--porcelain", cwd=repo) == "", f"{example.id} wrote where git sees it"


def test_the_documented_first_sweep_runs_every_cell_on_a_fresh_copy_and_leaves_it_clean(sandbox):
    """experiments/README.md's first command, on a copy where it never ran: every cell runs
    (none "already in runs.jsonl"), the pages are written under the ignored results/, and
    the published results in experiments/results/ are untouched."""
    (command,) = [e for e in EXAMPLES if e.doc == "experiments/README.md" and "experiments/quick.yaml" in e.code]
    repo, env = sandbox
    shutil.rmtree(repo / "results" / "quick", ignore_errors=True)  # as on a fresh clone
    done = subprocess.run(["bash", "-e", "-c", command.code], cwd=repo, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "already in" not in done.stderr and "[4/4]" in done.stderr
    rows = (repo / "results" / "quick" / "runs.jsonl").read_text().splitlines()
    assert len(rows) == 4 and all('"status": "ok"' in row for row in rows)
    assert (repo / "results" / "quick" / "report.html").is_file() and list((repo / "results/quick/plots").glob("*.png"))
    assert git("status", "--porcelain", "--ignored=no", cwd=repo) == ""
    for experiment in (repo / "experiments").glob("*.yaml"):  # every shipped sweep writes where git ignores it
        assert git("check-ignore", f"results/{experiment.stem}/runs.jsonl", cwd=repo).strip()
