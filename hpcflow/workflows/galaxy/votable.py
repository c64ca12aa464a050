"""VOTable documents: the offline answer of the HyperLEDA cone search, and the parser
that FilterColumns uses on it or on real cached VizieR answers.

The parser reads the first TABLE's FIELDs and first row with the standard library, so
the workflow needs no astropy; it ignores the XML namespace, which differs between
VOTable versions (VizieR answers 1.4 documents in the 1.3 namespace).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

NAMESPACE = "http://www.ivoa.net/xml/VOTable/v1.3"
CATALOGUE = "VII/237"

# (name, datatype, ucd, unit) of the VII/237/pgc columns the offline answer carries.
FIELDS = (
    ("PGC", "int", "meta.id;meta.main", ""),
    ("RAJ2000", "char", "pos.eq.ra;meta.main", "h:m:s"),
    ("DEJ2000", "char", "pos.eq.dec;meta.main", "d:m:s"),
    ("OType", "char", "src.class", ""),
    ("MType", "char", "src.morph.type", ""),
    ("logR25", "float", "phys.size.axisRatio", "[-]"),
)


def cone_search_url(ra: str, dec: str, radius_deg: float = 0.001) -> str:
    """The VizieR query the original workflow sent for one galaxy (for provenance)."""
    return f"http://vizier.u-strasbg.fr/viz-bin/votable/-A?-source={CATALOGUE}&RA={ra}&DEC={dec}&SR={radius_deg}"


def write_votable(rows: list[dict[str, Any]], query: str) -> str:
    """A VOTable document with one TABLE of `rows` in the columns of FIELDS."""

    def el(parent: ET.Element, tag: str, **attrib: str) -> ET.Element:
        return ET.SubElement(parent, tag, attrib)

    root = ET.Element("VOTABLE", {"version": "1.4", "xmlns": NAMESPACE})
    resource = el(root, "RESOURCE", ID="yCat_7237", name=CATALOGUE)
    el(resource, "INFO", name="QUERY_STATUS", value="OK")
    el(resource, "INFO", name="request", value=query)
    table = el(resource, "TABLE", ID="VII_237_pgc", name="VII/237/pgc")
    el(table, "DESCRIPTION").text = "HYPERLEDA. I. Catalog of galaxies (offline synthetic answer)"
    for name, datatype, ucd, unit in FIELDS:
        attrib = {"name": name, "datatype": datatype, "ucd": ucd}
        if datatype == "char":
            attrib["arraysize"] = "*"
        if unit:
            attrib["unit"] = unit
        el(table, "FIELD", **attrib)
    tabledata = el(el(table, "DATA"), "TABLEDATA")
    for row in rows:
        tr = el(tabledata, "TR")
        for name, *_ in FIELDS:
            value = row.get(name)
            el(tr, "TD").text = "" if value is None else str(value)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _convert(text: str | None, datatype: str) -> Any:
    text = (text or "").strip()
    if not text:
        return None
    if datatype in ("float", "double"):
        return float(text)
    if datatype in ("short", "int", "long", "unsignedByte"):
        return int(text)
    return text


def first_row(document: str | bytes, columns: tuple[str, ...]) -> dict[str, Any]:
    """`columns` of the first row of the first TABLE, typed by their FIELD datatype; a
    column or row the document does not have reads as None."""
    root = ET.fromstring(document)
    table = next((e for e in root.iter() if _local(e.tag) == "TABLE"), None)
    if table is None:
        return dict.fromkeys(columns)
    fields = [(f.get("name"), f.get("datatype", "char")) for f in table if _local(f.tag) == "FIELD"]
    tr = next((e for e in table.iter() if _local(e.tag) == "TR"), None)
    cells = [] if tr is None else [td.text for td in tr if _local(td.tag) == "TD"]
    values = {name: _convert(text, datatype) for (name, datatype), text in zip(fields, cells, strict=False)}
    return {c: values.get(c) for c in columns}
