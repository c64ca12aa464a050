"""The science of the galaxy workflow, as pure functions: Hubble types, internal
extinction, and the offline stand-in for the HyperLEDA (VizieR VII/237) cone search.

Internal extinction follows the AMIGA workflow that dispel4py's paper ran: the
inclination correction of Bottinelli et al. (1995) with the constants C = 0.04,
k = min(1, 0.754 * 10^(-0.2 T)) and K2 = 0.12 - 0.007 T (T < 0) or 0.094.
"""

from __future__ import annotations

import math

import numpy as np

from ...grouping import stable_hash

# The workflow's own table, kept as it is (it puts Sc at 6 where RC3 has 5) so the
# numbers match the runs the paper measured. Barred types share their family's T.
HUBBLE_T: dict[str, int] = {
    "E": -5,
    "E-S0": -3,
    "S0": -2,
    "S0a": 0,
    "Sa": 1,
    "Sab": 2,
    "Sb": 3,
    "Sbc": 4,
    "Sc": 6,
    "Scd": 7,
    "Sd": 8,
    "Sm": 9,
    "SBa": 1,
    "SBab": 2,
    "SBb": 3,
    "SBbc": 4,
    "SBc": 6,
    "SBcd": 7,
    "SBd": 8,
    "SBm": 9,
}
UNKNOWN_T = -10  # gives k = 1, hence no extinction
C = 0.04


def hubble_t(mtype: str | None) -> int:
    """De Vaucouleurs' T of a morphological type string; UNKNOWN_T when not in the table."""
    return HUBBLE_T.get((mtype or "").strip(), UNKNOWN_T)


def internal_extinction(mtype: str | None, logr25: float | None) -> tuple[int, float | None]:
    """(T, A_int) in magnitudes for a galaxy of type `mtype` and log axis ratio `logr25`.

    A_int = -2.5 log10(k + (1 - k) R^(2C(1 + 0.2/K2) - 1)) with R = 10^logR25. When k = 1
    (early and unknown types) the axis ratio drops out and A_int is 0; otherwise a missing
    axis ratio leaves A_int unknown (None) rather than guessed."""
    t = hubble_t(mtype)
    k = min(1.0, 0.754 * 10 ** (-0.2 * t))
    if k == 1.0:
        return t, 0.0
    if logr25 is None:
        return t, None
    k2 = 0.12 - 0.007 * t if t < 0 else 0.094
    r = 10.0**logr25
    a_int = -2.5 * math.log10(k + (1 - k) * r ** (2 * C * (1 + 0.2 / k2) - 1))
    return t, a_int + 0.0  # + 0.0 turns the -0.0 of a face-on galaxy into 0.0


def synthetic_coordinates(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """`n` galaxy positions (RA, Dec in degrees, as text with 5 decimals) spread uniformly
    over the sky; built from a stable hash, so identical on every host and numpy version."""
    out = []
    for i in range(n):
        u = stable_hash(("ra", seed, i)) / 2**64
        v = stable_hash(("dec", seed, i)) / 2**64
        out.append((f"{360.0 * u:.5f}", f"{math.degrees(math.asin(2.0 * v - 1.0)):.5f}"))
    return out


def read_coordinates(text: str) -> list[tuple[str, str]]:
    """`ra,dec` lines (the workflow's input file) as text pairs; blank and # lines are skipped."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 2 or not all(_is_number(p) for p in parts):
            raise ValueError(f"line {number} is not 'ra,dec' in degrees: {line!r}")
        out.append((parts[0], parts[1]))
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _galaxy_rng(kind: str, ra: str, dec: str) -> np.random.Generator:
    return np.random.default_rng(stable_hash((kind, ra, dec)))


def heavy_delays(ra: str, dec: str) -> tuple[float, float]:
    """The injected latencies (GetVOTable, FilterColumns) of one galaxy: Beta(2,5) * 2 s
    and Beta(2,5) s, seeded by the galaxy itself so that every mapping and every process
    sleeps the same (the original seeded per process, so runs differed by mapping)."""
    rng = _galaxy_rng("latency", ra, dec)
    return 2.0 * float(rng.beta(2, 5)), float(rng.beta(2, 5))


# The morphological mix of the synthetic catalogue, roughly HyperLEDA's for nearby
# galaxies; "I" (irregular) and "S?" are types the workflow does not know.
_TYPES = ("E", "E-S0", "S0", "S0a", "Sa", "Sab", "Sb", "SBb", "Sbc", "Sc", "SBc", "Scd", "Sd", "Sm", "I", "S?")
_WEIGHTS = np.array([6, 3, 8, 5, 7, 6, 12, 4, 10, 12, 4, 6, 4, 3, 6, 4], dtype=float)
_INTRINSIC_FLATTENING = 0.2  # q0 of a spiral disc seen edge-on
_MISSING_AXIS_RATIO = 0.02  # share of rows without logR25, as in the real catalogue


def synthetic_row(ra: str, dec: str) -> dict[str, object]:
    """The HyperLEDA row the cone search at (ra, dec) returns, invented deterministically
    from the coordinates: PGC number, type, and logR25 from a random inclination
    (log10 of a / b for a disc of flattening q0, ellipticals rounder)."""
    rng = _galaxy_rng("hyperleda", ra, dec)
    mtype = str(rng.choice(_TYPES, p=_WEIGHTS / _WEIGHTS.sum()))
    cos_i = float(rng.uniform(0.0, 1.0))
    q0 = 0.6 if mtype.startswith("E") else _INTRINSIC_FLATTENING
    axis_ratio = math.sqrt(q0**2 + (1 - q0**2) * cos_i**2)
    logr25 = None if rng.uniform() < _MISSING_AXIS_RATIO else round(-math.log10(axis_ratio), 2)
    return {
        "PGC": int(rng.integers(1, 5_000_000)),
        "RAJ2000": _sexagesimal(float(ra) / 15.0, False),
        "DEJ2000": _sexagesimal(float(dec), True),
        "OType": "G",
        "MType": mtype,
        "logR25": logr25,
    }


def _sexagesimal(value: float, signed: bool) -> str:
    sign = "-" if value < 0 else "+"
    total = round(abs(value) * 3600, 1)
    d, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    text = f"{int(d):02d} {int(m):02d} {s:04.1f}"
    return sign + text if signed else text
