"""Title block fields: generated drawings with known title blocks and look-alikes (corpus drawings:
tests/e2e/test_title_block_corpus.py)."""

from __future__ import annotations

from typing import Any

import ezdxf

from extractors.dxf_bom import bom_rows
from extractors.title_block import DEFAULT_TITLE_TAG_MAP, title_block

KEYS = [
    "title",
    "drawing_number",
    "revision",
    "date",
    "drawn_by",
    "scale",
    "sheet",
    "material",
    "project",
    "title_block_name",
    "title_block_layout",
]
NOTHING = dict.fromkeys(KEYS)


def define(doc: ezdxf.document.Drawing, name: str, *tags: str) -> None:
    block = doc.blocks.new(name)
    block.add_lwpolyline([(0, 0), (180, 0), (180, 40), (0, 40)], close=True)
    for i, tag in enumerate(tags):
        block.add_attdef(tag, (5, 35 - 5 * i), dxfattribs={"height": 2.5})


def place(space: Any, name: str, values: dict[str, str], at=(0, 0)) -> None:
    space.add_blockref(name, at).add_auto_attribs(values)


def test_paperspace_title_block_gives_every_field(tmp_path):
    doc = ezdxf.new("R2018")
    define(doc, "ISO-Titleblock A3", "Drawing_Title", "DWG#", "Rev.", "date", "Drawn-By", "SCALE", "SHT", "MAT")
    define(doc, "BOLT", "PART_NO", "QTY")
    place(doc.modelspace(), "BOLT", {"PART_NO": "B-1", "QTY": "2"})
    place(
        doc.layouts.get("Layout1"),
        "ISO-Titleblock A3",
        {
            "Drawing_Title": "Pump housing",
            "DWG#": "D-4711",
            "Rev.": "C",
            "date": "2024-05-01",
            "Drawn-By": "<b>ab</b>",
            "SCALE": "1:2",
            "SHT": "1 of 2",
            "MAT": "EN-GJL-250",
        },
    )
    doc.saveas(tmp_path / "housing.dxf")
    doc = ezdxf.readfile(tmp_path / "housing.dxf")

    assert title_block(doc) == {
        "title": "Pump housing",
        "drawing_number": "D-4711",
        "revision": "C",
        "date": "2024-05-01",
        "drawn_by": "<b>ab</b>",
        "scale": "1:2",
        "sheet": "1 of 2",
        "material": "EN-GJL-250",
        "project": None,
        "title_block_name": "ISO-Titleblock A3",
        "title_block_layout": "Layout1",
    }
    assert [r["block_name"] for r in bom_rows(doc)] == ["BOLT"]


def test_no_title_block():
    doc = ezdxf.new("R2018")
    define(doc, "BOLT", "PART_NO", "REV", "MATERIAL")  # 2 title tags, but 3 part tags: a part
    place(doc.modelspace(), "BOLT", {"PART_NO": "B-1", "REV": "A", "MATERIAL": "steel"})
    define(doc, "DATE_STAMP", "DATE")  # a single title tag is not enough without a name match
    place(doc.modelspace(), "DATE_STAMP", {"DATE": "2020-04-21"})
    assert title_block(doc) == NOTHING
    assert title_block(ezdxf.new("R12")) == NOTHING


def test_part_named_like_a_frame_is_no_title_block():
    doc = ezdxf.new("R2018")
    define(doc, "FRAME_RAIL", "PART_NO", "DESC", "QTY", "MATERIAL")
    place(doc.modelspace(), "FRAME_RAIL", {"PART_NO": "FR-1", "DESC": "Rail", "QTY": "2", "MATERIAL": "S235"})
    assert title_block(doc) == NOTHING
    assert [r["part_number"] for r in bom_rows(doc)] == ["FR-1"]


def test_sheet_block_found_by_tags_beats_a_detail_title_bubble():
    """Name patterns alone would pick the bubble; its one title tag loses to four."""
    doc = ezdxf.new("R2018")
    define(doc, "Detail Title", "DETAILNUMBER", "SCALE")
    define(doc, "A3", "CUSTOMER", "SCALE", "DRAWN_BY", "DATE", "SHEET")
    sheet = doc.layouts.get("Layout1")
    place(sheet, "Detail Title", {"DETAILNUMBER": "1", "SCALE": "NTS"})
    place(sheet, "A3", {"CUSTOMER": "ACME", "SCALE": "1:10", "DRAWN_BY": "SW", "DATE": "12-13-10", "SHEET": "1"})
    assert title_block(doc) == {
        **NOTHING,
        "scale": "1:10",
        "drawn_by": "SW",
        "date": "12-13-10",
        "sheet": "1",
        "title_block_name": "A3",
        "title_block_layout": "Layout1",
    }
    assert bom_rows(doc) == []  # neither is a part


def test_name_match_without_attributes_still_names_the_title_block():
    doc = ezdxf.new("R2018")
    doc.blocks.new("Border_A1").add_text("ACME Corp")  # text only, no attributes
    doc.modelspace().add_blockref("Border_A1", (0, 0))
    assert title_block(doc) == {**NOTHING, "title_block_name": "Border_A1", "title_block_layout": "Model"}


def test_ranking_prefers_more_fields_then_paperspace_then_tab_order():
    doc = ezdxf.new("R2018")
    define(doc, "TB_SMALL", "TITLE", "DWG_NO")
    define(doc, "TB_FULL", "TITLE", "DWG_NO", "REV")
    place(doc.modelspace(), "TB_FULL", {"TITLE": "model", "DWG_NO": "1", "REV": "A"})
    place(doc.layouts.get("Layout1"), "TB_SMALL", {"TITLE": "sheet 1", "DWG_NO": "1"})
    assert title_block(doc)["title"] == "model"  # three fields beat two

    place(doc.layouts.get("Layout1"), "TB_FULL", {"TITLE": "sheet 1", "DWG_NO": "1", "REV": "A"})
    doc.layouts.new("Sheet 2")
    place(doc.layouts.get("Sheet 2"), "TB_FULL", {"TITLE": "sheet 2", "DWG_NO": "1", "REV": "A"})
    result = title_block(doc)
    assert (result["title"], result["title_block_layout"]) == ("sheet 1", "Layout1")
    doc.layouts.get("Sheet 2").dxf.taborder = 1  # move "Sheet 2" before "Layout1"
    doc.layouts.get("Layout1").dxf.taborder = 2
    assert doc.layouts.names_in_taborder() == ["Model", "Sheet 2", "Layout1"]
    assert title_block(doc)["title"] == "sheet 2"
    assert [r["block_name"] for r in bom_rows(doc)] == []


def test_custom_patterns_and_tag_map():
    doc = ezdxf.new("R2018")
    define(doc, "SCHILD", "BEZ", "PROJEKT")
    place(doc.modelspace(), "SCHILD", {"BEZ": "Welle", "PROJEKT": "P-9"})
    assert title_block(doc) == NOTHING  # neither the name nor the tags are known by default

    tag_map = {**DEFAULT_TITLE_TAG_MAP, "title": ["BEZ"], "project": ["PROJEKT"]}
    result = title_block(doc, patterns=["schild*"], tag_map=tag_map)
    assert result == {
        **dict.fromkeys(DEFAULT_TITLE_TAG_MAP),
        "title": "Welle",
        "project": "P-9",
        "title_block_name": "SCHILD",
        "title_block_layout": "Model",
    }
    assert list(result)[-3:] == ["project", "title_block_name", "title_block_layout"]


def test_empty_values_are_none():
    doc = ezdxf.new("R2018")
    define(doc, "TITLE", "TITLE", "DWG_NO", "REV")
    place(doc.modelspace(), "TITLE", {"TITLE": "Shaft", "DWG_NO": "  ", "REV": ""})
    assert title_block(doc) == {**NOTHING, "title": "Shaft", "title_block_name": "TITLE", "title_block_layout": "Model"}
