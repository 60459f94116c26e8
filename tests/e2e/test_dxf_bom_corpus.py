"""BOM rows from real corpus drawings: a parts list written into a copy of a real AutoCAD table,
tables that are no parts lists, and every attributed corpus drawing (generated drawings:
tests/unit/test_dxf_bom.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ezdxf
import pytest
from ezdxf import recover
from ezdxf.lldxf.tags import Tags
from ezdxf.lldxf.types import DXFTag

from extractors.dxf_bom import bom_rows
from tests.unit.test_dxf_bom import assert_plain, row

TABLE_FILE = "files/ezdxf/examples_dxf__acad_table_simple.dxf"

# --- ACAD_TABLE ---------------------------------------------------------------------------------
# ezdxf 1.4.5 cannot create ACAD_TABLE entities, it only keeps their tags and reads their cells
# (ezdxf.entities.read_acad_table_content). So a parts list is written as table data into a copy
# of a real AutoCAD table from the corpus: its preamble (style, block, direction) is kept, the row
# and column counts and one cell record per cell are replaced. (The anonymous *T block that draws
# the table still shows the old text; the BOM reads the data, not the drawing.)

PARTS = [
    ["1", "B-M6", "Bolt M6x20", "6", "8.8"],
    ["2", "W-8", "Washer\\P8 mm", "12", ""],  # \P: an MTEXT line break in the cell
    ["3", "C-1", "Cable", "AR", "Cu"],
]
HEADER = ["ITEM", "Part No.", "DESCRIPTION", "QTY", "MATERIAL"]


def write_table(doc: ezdxf.document.Drawing, cells: list[list[str]]) -> str:
    table = doc.modelspace().query("ACAD_TABLE")[0]
    index = next(i for i, sub in enumerate(table.xtags.subclasses) if sub[0].value == "AcDbTable")
    old = table.xtags.subclasses[index]
    first_cell = next(i for i, tag in enumerate(old) if tag.code == 171)
    cell_end = next(i for i, tag in enumerate(old) if tag.code == 304)
    template = list(old[first_cell : cell_end + 1])  # one text cell: 171 ... 302 text, 304 ACVALUE_END
    assert [tag.code for tag in template].count(302) == 1
    nrows, ncols = len(cells), len(cells[0])
    tags = [
        DXFTag(tag.code, {91: nrows, 92: ncols}[tag.code]) if tag.code in (91, 92) else tag
        for tag in old[:first_cell]
        if tag.code not in (141, 142)
    ]
    tags += [DXFTag(141, 9.0)] * nrows + [DXFTag(142, 40.0)] * ncols
    for text in (text for r in cells for text in r):
        tags += [DXFTag(tag.code, text) if tag.code in (1, 302) else tag for tag in template]
    table.xtags.subclasses[index] = Tags(tags)
    return table.dxf.handle


def table_row(values: list[str], qty: float | None, **columns: Any) -> dict[str, Any]:
    plain = [value.replace("\\P", "\n") for value in values]  # cells are read without MTEXT codes
    return row(source="table", handle="9C", qty=qty, attributes=dict(zip(HEADER, plain)), **columns)


EXPECTED_TABLE = [
    table_row(PARTS[0], 6.0, item_no="1", part_number="B-M6", description="Bolt M6x20", material="8.8"),
    table_row(PARTS[1], 12.0, item_no="2", part_number="W-8", description="Washer\n8 mm"),
    table_row(PARTS[2], None, item_no="3", part_number="C-1", description="Cable", material="Cu"),
]


@pytest.mark.parametrize(
    "cells",
    [
        [["PARTS LIST", "", "", "", ""], HEADER, *PARTS, ["", "", "", "", ""]],
        [["", "", "", "", ""], *reversed(PARTS), HEADER],  # drawn upwards from the title block
    ],
    ids=["header-on-top", "header-at-bottom"],
)
def test_generated_parts_list_table(corpus_copy, tmp_path, cells):
    folder = corpus_copy(TABLE_FILE)
    doc = ezdxf.readfile(folder / Path(TABLE_FILE).name)
    assert write_table(doc, cells) == "9C"
    doc.saveas(tmp_path / "parts_list.dxf")
    rows = bom_rows(ezdxf.readfile(tmp_path / "parts_list.dxf"))
    assert rows == EXPECTED_TABLE
    assert_plain(rows)


@pytest.mark.parametrize(
    "name", ["files/ezdxf/examples_dxf__acad_table_simple.dxf", "files/ezdxf/examples_dxf__acad_table_with_blk_ref.dxf"]
)
def test_corpus_tables_that_are_no_parts_lists_give_no_rows(corpus_copy, name):
    doc = ezdxf.readfile(corpus_copy(name) / Path(name).name)
    assert len(doc.modelspace().query("ACAD_TABLE")) == 1
    assert bom_rows(doc) == []


# --- corpus ------------------------------------------------------------------------------------


def load(path: Path, how: str) -> ezdxf.document.Drawing:
    return ezdxf.readfile(path) if how == "ok" else recover.readfile(path)[0]


def test_corpus_drawings_with_attributes(corpus_copy, manifest):
    """Every loadable corpus DXF with attributed inserts gives a BOM row or a title-block field."""
    from extractors.title_block import title_block

    chosen = [
        r
        for r in manifest
        if r["format"] in ("dxf", "dxf-binary")
        and r["ezdxf_load"] in ("ok", "recover")
        and int(r["inserts_with_attribs"] or 0) > 0
    ]
    assert len(chosen) >= 10
    folder = corpus_copy(*(r["path"] for r in chosen))
    empty, results = [], {}
    for r in chosen:
        doc = load(folder / Path(r["path"]).name, r["ezdxf_load"])
        rows = bom_rows(doc)
        assert_plain(rows)
        fields = {k: v for k, v in title_block(doc).items() if v is not None}
        results[r["path"]] = rows
        if not rows and not fields:
            empty.append(r["path"])
    assert empty == []

    # 5 x 5 MINSERT with attributes
    [flag] = results["files/ezdxf/examples_dxf__multi_insert_with_attribs.dxf"]
    assert (flag["block_name"], flag["qty"], flag["insert_count"]) == ("FLAG", 25.0, 25)
    assert json.loads(flag["attributes"]) == {"NAME": "Flag", "XPOS": "x = 0.000", "YPOS": "y = 0.000"}
    # title blocks (sheet block "11x17", detail/section title bubbles) stay out; dynamic blocks
    # are named by their definition, not their *U copies
    cw750 = results["files/dxf-parser/samples__data__api-cw750-details.dxf"]
    names = {r["block_name"] for r in cw750}
    assert names == {"Section Callout", "TYP", "HI90", "V90"}
    assert {r["layout"] for r in cw750} == {"Model"}
    assert sum(r["insert_count"] for r in cw750) == 27  # the 27 attributed inserts of modelspace
