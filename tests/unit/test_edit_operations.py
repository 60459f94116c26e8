"""Each operation changes exactly what it should: every DXF entity of a generated drawing is
compared before and after (all its tags), and only the expected ones may differ."""

from __future__ import annotations

from pathlib import Path

import ezdxf
import pytest

from documents.dxf_document import open_dxf
from documents.errors import InputError
from editors.changes import Change, EditContext
from editors.operations import apply_operations
from editors.recipe import parse_recipe
from editors.selection import TitleSettings, stored_version
from extractors.block_attributes import DEFAULT_TAG_MAP
from extractors.title_block import DEFAULT_TITLE_BLOCK_PATTERNS, DEFAULT_TITLE_TAG_MAP
from tests.edit_drawings import attribs_of, make_library_block, make_sheet, snapshot, with_sub_entities

SETTINGS = TitleSettings(tuple(DEFAULT_TITLE_BLOCK_PATTERNS), DEFAULT_TITLE_TAG_MAP, DEFAULT_TAG_MAP)


class Edit:
    """A generated sheet, loaded; `run(ops)` applies recipe operations and diffs the drawing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.loaded = open_dxf(path)
        self.doc = self.loaded.doc

    def run(self, operations: str) -> list[Change]:
        recipe = parse_recipe("operations:\n" + operations, base_dir=self.path.parent)
        self.before = snapshot(self.doc)
        context = EditContext(SETTINGS.rules(), stored_version(self.loaded))
        changes = apply_operations(self.doc, recipe.operations, context)
        self.after = snapshot(self.doc)
        return changes

    @property
    def modified(self) -> set[str]:
        return {h for h in self.before.keys() & self.after.keys() if self.before[h] != self.after[h]}

    @property
    def removed(self) -> set[str]:
        return self.before.keys() - self.after.keys()

    @property
    def added(self) -> set[str]:
        return self.after.keys() - self.before.keys()

    def handles(self, query: str, where=None) -> set[str]:
        space = where if where is not None else self.doc
        return {e.dxf.handle for e in space.query(query)}

    def title_attribs(self, tag: str) -> set[str]:
        return {
            a.dxf.handle
            for name in self.doc.layouts.names_in_taborder()
            for insert in self.doc.layouts.get(name).query('INSERT[name=="TB-A3"]')
            for a in insert.attribs
            if a.dxf.tag == tag
        }


@pytest.fixture
def sheet(tmp_path) -> Edit:
    return Edit(make_sheet(tmp_path / "sheet.dxf"))


def test_set_attributes_by_field_and_tag_on_every_sheet(sheet):
    changes = sheet.run("  - set_attributes: {fields: {revision: B}, tags: {date: '2024-06-01'}}\n")
    rev, date = sheet.title_attribs("REV"), sheet.title_attribs("DATE")
    assert len(rev) == len(date) == 2  # one title block per sheet
    assert sheet.modified == rev | date and not sheet.added and not sheet.removed
    assert [a["REV"] for a in attribs_of(sheet.doc)] == ["B", "B"]
    assert [a["DATE"] for a in attribs_of(sheet.doc)] == ["2024-06-01", "2024-06-01"]
    assert sorted((c.before, c.after) for c in changes) == [("2024-01-15", "2024-06-01")] * 2 + [("A", "B")] * 2
    assert all(c.operation == "set_attributes" and "TB-A3" in c.target for c in changes)
    assert sheet.run("  - set_attributes: {fields: {revision: B}, tags: {date: '2024-06-01'}}\n") == []


def test_set_attributes_leaves_parts_alone_unless_named(sheet):
    assert sheet.run("  - set_attributes: {tags: {QTY: '6'}}\n") == []  # BOLT is a part, not a title block
    assert sheet.modified == set()
    changes = sheet.run("  - set_attributes: {tags: {QTY: '6'}, blocks: [bolt]}\n")
    assert [(c.before, c.after) for c in changes] == [("4", "6")]
    assert [a["QTY"] for a in attribs_of(sheet.doc, "BOLT")] == ["6"]
    assert len(sheet.modified) == 1


def test_replace_text_in_text_mtext_and_block_definitions(sheet):
    changes = sheet.run(r"  - replace_text: {pattern: 'PROJECT\s+X', replacement: PROJECT Y}" + "\n")
    texts = sheet.handles("TEXT") | sheet.handles("MTEXT")  # modelspace and both block definitions
    assert len(texts) == 4
    assert sheet.modified == texts and not sheet.added and not sheet.removed
    assert sorted(c.after for c in changes) == [
        "Client: PROJECT Y\\PPhase 2",
        "PROJECT Y",
        "PROJECT Y bolt",
        "PROJECT Y general arrangement",
    ]
    assert sheet.run(r"  - replace_text: {pattern: 'PROJECT\s+X', replacement: PROJECT Y}" + "\n") == []


def test_replace_text_in_attributes_only_with_groups_and_case(sheet):
    changes = sheet.run(
        "  - replace_text: {pattern: '^pump (\\w+)$', replacement: 'Pump \\1, cast', ignore_case: true, entities: [ATTRIB]}\n"
    )
    assert sheet.modified == sheet.title_attribs("TITLE")
    assert {(c.before, c.after) for c in changes} == {("Pump housing", "Pump housing, cast")}


def test_rename_layer(sheet):
    line = sheet.handles('LINE[layer=="DIM"]', sheet.doc.modelspace())
    dim = sheet.doc.layers.get("DIM").dxf.handle
    changes = sheet.run("  - rename_layer: {from: dim, to: DIMENSIONS}\n")
    assert sheet.modified == line | {dim} and not sheet.added and not sheet.removed
    assert not sheet.doc.layers.has_entry("DIM")
    assert sheet.doc.layers.get("DIMENSIONS").color == 1  # the layer keeps its properties
    assert [e.dxf.layer for e in sheet.doc.modelspace().query("LINE")] == ["DIMENSIONS"]
    assert changes == [Change("rename_layer", "layer DIM (1 entities)", "DIM", "DIMENSIONS")]
    assert sheet.run("  - rename_layer: {from: DIM, to: DIMENSIONS}\n") == []


def test_rename_layer_merges_into_an_existing_layer(sheet):
    text = sheet.handles('TEXT[layer=="TXT"]', sheet.doc.modelspace())
    txt = sheet.doc.layers.get("TXT").dxf.handle
    changes = sheet.run("  - rename_layer: {from: TXT, to: dim}\n")
    assert sheet.removed == {txt} and sheet.modified == text and not sheet.added
    assert [e.dxf.layer for e in sheet.doc.modelspace().query("TEXT")] == ["DIM"]  # the target's spelling
    assert changes == [Change("rename_layer", "layer TXT (merged into existing layer, 1 entities moved)", "TXT", "DIM")]


def test_rename_layer_moves_the_current_layer_and_viewport_freezes(tmp_path):
    doc = ezdxf.new("R2018")
    doc.layers.add("DIM")
    doc.layers.add("OTHER")
    doc.header["$CLAYER"] = "DIM"
    viewport = doc.layouts.get("Layout1").add_viewport((100, 100), (100, 100), (0, 0), 50)
    viewport.frozen_layers = ["DIM", "OTHER"]
    doc.saveas(tmp_path / "vp.dxf")
    edit = Edit(tmp_path / "vp.dxf")
    edit.run("  - rename_layer: {from: DIM, to: DIMENSIONS}\n")
    assert edit.doc.header["$CLAYER"] == "DIMENSIONS"
    assert edit.doc.layouts.get("Layout1").query("VIEWPORT")[-1].frozen_layers == ["DIMENSIONS", "OTHER"]


def test_rename_layer_that_is_not_there_changes_nothing(sheet):
    assert sheet.run("  - rename_layer: {from: NOPE, to: DIMENSIONS}\n") == []
    assert sheet.before == sheet.after


def test_set_layer_color_and_a_standard_linetype(sheet):
    dim = sheet.doc.layers.get("DIM").dxf.handle
    assert not sheet.doc.linetypes.has_entry("DASHED")
    changes = sheet.run("  - set_layer: {layer: 'di?', color: 3, linetype: dashed}\n")
    assert sheet.modified == {dim}
    assert {sheet.doc.entitydb[h].dxftype() for h in sheet.added} == {"LTYPE"}  # DASHED, added once
    layer = sheet.doc.layers.get("DIM")
    assert (layer.color, layer.dxf.linetype) == (3, "DASHED")
    assert changes == [
        Change("set_layer", "layer DIM color", "1", "3"),
        Change("set_layer", "layer DIM linetype", "Continuous", "DASHED"),
    ]
    assert sheet.run("  - set_layer: {layer: DIM, color: 3, linetype: DASHED}\n") == []


def test_set_layer_keeps_a_layer_off_and_drops_its_true_color(sheet):
    layer = sheet.doc.layers.get("TXT")
    layer.off()
    layer.rgb = (255, 0, 0)
    changes = sheet.run("  - set_layer: {layer: TXT, color: 2}\n")  # same ACI, but a true color
    assert changes == [Change("set_layer", "layer TXT color", "2 (true color #ff0000)", "2")]
    assert layer.is_off() and layer.rgb is None


def test_set_layer_with_an_unknown_linetype_fails_the_drawing(sheet):
    with pytest.raises(InputError, match=r"operations\[0\] set_layer: linetype 'ZIGZAG42' is neither defined"):
        sheet.run("  - set_layer: {layer: DIM, linetype: ZIGZAG42}\n")


def test_purge_removes_unused_layers_and_blocks_only(sheet):
    doc = sheet.doc
    unused_blocks = set()
    for name in ("UNUSED", "NESTED"):
        block = doc.blocks.get(name)
        unused_blocks |= {block.block_record.dxf.handle, block.block.dxf.handle, block.endblk.dxf.handle}
        unused_blocks |= with_sub_entities(block)
    old = doc.layers.get("OLD").dxf.handle
    changes = sheet.run("  - purge:\n")
    assert sheet.removed == unused_blocks | {old}
    assert not sheet.modified and not sheet.added
    assert changes == [
        Change("purge", "block UNUSED", "UNUSED", None),
        Change("purge", "block NESTED", "NESTED", None),  # freed by the purge of UNUSED
        Change("purge", "layer OLD", "OLD", None),
    ]
    assert {"TB-A3", "BOLT"} <= {b.name for b in doc.blocks}
    assert {"0", "DIM", "TXT", "NOTES", "Defpoints"} <= {layer.dxf.name for layer in doc.layers}
    assert sheet.run("  - purge:\n") == []


def test_purge_layers_only_keeps_layers_used_inside_blocks(tmp_path):
    doc = ezdxf.new("R2018")
    doc.layers.add("INSIDE")
    doc.layers.add("CURRENT")
    doc.header["$CLAYER"] = "CURRENT"
    doc.blocks.new("B").add_line((0, 0), (1, 1), dxfattribs={"layer": "INSIDE"})  # an unused block
    doc.saveas(tmp_path / "b.dxf")
    edit = Edit(tmp_path / "b.dxf")
    assert edit.run("  - purge: {blocks: false}\n") == []  # INSIDE is used (by block B), CURRENT is current
    assert [c.target for c in edit.run("  - purge: {}\n")] == ["block B", "layer INSIDE"]


def test_redefine_block_from_a_library_drawing(sheet, tmp_path):
    make_library_block(tmp_path / "lib" / "tb.dxf")
    block = sheet.doc.blocks.get("TB-A3")
    old_content = with_sub_entities(block)
    values = attribs_of(sheet.doc)
    changes = sheet.run("  - redefine_block: {block: TB-A3, source: lib/tb.dxf}\n")
    assert sheet.removed == old_content and not sheet.modified - {block.block.dxf.handle}
    assert sorted(e.dxftype() for e in block) == ["ATTDEF"] * 4 + ["CIRCLE", "LWPOLYLINE"]
    assert sheet.doc.layers.has_entry("FRAME")  # brought along with the block's entities
    assert attribs_of(sheet.doc) == values  # block references keep their attribute values
    assert len(changes) == 1 and changes[0].target == "block TB-A3"
    assert changes[0].before.startswith("6 entities") and changes[0].after.startswith("6 entities")
    assert sheet.run("  - redefine_block: {block: TB-A3, source: lib/tb.dxf}\n") == []
    # and after a round trip through a file, it is still the same block
    sheet.doc.saveas(tmp_path / "saved.dxf")
    again = Edit(tmp_path / "saved.dxf")
    assert again.run("  - redefine_block: {block: TB-A3, source: lib/tb.dxf}\n") == []
    assert again.before == again.after


def test_redefine_block_never_adds_a_block(tmp_path):
    make_library_block(tmp_path / "tb.dxf")
    doc = ezdxf.new("R2018")
    doc.saveas(tmp_path / "empty.dxf")
    edit = Edit(tmp_path / "empty.dxf")
    assert edit.run("  - redefine_block: {block: TB-A3, source: tb.dxf}\n") == []
    assert "TB-A3" not in edit.doc.blocks


def test_convert_version_upgrades_r12(tmp_path):
    edit = Edit(make_sheet(tmp_path / "r12.dxf", version="R12"))
    changes = edit.run("  - convert_version: {to: R2018}\n")
    assert changes == [Change("convert_version", "DXF version ($ACADVER)", "AC1009 (R12)", "AC1032 (R2018)")]
    edit.doc.saveas(tmp_path / "out.dxf")
    doc = ezdxf.readfile(tmp_path / "out.dxf")
    assert doc.dxfversion == "AC1032" and not doc.audit().has_errors
    assert attribs_of(doc)[0]["DWG_NO"] == "PX-001"


def test_convert_version_refuses_to_downgrade(sheet):
    assert sheet.run("  - convert_version: {to: R2018}\n") == []
    with pytest.raises(InputError, match=r"convert_version: the drawing is AC1032 \(R2018\), newer than AC1015"):
        sheet.run("  - convert_version: {to: R2000}\n")


def test_operations_apply_in_order(sheet):
    changes = sheet.run("  - rename_layer: {from: DIM, to: DIMENSIONS}\n  - set_layer: {layer: DIMENSIONS, color: 4}\n")
    assert [c.operation for c in changes] == ["rename_layer", "set_layer"]
    assert sheet.doc.layers.get("DIMENSIONS").color == 4
