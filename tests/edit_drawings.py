"""Generated drawings for the edit tests, with known title blocks, layers, blocks and texts.

Imported by tests/unit/test_edit_*.py, tests/unit/test_recipe*.py and tests/e2e/test_apply.py;
tests/unit/test_edit_drawings.py checks that they are what those tests take them for.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import ezdxf
from ezdxf.document import Drawing
from ezdxf.lldxf.const import DXFInternalEzdxfError
from ezdxf.lldxf.tagwriter import TagCollector

TITLE_TAGS = ("TITLE", "DWG_NO", "REV", "DATE")


def make_sheet(
    path: Path,
    *,
    number: str = "PX-001",
    revision: str = "A",
    version: str = "R2018",
    binary: bool = False,
    sheets: int = 2,
) -> Path:
    """A drawing as a project would have it:

    - layers DIM (red, one line), TXT (one TEXT), NOTES (one MTEXT, not R12), OLD (unused);
    - block TB-A3 (title block: frame, fixed text "PROJECT X", attributes TITLE, DWG_NO, REV,
      DATE) placed once per sheet (paperspace layouts; R12: modelspace);
    - block BOLT (a part: PART_NO, QTY) placed in modelspace, and a "PROJECT X" text in its
      definition; block UNUSED (never placed) which alone uses block NESTED.
    """
    doc = ezdxf.new(version)
    doc.layers.add("DIM", color=1)
    doc.layers.add("TXT", color=2)
    doc.layers.add("OLD", color=5)
    title = doc.blocks.new("TB-A3")
    title.add_polyline2d([(0, 0), (180, 0), (180, 40), (0, 40)], close=True)  # R12 has no LWPOLYLINE
    title.add_text("PROJECT X", dxfattribs={"height": 3}).set_placement((5, 42))
    for i, tag in enumerate(TITLE_TAGS):
        title.add_attdef(tag, (5, 35 - 8 * i), dxfattribs={"height": 2.5})
    bolt = doc.blocks.new("BOLT")
    bolt.add_circle((0, 0), 3)
    bolt.add_text("PROJECT X bolt", dxfattribs={"height": 1})
    bolt.add_attdef("PART_NO", (0, -5))
    bolt.add_attdef("QTY", (0, -8))
    unused = doc.blocks.new("UNUSED")
    unused.add_line((0, 0), (5, 5))
    unused.add_blockref("NESTED", (1, 1))
    doc.blocks.new("NESTED").add_circle((0, 0), 1)

    msp = doc.modelspace()
    msp.add_line((0, 0), (100, 0), dxfattribs={"layer": "DIM"})
    msp.add_text("PROJECT X general arrangement", dxfattribs={"layer": "TXT", "height": 5})
    if version != "R12":
        doc.layers.add("NOTES")
        msp.add_mtext("Client: PROJECT X\\PPhase 2", dxfattribs={"layer": "NOTES", "char_height": 3})
    msp.add_blockref("BOLT", (50, 50)).add_auto_attribs({"PART_NO": "B-12", "QTY": "4"})
    values = {"TITLE": "Pump housing", "DWG_NO": number, "REV": revision, "DATE": "2024-01-15"}
    if version == "R12":
        msp.add_blockref("TB-A3", (200, 0)).add_auto_attribs(values)
    else:
        layouts = [doc.layouts.get("Layout1")] + [doc.layouts.new(f"Sheet{n}") for n in range(2, sheets + 1)]
        for n, layout in enumerate(layouts, start=1):
            layout.add_blockref("TB-A3", (0, 0)).add_auto_attribs(
                {**values, "DWG_NO": f"{number}" if n == 1 else f"{number}-{n}"}
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    doc.saveas(path, fmt="bin" if binary else "asc")
    return path


def make_library_block(path: Path, *, width: float = 200.0) -> Path:
    """A library drawing with a new TB-A3: a wider frame, a logo circle, the same attributes."""
    doc = ezdxf.new("R2018")
    doc.layers.add("FRAME", color=8)
    block = doc.blocks.new("TB-A3")
    block.add_lwpolyline([(0, 0), (width, 0), (width, 45), (0, 45)], close=True, dxfattribs={"layer": "FRAME"})
    block.add_circle((width - 10, 35), 6, dxfattribs={"layer": "FRAME"})
    for i, tag in enumerate(TITLE_TAGS):
        block.add_attdef(tag, (5, 38 - 8 * i), dxfattribs={"height": 2.5})
    path.parent.mkdir(parents=True, exist_ok=True)
    doc.saveas(path)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def snapshot(doc: Drawing) -> dict[str, tuple[Any, ...]]:
    """handle -> every DXF tag the entity writes: what 'the drawing's content' means in tests."""
    state = {}
    for entity in doc.entitydb.values():
        if not entity.is_alive:
            continue
        collector = TagCollector(dxfversion=doc.dxfversion)
        try:
            entity.export_dxf(collector)
        except DXFInternalEzdxfError:  # structures R12 does not write, such as BLOCK_RECORD
            state[entity.dxf.handle] = ("not written in", doc.dxfversion)
            continue
        tags = collector.tags
        # INSERT and POLYLINE write their ATTRIBs/VERTEXes too: those are entities of their own
        end = next((i for i, tag in enumerate(tags) if i and tag.code == 0), len(tags))
        state[entity.dxf.handle] = tuple((tag.code, repr(tag.value)) for tag in tags[:end])
    return state


def with_sub_entities(entities) -> set[str]:
    """Handles of `entities` and of their ATTRIBs, VERTEXes and SEQENDs."""
    handles = set()
    for entity in entities:
        handles.add(entity.dxf.handle)
        kind = entity.dxftype()
        for sub in entity.attribs if kind == "INSERT" else entity.vertices if kind == "POLYLINE" else []:
            handles.add(sub.dxf.handle)
        if getattr(entity, "seqend", None) is not None:
            handles.add(entity.seqend.dxf.handle)
    return handles


def attribs_of(doc: Drawing, block: str = "TB-A3") -> list[dict[str, str]]:
    """Attribute values of every reference to `block` in every layout, in tab order."""
    found = []
    for name in doc.layouts.names_in_taborder():
        for insert in doc.layouts.get(name).query(f'INSERT[name=="{block}"]'):
            found.append({a.dxf.tag: a.dxf.text for a in insert.attribs})
    return found
