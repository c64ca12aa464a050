"""The examples of the documentation: every fenced bash, python or yaml block (and every
`$ ` line of an untagged block), with the marker that may say why it is not run here.

A marker is an HTML comment on the line before the block (GitHub does not show it;
the prose around the block says the same in words):

    <!-- example: cluster: REASON -->   needs a real cluster: never run here
    <!-- example: slow: REASON -->      minutes: run with HPCFLOW_SLOW_EXAMPLES=1
    <!-- example: ci: REASON -->        what .ci/run itself does (installing, the whole pytest)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DOCS = ("README.md", "experiments/README.md", "hpcflow/engines/README.md")
KINDS = ("cluster", "slow", "ci")
RUNNABLE = ("bash", "sh", "shell", "python", "yaml")
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
MARKER = re.compile(r"^<!--\s*example:\s*(\w+):\s*(.*?)\s*-->$")


@dataclass(frozen=True)
class Example:
    doc: str
    line: int  # of the opening fence, 1-based
    lang: str  # "bash", "python" or "yaml" (a configuration or an experiment file: loaded, not run)
    code: str
    kind: str | None  # a marker's kind, None: run it
    reason: str

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


def examples(root: Path, docs: tuple[str, ...] = DOCS) -> list[Example]:
    found = []
    for doc in docs:
        path = root / doc
        if path.is_file():
            found += _blocks(doc, path.read_text().splitlines())
    return found


def _blocks(doc: str, lines: list[str]) -> list[Example]:
    found, i = [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        start, lang = i, fence.group(2)
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        body = lines[start + 1 : end]
        i = end + 1
        if lang == "" and any(line.startswith("$ ") for line in body):  # a transcript: its commands
            lang, body = "bash", [line[2:] for line in body if line.startswith("$ ")]
        if lang not in RUNNABLE:
            continue
        kind, reason = _marker(lines, start)
        found.append(
            Example(
                doc, start + 1, lang if lang in ("python", "yaml") else "bash", "\n".join(body) + "\n", kind, reason
            )
        )
    return found


def _marker(lines: list[str], fence: int) -> tuple[str | None, str]:
    j = fence - 1
    while j >= 0 and (not lines[j].strip() or lines[j].strip() == "<!-- fmt: off -->"):
        j -= 1
    match = MARKER.match(lines[j].strip()) if j >= 0 else None
    return (match.group(1), match.group(2)) if match else (None, "")
