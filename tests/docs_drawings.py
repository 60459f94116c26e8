"""Generated drawings with a known bill of materials and title block, for the documents' tests."""

from __future__ import annotations

from pathlib import Path

import ezdxf

SCRIPT = "<script>alert(1)</script>"


def _define(doc, name: str, *tags: str) -> None:
    block = doc.blocks.new(name)
    block.add_circle((0, 0), 2)
    for i, tag in enumerate(tags):
        block.add_attdef(tag, (3, -3 * i), dxfattribs={"height": 1.5})


def _place(msp, name: str, values: dict[str, str], at: tuple[float, float]) -> None:
    msp.add_blockref(name, at).add_auto_attribs(values)


def pump_drawing(path: Path) -> Path:
    """Parts B-100 (4 + 2 = 6), N-200 (3, described by a script tag), W-300 (QTY "AR"), and a
    title block whose drawn-by field is markup too."""
    doc = ezdxf.new("R2018")
    msp = doc.modelspace()
    for name in ("BOLT", "NUT", "WASHER"):
        _define(doc, name, "PART_NO", "DESC", "QTY")
    _define(doc, "TITLE_BLOCK", "TITLE", "DWG_NO", "REV", "DRAWN_BY", "SCALE")
    msp.add_lwpolyline([(0, 0), (200, 0), (200, 120), (0, 120)], close=True)
    msp.add_circle((100, 60), 40)
    msp.add_line((60, 60), (140, 60))
    _place(msp, "BOLT", {"PART_NO": "B-100", "DESC": "Hex bolt M8", "QTY": "4"}, (20, 20))
    _place(msp, "BOLT", {"PART_NO": "B-100", "DESC": "Hex bolt M8", "QTY": "2"}, (40, 20))
    _place(msp, "NUT", {"PART_NO": "N-200", "DESC": SCRIPT, "QTY": "3"}, (60, 20))
    _place(msp, "WASHER", {"PART_NO": "W-300", "DESC": "Washer", "QTY": "AR"}, (80, 20))
    _place(
        msp,
        "TITLE_BLOCK",
        {"TITLE": "Pump housing", "DWG_NO": "D-42", "REV": "B", "DRAWN_BY": "<b>eve</b>", "SCALE": "1:2"},
        (150, 5),
    )
    doc.saveas(path)
    return path


def frame_drawing(path: Path) -> Path:
    """Ten B-100 bolts in one more drawing, and a part no other drawing uses."""
    doc = ezdxf.new("R2018")
    msp = doc.modelspace()
    _define(doc, "BOLT", "PART_NO", "DESC", "QTY")
    msp.add_lwpolyline([(0, 0), (300, 0), (300, 50), (0, 50)], close=True)
    _place(msp, "BOLT", {"PART_NO": "B-100", "DESC": "Hex bolt M8", "QTY": "10"}, (10, 10))
    _place(msp, "BOLT", {"PART_NO": "F-900", "DESC": "Frame rail", "QTY": "2"}, (50, 10))
    doc.saveas(path)
    return path


def broken_drawing(path: Path) -> Path:
    """A .dxf that is no drawing at all: it fails, permanently, and is quarantined."""
    path.write_text("0\nSECTION\n2\nENTITIES\n0\nLINE\n8\n0\n10\nnot a number\n", encoding="ascii")
    return path
