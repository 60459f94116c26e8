"""Recipe selection: path globs and formats, and conditions on what the drawing holds."""

from __future__ import annotations

import ezdxf
import pytest

from documents.dxf_document import open_dxf
from editors.recipe import parse_recipe
from editors.selection import FileFacts, TitleSettings, document_facts, facts_selected, path_selected
from extractors.block_attributes import DEFAULT_TAG_MAP
from extractors.title_block import DEFAULT_TITLE_BLOCK_PATTERNS, DEFAULT_TITLE_TAG_MAP
from tests.edit_drawings import make_sheet

SETTINGS = TitleSettings(tuple(DEFAULT_TITLE_BLOCK_PATTERNS), DEFAULT_TITLE_TAG_MAP, DEFAULT_TAG_MAP)


def selection(select: str):
    return parse_recipe(f"select: {select}\noperations: [purge: ]\n").select


@pytest.mark.parametrize(
    ("select", "path", "fmt", "selected"),
    [
        ("{}", "a/b/sheet.dxf", "dxf", True),
        ("{}", "a/sheet.dxf", "dxf-binary", True),
        ("{}", "sheet.dxf", "unknown", True),  # unrecognised content with a DXF name: fails with a reason
        ("{}", "model.stp", "unknown", False),
        ("{formats: [dxf-binary]}", "sheet.dxf", "dxf", False),
        ("{paths: ['sheet-*.dxf']}", "deep/down/Sheet-1.DXF", "dxf", True),  # no "/": the file name, no case
        ("{paths: ['project-x/*']}", "project-x/sub/s.dxf", "dxf", True),  # "*" crosses folders
        ("{paths: ['project-x/*']}", "project-y/s.dxf", "dxf", False),
        ("{paths: ['project-x/*'], exclude: ['*/old/*']}", "project-x/old/s.dxf", "dxf", False),
        ("{exclude: ['*-old.dxf']}", "a/s-old.dxf", "dxf", False),
    ],
)
def test_path_selection(select, path, fmt, selected):
    assert path_selected(selection(select), path, fmt) is selected


def facts(version="AC1032", layers=("0", "dim"), **title) -> FileFacts:
    return FileFacts(version, frozenset(layers), {"drawing_number": None, "revision": None, **title})


@pytest.mark.parametrize(
    ("select", "drawing", "selected"),
    [
        ("{dxf_version: R12}", facts("AC1009"), True),
        ("{dxf_version: R12}", facts("AC1015"), False),
        ("{dxf_version: '< R2000'}", facts("AC1014"), True),
        ("{layers: [DIM]}", facts(), True),  # layer names ignore case
        ("{layers: [DIM, TXT]}", facts(), False),  # every listed layer must be there
        ("{title_block: {drawing_number: 'px-*'}}", facts(drawing_number="PX-001"), True),
        ("{title_block: {drawing_number: 'PX-*'}}", facts(drawing_number="QQ-1"), False),
        ("{title_block: {drawing_number: 'PX-*'}}", facts(), False),  # no title block: no match
        ("{title_block: {revision: [A, B]}}", facts(revision="B"), True),
        ("{title_block: {revision: A, drawing_number: 'PX-*'}}", facts(revision="A", drawing_number="QQ"), False),
    ],
)
def test_conditions(select, drawing, selected):
    assert facts_selected(selection(select), drawing) is selected


def test_facts_from_the_document_match_what_the_catalog_records(tmp_path):
    loaded = open_dxf(make_sheet(tmp_path / "s.dxf", number="PX-9", revision="C"))
    found = document_facts(loaded, SETTINGS)
    assert found.dxf_version == "AC1032"
    assert {"0", "dim", "txt", "old", "notes"} <= found.layers
    assert found.title_block["drawing_number"] == "PX-9" and found.title_block["title_block_name"] == "TB-A3"
    assert FileFacts.from_dict(found.to_dict()) == found


def test_stored_version_is_the_files_not_ezdxfs_upgrade(tmp_path):
    doc = ezdxf.new("R2000")
    doc.saveas(tmp_path / "r14.dxf")
    # An R14 file: ezdxf treats it as R2000 once loaded, selection must see R14.
    text = (tmp_path / "r14.dxf").read_text().replace("AC1015", "AC1014", 1)
    (tmp_path / "r14.dxf").write_text(text)
    loaded = open_dxf(tmp_path / "r14.dxf")
    assert loaded.doc.dxfversion == "AC1015"
    assert document_facts(loaded, SETTINGS).dxf_version == "AC1014"
