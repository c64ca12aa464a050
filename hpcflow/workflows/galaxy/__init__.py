"""Internal extinction of galaxies (the dispel4py paper's astrophysics use case), offline.

    ReadRaDec -> GetVOTable -> FilterColumns -> InternalExtinction

Every PE is stateless. The input is a coordinates file (`ra,dec` in degrees, a galaxy a
line): `-p coords=FILE`, or 100 * `scale` galaxies generated deterministically and
written to the run directory as coordinates.txt. GetVOTable answers from a synthetic
HyperLEDA catalogue derived from the coordinates, or from real cached VizieR answers in
`votable_dir` (files named `RA_DEC.xml` after the coordinates as written in the file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import UsageError
from ...graph import WorkflowGraph
from ..params import Param
from ..workdir import work_dir
from . import science
from .pes import FilterColumns, GetVOTable, InternalExtinction, ReadRaDec

GALAXIES_PER_SCALE = 100
PARAMS = {
    "scale": Param(int, "100 x scale galaxies (1, 3, 5, 10 as in the paper); default 1, or all of coords", least=1),
    "heavy": Param(bool, "inject the paper's per-galaxy latencies (Beta(2,5) draws, seeded per galaxy)"),
    "latency_scale": Param(float, "multiplies those latencies", least=0),
    "coords": Param(str, "a file of ra,dec lines in degrees (default: generated)", unit="path"),
    "votable_dir": Param(str, "real cached VizieR answers, named RA_DEC.xml", unit="path"),
    "seed": Param(int, "of the generated coordinates"),
}


def build(
    scale: int | None = None,
    heavy: bool = False,
    latency_scale: float = 1.0,
    coords: str | None = None,
    votable_dir: str | None = None,
    seed: int = 0,
    run_dir: str | None = None,
) -> tuple[WorkflowGraph, dict, dict[str, Any]]:
    """The galaxy workflow on 100 * `scale` galaxies (default 1; all of `coords` if given
    without a scale). `heavy` injects the paper's per-galaxy latencies, times `latency_scale`."""
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, int) or scale < 1):
        raise UsageError(f"galaxy: scale must be a positive integer (1, 3, 5, 10...), got {scale!r}")
    if not isinstance(heavy, bool):
        raise UsageError(f"galaxy: heavy must be true or false, got {heavy!r}")
    if not isinstance(latency_scale, (int, float)) or latency_scale < 0:
        raise UsageError(f"galaxy: latency_scale must be a number >= 0, got {latency_scale!r}")
    if votable_dir is not None and not Path(votable_dir).is_dir():
        raise UsageError(f"galaxy: votable_dir {votable_dir} is not a directory")

    if coords is None:
        galaxies = science.synthetic_coordinates(GALAXIES_PER_SCALE * (scale or 1), seed)
        path = work_dir(run_dir, "galaxy") / "coordinates.txt"
        path.write_text("".join(f"{ra},{dec}\n" for ra, dec in galaxies))
    else:
        path = Path(coords)
        galaxies = _read_user_coordinates(path)
        if scale is not None:
            wanted = GALAXIES_PER_SCALE * scale
            if wanted > len(galaxies):
                raise UsageError(f"galaxy: scale={scale} needs {wanted} galaxies; {coords} has {len(galaxies)}")
            galaxies = galaxies[:wanted]

    graph = WorkflowGraph()
    read = ReadRaDec(str(path))
    votab = GetVOTable(votable_dir, heavy, float(latency_scale))
    filt = FilterColumns(heavy=heavy, latency_scale=float(latency_scale))
    intext = InternalExtinction()
    graph.connect(read, "output", votab, "input")
    graph.connect(votab, "output", filt, "input")
    graph.connect(filt, "output", intext, "input")

    work_s = sum(sum(science.heavy_delays(ra, dec)) for ra, dec in galaxies) * latency_scale if heavy else 0.0
    return graph, {read: len(galaxies)}, {"work_s": work_s, "galaxies": len(galaxies)}


def _read_user_coordinates(path: Path) -> list[tuple[str, str]]:
    try:
        galaxies = science.read_coordinates(path.read_text())
    except OSError as exc:
        raise UsageError(f"galaxy: cannot read coordinates file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(f"galaxy: coordinates file {path}: {exc}") from None
    if not galaxies:
        raise UsageError(f"galaxy: coordinates file {path} lists no galaxies")
    return galaxies
