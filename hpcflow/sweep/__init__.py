"""Experiment sweeps (DESIGN.md §6): a YAML file's cells, run and recorded in
OUTPUT/runs.jsonl, and the paper's ratio tables in OUTPUT/ratios.csv and summary.md.

    spec       the experiment file and its cells
    runsfile   runs.jsonl: the sweep's state, so an interrupted sweep resumes
    cellrun    one cell: its `hpcflow run` command line, run here, and its row
    jobs       one cell as a batch job (`--submit`)
    progress   the progress lines and the ETA
    ratios     the ratio arithmetic and ratios.csv
    summary    summary.md
    runner     all of the above in order
"""

from .ratios import RatioTable, ratio_tables
from .runner import SweepOutcome, SweepRun
from .spec import Cell, SweepSpec, load_sweep

__all__ = ["Cell", "RatioTable", "SweepOutcome", "SweepRun", "SweepSpec", "load_sweep", "ratio_tables"]
