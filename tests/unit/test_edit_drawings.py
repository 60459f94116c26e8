"""The generated drawings of tests/edit_drawings.py are what the edit tests take them for."""

from __future__ import annotations

import ezdxf

from extractors.title_block import title_block
from tests.edit_drawings import attribs_of, make_sheet


def test_sheet_has_the_title_block_the_edit_tests_rely_on(tmp_path):
    doc = ezdxf.readfile(make_sheet(tmp_path / "s.dxf", number="PX-7", revision="C"))
    fields = title_block(doc)
    assert (fields["drawing_number"], fields["revision"], fields["title_block_name"]) == ("PX-7", "C", "TB-A3")
    assert [a["REV"] for a in attribs_of(doc)] == ["C", "C"]
    assert [a["PART_NO"] for a in attribs_of(doc, "BOLT")] == ["B-12"]
    assert {layer.dxf.name for layer in doc.layers} >= {"0", "DIM", "TXT", "OLD", "NOTES"}


def test_r12_and_binary_sheets_load(tmp_path):
    r12 = ezdxf.readfile(make_sheet(tmp_path / "r12.dxf", version="R12"))
    assert r12.dxfversion == "AC1009" and attribs_of(r12)[0]["DWG_NO"] == "PX-001"
    binary = make_sheet(tmp_path / "bin.dxf", binary=True)
    assert binary.read_bytes().startswith(b"AutoCAD Binary DXF")
    assert ezdxf.readfile(binary).dxfversion == "AC1032"
