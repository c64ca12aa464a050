"""The galaxy workflow: internal extinction science, the VOTable round trip, and runs."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import pytest

from hpcflow import run
from hpcflow.errors import UsageError
from hpcflow.workflows.galaxy import build, science, votable
from hpcflow.workflows.galaxy.pes import cached_votable_name

KEYS = {"ra", "dec", "mtype", "logr25", "t", "a_int"}


# Hand-computed: k = 0.754 * 10^(-0.2 T), exponent 2 * 0.04 * (1 + 0.2 / 0.094) - 1 = -0.749787,
# A = -2.5 log10(k + (1 - k) * 10^(logR25 * exponent)).
@pytest.mark.parametrize(
    "mtype, logr25, t, a_int",
    [
        ("Sb", 0.3, 3, 0.43107),  # k = 0.189396
        ("SBb", 0.3, 3, 0.43107),  # barred: same T
        ("Sc", 0.5, 6, 0.86864),  # k = 0.047574
        ("Sm", 1.0, 9, 1.81611),  # k = 0.011950
        ("Sa", 0.2, 1, 0.18039),  # k = 0.475742
        ("S0a", 0.7, 0, 0.20563),  # k = 0.754
    ],
)
def test_internal_extinction_matches_hand_computed_values(mtype, logr25, t, a_int):
    got_t, got_a = science.internal_extinction(mtype, logr25)
    assert got_t == t
    assert got_a == pytest.approx(a_int, abs=5e-5)


@pytest.mark.parametrize("mtype", ["E", "E-S0", "S0"])
def test_early_types_have_no_extinction_whatever_their_shape(mtype):
    assert science.internal_extinction(mtype, 0.8)[1] == 0.0
    assert science.internal_extinction(mtype, None)[1] == 0.0


@pytest.mark.parametrize("mtype", ["I", "S?", "", None])
def test_unknown_types_get_t_minus_10_and_no_extinction(mtype):
    assert science.internal_extinction(mtype, 0.5) == (-10, 0.0)


def test_a_face_on_disc_has_no_extinction_and_positive_zero():
    _, a_int = science.internal_extinction("Sbc", 0.0)
    assert a_int == 0.0 and math.copysign(1.0, a_int) == 1.0


def test_extinction_grows_with_inclination_and_is_unknown_without_axis_ratio():
    values = [science.internal_extinction("Sc", r)[1] for r in (0.1, 0.3, 0.6, 0.9)]
    assert values == sorted(values) and values[0] > 0
    assert science.internal_extinction("Sc", None) == (6, None)


def test_votable_round_trip_keeps_types_and_missing_values():
    rows = [{"PGC": 4, "RAJ2000": "00 00 01.1", "DEJ2000": "+15 52 54", "OType": "G", "MType": "Sbc", "logR25": 0.42}]
    document = votable.write_votable(rows, votable.cone_search_url("0.0046", "15.8817"))
    assert document.startswith("<?xml")
    assert votable.first_row(document, ("MType", "logR25", "PGC")) == {"MType": "Sbc", "logR25": 0.42, "PGC": 4}
    blank = votable.write_votable([{"MType": "Sa", "logR25": None}], "q")
    assert votable.first_row(blank, ("MType", "logR25", "Vmag")) == {"MType": "Sa", "logR25": None, "Vmag": None}
    empty = votable.write_votable([], "q")
    assert votable.first_row(empty, ("MType", "logR25")) == {"MType": None, "logR25": None}


def test_first_row_reads_a_vizier_style_document():
    document = """<?xml version="1.0" encoding="UTF-8"?>
<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">
<RESOURCE ID="yCat_7237" name="VII/237">
<TABLE ID="VII_237_pgc" name="VII/237/pgc">
<FIELD name="_r" ucd="pos.angDistance" datatype="double" width="6" precision="4" unit="deg"/>
<FIELD name="PGC" ucd="meta.id;meta.main" datatype="int" width="7"/>
<FIELD name="MType" ucd="src.morph.type" datatype="char" arraysize="5*"/>
<FIELD name="logR25" ucd="phys.size.axisRatio" datatype="float" width="5" precision="2"/>
<DATA><TABLEDATA>
<TR><TD>0.0003</TD><TD>   2172</TD><TD>Sbc</TD><TD> 0.63</TD></TR>
<TR><TD>0.0009</TD><TD>   2173</TD><TD>E</TD><TD> 0.05</TD></TR>
</TABLEDATA></DATA>
</TABLE></RESOURCE></VOTABLE>"""
    assert votable.first_row(document, ("MType", "logR25", "PGC")) == {"MType": "Sbc", "logR25": 0.63, "PGC": 2172}


def test_synthetic_catalogue_is_deterministic_and_plausible():
    coords = science.synthetic_coordinates(200)
    assert coords == science.synthetic_coordinates(200)
    assert all(0 <= float(ra) < 360 and -90 <= float(dec) <= 90 for ra, dec in coords)
    rows = [science.synthetic_row(ra, dec) for ra, dec in coords]
    assert rows == [science.synthetic_row(ra, dec) for ra, dec in coords]
    ratios = [r["logR25"] for r in rows if r["logR25"] is not None]
    assert all(0 <= r <= 0.7 for r in ratios)  # a disc seen edge-on is 5 times longer than wide
    assert {r["MType"] for r in rows} & set(science.HUBBLE_T)
    assert any(science.hubble_t(r["MType"]) == science.UNKNOWN_T for r in rows)


def test_read_coordinates_skips_comments_and_rejects_bad_lines():
    assert science.read_coordinates("# ra,dec\n10.5, -3.25\n\n200,45\n") == [("10.5", "-3.25"), ("200", "45")]
    with pytest.raises(ValueError, match="line 2"):
        science.read_coordinates("1,2\n3;4\n")


def test_heavy_delays_are_seeded_by_the_galaxy():
    first = science.heavy_delays("10.00000", "20.00000")
    assert first == science.heavy_delays("10.00000", "20.00000")
    assert first != science.heavy_delays("10.00001", "20.00000")
    delays = [science.heavy_delays(ra, dec) for ra, dec in science.synthetic_coordinates(300)]
    assert all(0 < v < 2 and 0 < f < 1 for v, f in delays)
    assert sum(v for v, _ in delays) / 300 == pytest.approx(2 * 2 / 7, rel=0.1)  # Beta(2,5) mean is 2/7


def test_galaxy_runs_on_simple(tmp_path):
    graph, inputs, info = build(scale=1, run_dir=str(tmp_path))
    out = run(graph, inputs, "simple").output("InternalExtinction")
    assert len(out) == 100 and info == {"work_s": 0.0, "galaxies": 100}
    assert len((tmp_path / "coordinates.txt").read_text().splitlines()) == 100
    assert all(set(item) == KEYS for item in out)
    for item, (ra, dec) in zip(out, science.synthetic_coordinates(100), strict=True):
        row = science.synthetic_row(ra, dec)
        assert (item["ra"], item["dec"]) == (float(ra), float(dec))
        assert (item["mtype"], item["logr25"]) == (row["MType"], row["logR25"])
        assert (item["t"], item["a_int"]) == science.internal_extinction(row["MType"], row["logR25"])


def test_heavy_records_the_injected_work_and_keeps_the_results(tmp_path):
    graph, inputs, info = build(scale=1, heavy=True, latency_scale=0.0005, run_dir=str(tmp_path))
    expected = sum(sum(science.heavy_delays(ra, dec)) for ra, dec in science.synthetic_coordinates(100)) * 0.0005
    assert info["work_s"] == pytest.approx(expected)
    heavy = run(graph, inputs, "simple").output("InternalExtinction")
    light = run(*build(scale=1, run_dir=str(tmp_path))[:2], "simple").output("InternalExtinction")
    assert heavy == light


def test_votable_dir_reads_cached_answers(tmp_path):
    coords = tmp_path / "coords.txt"
    coords.write_text("10.1,-5.2\n200.25,33.5\n")
    cache = tmp_path / "cache"
    cache.mkdir()
    for (ra, dec), mtype in [(("10.1", "-5.2"), "Sm"), (("200.25", "33.5"), "E")]:
        doc = votable.write_votable([{"MType": mtype, "logR25": 1.0}], "cached")
        (cache / cached_votable_name(ra, dec)).write_text(doc)
    graph, inputs, info = build(coords=str(coords), votable_dir=str(cache))
    out = run(graph, inputs, "simple").output("InternalExtinction")
    assert info["galaxies"] == 2
    assert [(o["mtype"], o["t"], round(o["a_int"], 4)) for o in out] == [("Sm", 9, 1.8161), ("E", -5, 0.0)]


@pytest.mark.parametrize(
    "params, message",
    [
        ({"scale": 0}, "scale"),
        ({"heavy": "yes"}, "heavy"),
        ({"latency_scale": -1}, "latency_scale"),
        ({"votable_dir": "/nonexistent/dir"}, "votable_dir"),
        ({"coords": "/nonexistent/coords.txt"}, "cannot read"),
    ],
)
def test_bad_parameters_are_usage_errors(params, message):
    with pytest.raises(UsageError, match=message):
        build(**params)


def test_a_scale_larger_than_the_coordinates_file_is_a_usage_error(tmp_path):
    coords = Path(tmp_path) / "coords.txt"
    coords.write_text("1,2\n3,4\n")
    with pytest.raises(UsageError, match="needs 100 galaxies"):
        build(scale=1, coords=str(coords))


@pytest.mark.parametrize("mapping, processes", [("multi", 4), ("dyn_multi", 3)])
def test_parallel_mappings_match_simple(tmp_path, multiset, mapping, processes):
    graph, inputs, _ = build(scale=1, heavy=True, latency_scale=0.0002, run_dir=str(tmp_path))
    expected = run(graph, inputs, "simple")
    got = run(graph, inputs, mapping, processes)
    assert multiset(got.outputs) == multiset(expected.outputs)
    assert len(got.output("InternalExtinction")) == 100


def test_the_graph_survives_pickling(tmp_path, multiset):
    graph, inputs, _ = build(scale=1, run_dir=str(tmp_path))
    copy = pickle.loads(pickle.dumps(graph))
    copy_inputs = {copy.get(pe.name): n for pe, n in inputs.items()}
    assert multiset(run(copy, copy_inputs, "simple").outputs) == multiset(run(graph, inputs, "simple").outputs)
