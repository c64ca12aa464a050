"""OUTPUT/runs.jsonl: one JSON object a run, appended as each run ends, so the file is
the sweep's state: a cell already in it is done, and an interrupted sweep resumes.

A row is the run's metrics (DESIGN.md §4) with the cell's keys beside them: `params`,
`mapping`, `cpus`, `repeat`, `status` (ok | failed) and, for a failed run, `error`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..metrics import to_jsonable
from .spec import cell_key

RUNS_FILE = "runs.jsonl"


def row_key(row: dict[str, Any]) -> tuple[str, str, int, int]:
    return cell_key(row["params"], row["mapping"], row["cpus"], row["repeat"])


class RunsFile:
    def __init__(self, output: Path):
        self.path = Path(output) / RUNS_FILE

    def rows(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        rows = []
        for number, line in enumerate(self.path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                row_key(row)
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                raise UsageError(
                    f"{self.path} line {number} is not a run of a sweep (JSON with params, mapping, cpus, repeat); "
                    "delete the line to go on"
                ) from None
            rows.append(row)
        return rows

    def keys(self) -> set[tuple[str, str, int, int]]:
        return {row_key(row) for row in self.rows()}

    def append(self, row: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:  # one write a row: a kill leaves whole rows
            f.write(json.dumps(row, default=to_jsonable) + "\n")

    def drop_failed(self) -> int:
        """Remove the failed runs (to run those cells again); how many there were."""
        rows = self.rows()
        kept = [row for row in rows if row.get("status") == "ok"]
        if len(kept) < len(rows):
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(json.dumps(row, default=to_jsonable) + "\n" for row in kept))
            tmp.replace(self.path)
        return len(rows) - len(kept)
