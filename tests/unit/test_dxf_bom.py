"""BOM rows: generated drawings with known parts lists, quantities, masses and tag spellings (the
corpus drawings and the ACAD_TABLE written into a corpus table: tests/e2e/test_dxf_bom_corpus.py)."""

from __future__ import annotations

import json
from typing import Any

import ezdxf
import pyarrow as pa
import pytest

from extractors.block_attributes import DEFAULT_TAG_MAP, normalize_tag
from extractors.dxf_bom import bom_rows, parse_mass, parse_quantity

COLUMNS = [
    "item_no",
    "part_number",
    "description",
    "qty",
    "unit",
    "material",
    "mass",
    "revision",
    "vendor",
    "tag",
    "type",
    "loop_number",
    "service",
    "size",
    "block_name",
    "block_path",
    "layout",
    "handle",
    "level",
    "insert_count",
    "source",
    "attributes",
]
SCALARS = (str, int, float, bool, type(None))


def define(doc: ezdxf.document.Drawing, name: str, *tags: str) -> Any:
    block = doc.blocks.new(name)
    block.add_circle((0, 0), 1)
    for i, tag in enumerate(tags):
        block.add_attdef(tag, (2, -3 * i), dxfattribs={"height": 2})
    return block


def place(space: Any, name: str, values: dict[str, str] | None = None, at=(0, 0)) -> Any:
    insert = space.add_blockref(name, at)
    return insert.add_auto_attribs(values) if values is not None else insert


def row(**values: Any) -> dict[str, Any]:
    base = dict.fromkeys(COLUMNS)
    base.update(source="attributes", layout="Model", level=0)
    base.update(values)
    base["attributes"] = json.dumps(base["attributes"], ensure_ascii=False)
    return base


def assert_plain(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        assert list(r) == COLUMNS, r
        assert all(isinstance(v, SCALARS) for v in r.values()), r
        assert isinstance(json.loads(r["attributes"]), dict)
    if rows:  # what the catalog does with them
        assert pa.Table.from_pylist(rows).num_rows == len(rows)


@pytest.fixture(scope="module")
def drawing(tmp_path_factory) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A drawing with a known BOM, saved and read back; returns (rows, expected rows)."""
    doc = ezdxf.new("R2018")
    define(doc, "BOLT", "PART_NO", "DESC", "MATERIAL")
    define(doc, "PIN", "PART_NO", "QTY")
    assy = define(doc, "ASSY", "PART_NO", "DESC")
    bolt_in_assy = place(assy, "BOLT", {"PART_NO": "B-M6", "DESC": "Bolt M6x20", "MATERIAL": "8.8"}, (5, 0))
    place(assy, "BOLT", {"PART_NO": "B-M6", "DESC": "Bolt M6x20", "MATERIAL": "8.8"}, (10, 0))
    pin_in_assy = place(assy, "PIN", {"PART_NO": "P-4", "QTY": "2 pcs"}, (15, 0))
    kit = define(doc, "KIT")  # no attributes of its own: only passes its multiplicity on
    bolt_in_kit = place(kit, "BOLT", {"PART_NO": "B-M6", "DESC": "Bolt M6x20", "MATERIAL": "8.8"})
    define(doc, "WASHER", "p/n", "qty", "Descr.")
    define(doc, "ROPE", "Item #", "Part-No", "Quantity", "uom", "Wt", "Vendor")
    define(doc, "NOTE", "PART_NO", "DESC")
    define(doc, "CABLE", "PART_NO", "QTY")
    define(doc, "SEAL", "PART_NO")
    define(doc, "FRAME_RAIL", "PART_NO", "DESC", "QTY")  # looks like a title block by name only
    define(doc, "PLAIN")
    define(doc, "LOGO", "VENDOR")
    title = define(doc, "TITLE_A3", "TITLE", "DWG_NO", "REV", "DATE", "DRAWN_BY", "SCALE", "SHEET", "MATERIAL")
    place(title, "LOGO", {"VENDOR": "Cadpipe Ltd"})

    msp = doc.modelspace()
    assy_1 = place(msp, "ASSY", {"PART_NO": "A-100", "DESC": "Pump assembly"}, (0, 0))
    place(msp, "ASSY", {"PART_NO": "A-100", "DESC": "Pump assembly"}, (0, 50))
    place(msp, "ASSY", {"PART_NO": "A-100", "DESC": "Pump assembly"}, (0, 100))
    washer = place(msp, "WASHER", {"p/n": "W-8", "qty": "4", "Descr.": "Washer 8"}, (50, 0))
    place(msp, "WASHER", {"p/n": "W-8", "qty": "4", "Descr.": "Washer 8"}, (50, 10))
    rope = place(
        msp, "ROPE", {"Item #": "7", "Part-No": "S-1", "Quantity": "1,5", "uom": "m", "Wt": "250 g", "Vendor": "ACME"}
    )
    note = place(msp, "NOTE", {"PART_NO": "%%c10 rod", "DESC": "<script>alert(1)</script>"}, (60, 0))
    cable = place(msp, "CABLE", {"PART_NO": "C-1", "QTY": "AR"}, (70, 0))
    seal = place(msp, "SEAL", {"PART_NO": "SL-2"}, (80, 0))
    seal.grid(size=(2, 3), spacing=(5, 5))  # MINSERT: 6 seals
    rail = place(msp, "FRAME_RAIL", {"PART_NO": "FR-1", "DESC": "Frame rail", "QTY": "2"}, (90, 0))
    place(msp, "PLAIN", at=(100, 0))
    place(msp, "KIT", at=(110, 0)).grid(size=(1, 2), spacing=(5, 5))

    sheet = doc.layouts.get("Layout1")
    place(
        sheet,
        "TITLE_A3",
        {
            "TITLE": "Pump",
            "DWG_NO": "D-1",
            "REV": "B",
            "DATE": "2024-05-01",
            "DRAWN_BY": "ab",
            "SCALE": "1:2",
            "SHEET": "1/1",
            "MATERIAL": "see BOM",
        },
    )
    bolt_on_sheet = place(sheet, "BOLT", {"PART_NO": "B-M6", "DESC": "Bolt M6x20", "MATERIAL": "8.8"})

    path = tmp_path_factory.mktemp("bom") / "pump.dxf"
    doc.saveas(path)
    rows = bom_rows(ezdxf.readfile(path))

    bolt = {"PART_NO": "B-M6", "DESC": "Bolt M6x20", "MATERIAL": "8.8"}
    bolt_cols = dict(part_number="B-M6", description="Bolt M6x20", material="8.8", block_name="BOLT")
    expected = [
        row(
            part_number="A-100",
            description="Pump assembly",
            qty=3.0,
            block_name="ASSY",
            block_path="ASSY",
            handle=assy_1.dxf.handle,
            insert_count=3,
            attributes={"PART_NO": "A-100", "DESC": "Pump assembly"},
        ),
        # a block inserted 3 times holding 2 inserts of a part: 6
        row(
            **bolt_cols,
            qty=6.0,
            block_path="ASSY/BOLT",
            handle=bolt_in_assy.dxf.handle,
            level=1,
            insert_count=6,
            attributes=bolt,
        ),
        # QTY "2 pcs" per assembly, 3 assemblies
        row(
            part_number="P-4",
            qty=6.0,
            unit="pcs",
            block_name="PIN",
            block_path="ASSY/PIN",
            handle=pin_in_assy.dxf.handle,
            level=1,
            insert_count=3,
            attributes={"PART_NO": "P-4", "QTY": "2 pcs"},
        ),
        # the stated qty wins over the 2 identical inserts
        row(
            part_number="W-8",
            description="Washer 8",
            qty=4.0,
            block_name="WASHER",
            block_path="WASHER",
            handle=washer.dxf.handle,
            insert_count=2,
            attributes={"p/n": "W-8", "qty": "4", "Descr.": "Washer 8"},
        ),
        row(
            item_no="7",
            part_number="S-1",
            qty=1.5,
            unit="m",
            mass=0.25,
            vendor="ACME",
            block_name="ROPE",
            block_path="ROPE",
            handle=rope.dxf.handle,
            insert_count=1,
            attributes={
                "Item #": "7",
                "Part-No": "S-1",
                "Quantity": "1,5",
                "uom": "m",
                "Wt": "250 g",
                "Vendor": "ACME",
            },
        ),
        # plain text in the columns, the value as stored in attributes, nothing escaped
        row(
            part_number="Ø10 rod",
            description="<script>alert(1)</script>",
            qty=1.0,
            block_name="NOTE",
            block_path="NOTE",
            handle=note.dxf.handle,
            insert_count=1,
            attributes={"PART_NO": "%%c10 rod", "DESC": "<script>alert(1)</script>"},
        ),
        row(
            part_number="C-1",
            qty=None,
            block_name="CABLE",
            block_path="CABLE",
            handle=cable.dxf.handle,
            insert_count=1,
            attributes={"PART_NO": "C-1", "QTY": "AR"},
        ),
        row(
            part_number="SL-2",
            qty=6.0,
            block_name="SEAL",
            block_path="SEAL",
            handle=seal.dxf.handle,
            insert_count=6,
            attributes={"PART_NO": "SL-2"},
        ),
        row(
            part_number="FR-1",
            description="Frame rail",
            qty=2.0,
            block_name="FRAME_RAIL",
            block_path="FRAME_RAIL",
            handle=rail.dxf.handle,
            insert_count=1,
            attributes={"PART_NO": "FR-1", "DESC": "Frame rail", "QTY": "2"},
        ),
        # the same part in another parent is another row: MINSERT 1 x 2 of KIT
        row(
            **bolt_cols,
            qty=2.0,
            block_path="KIT/BOLT",
            handle=bolt_in_kit.dxf.handle,
            level=1,
            insert_count=2,
            attributes=bolt,
        ),
        # paperspace: the title block (and the LOGO inside it) is no part
        row(
            **bolt_cols,
            qty=1.0,
            block_path="BOLT",
            layout="Layout1",
            handle=bolt_on_sheet.dxf.handle,
            insert_count=1,
            attributes=bolt,
        ),
    ]
    return rows, expected


def test_generated_drawing_gives_exactly_the_expected_rows(drawing):
    rows, expected = drawing
    assert rows == expected
    assert_plain(rows)


def test_title_block_and_its_contents_stay_out(drawing):
    rows, _ = drawing
    assert not {"TITLE_A3", "LOGO"} & {r["block_name"] for r in rows}
    assert all("Cadpipe Ltd" not in r["attributes"] for r in rows)


def test_nested_counts_through_three_levels():
    doc = ezdxf.new("R2018")
    define(doc, "SCREW", "PART_NO")
    group = define(doc, "GROUP")
    for x in range(4):
        place(group, "SCREW", {"PART_NO": "SC-3"}, (x, 0))
    module = define(doc, "MODULE", "PART_NO")
    place(module, "GROUP", at=(0, 0))
    place(module, "GROUP", at=(0, 10)).grid(size=(1, 2), spacing=(1, 1))  # 1 + 2 groups
    msp = doc.modelspace()
    place(msp, "MODULE", {"PART_NO": "M-1"})
    place(msp, "MODULE", {"PART_NO": "M-1"}, (50, 0))
    rows = bom_rows(doc)
    assert [(r["block_path"], r["level"], r["qty"]) for r in rows] == [
        ("MODULE", 0, 2.0),
        ("MODULE/GROUP/SCREW", 2, 2 * 3 * 4.0),
    ]


def test_explicit_qty_multiplies_only_through_parents():
    """A stated QTY counts per occurrence of the block holding the insert."""
    doc = ezdxf.new("R2018")
    define(doc, "NUT", "PART_NO", "QTY")
    box = define(doc, "BOX")
    place(box, "NUT", {"PART_NO": "N-6", "QTY": "5"})
    place(box, "NUT", {"PART_NO": "N-6", "QTY": "5"}, (3, 0))  # the same item line drawn twice
    place(doc.modelspace(), "BOX").grid(size=(2, 2), spacing=(20, 20))
    [nut] = bom_rows(doc)
    assert (nut["qty"], nut["insert_count"]) == (5.0 * 4, 2 * 4)


def test_empty_drawing_and_plain_inserts_give_no_rows():
    doc = ezdxf.new("R2018")
    define(doc, "PLAIN")
    place(doc.modelspace(), "PLAIN")
    assert bom_rows(doc) == []


def test_constant_attributes_count_as_attributes():
    doc = ezdxf.new("R2018")
    block = define(doc, "STD_PART", "DESC")
    block.add_attdef("PART_NO", (0, 5), text="DIN-912").is_const = True
    msp = doc.modelspace()
    msp.add_blockref("STD_PART", (0, 0)).add_attrib("DESC", "Cap screw")
    msp.add_blockref("STD_PART", (9, 0))  # no ATTRIB at all: the constant still names the part
    assert [(r["part_number"], r["description"], r["qty"]) for r in bom_rows(doc)] == [
        ("DIN-912", "Cap screw", 1.0),
        ("DIN-912", None, 1.0),
    ]


def test_custom_tag_map_adds_columns_and_renames():
    doc = ezdxf.new("R2018")
    define(doc, "P", "SACHNR", "OBERFLAECHE")
    place(doc.modelspace(), "P", {"SACHNR": "4711", "OBERFLAECHE": "verzinkt"})
    [r] = bom_rows(doc, tag_map={**DEFAULT_TAG_MAP, "part_number": ["SACHNR"], "finish": ["OBERFLAECHE"]})
    assert (r["part_number"], r["finish"]) == ("4711", "verzinkt")
    assert list(r)[: len(COLUMNS) - 8] == COLUMNS[:-8] and list(r)[14] == "finish"


def test_broken_structures_are_survived():
    """A missing block definition and a block that inserts itself: finite, sensible rows."""
    doc = ezdxf.new("R2018")
    msp = doc.modelspace()
    msp.add_blockref("NOT_DEFINED", (0, 0)).add_attrib("PART_NO", "X-1")
    loop = define(doc, "LOOP", "PART_NO")
    loop.add_blockref("LOOP", (5, 5)).add_attrib("PART_NO", "L-1")
    msp.add_blockref("LOOP", (0, 0)).add_attrib("PART_NO", "L-1")
    rows = bom_rows(doc)
    assert [(r["block_path"], r["part_number"], r["qty"]) for r in rows] == [
        ("NOT_DEFINED", "X-1", 1.0),
        ("LOOP", "L-1", 1.0),
        ("LOOP/LOOP", "L-1", 1.0),  # the recursion is cut after one level
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4", (4.0, None)),
        (" 3 ", (3.0, None)),
        ("2 pcs", (2.0, "pcs")),
        ("2 Stk.", (2.0, "Stk")),
        ("1,5", (1.5, None)),
        ("1,5 m", (1.5, "m")),
        ("2x", (2.0, None)),
        ("x2", (2.0, None)),
        ("1/2", (0.5, None)),
        (".5", (0.5, None)),
        ("1.234,5", (1234.5, None)),
        ("1,234.5", (1234.5, None)),
        ("1'000", (1000.0, None)),
        ("AR", (None, None)),
        ("ca. 3", (None, None)),
        ("-1", (None, None)),
        ("2-4", (None, None)),
        ("1/0", (None, None)),
        ("", (None, None)),
        (None, (None, None)),
    ],
)
def test_parse_quantity(text, expected):
    assert parse_quantity(text) == expected


def test_parse_mass():
    assert parse_mass("1.2 kg") == 1.2
    assert parse_mass("500 g") == 0.5
    assert parse_mass("2 lb") == pytest.approx(0.90718474)
    assert parse_mass("12") == 12.0  # no unit: as written
    assert parse_mass("12 furlongs") is None
    assert parse_mass("heavy") is None


def test_tag_spellings_normalize():
    assert {normalize_tag(t) for t in ("Part-No", "PART NO.", "part_no", "PART#")} == {"PARTNO"}
    assert normalize_tag("p/n") == "PN"
