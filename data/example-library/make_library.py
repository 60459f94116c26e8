"""Writes the example library that editors/recipe-example.yaml is shown on (README, "Library-wide
edits: recipes"). The drawings are made here with ezdxf, so they are ours (MIT, like cadpipe);
run it again to rebuild them: `.venv/bin/python data/example-library/make_library.py`.

    project-x/PX-100.dxf, PX-101.dxf   selected: title block PX-*, revision A, a DIM layer
    project-x/PX-102.dxf               not selected: revision C
    project-x/PX-103-old.dxf           not selected: excluded by name (*-old.dxf)
    project-x/superseded/PX-090.dxf    not selected: excluded by folder (*/superseded/*)
    project-y/PY-200.dxf               not selected: another project's folder
    blocks/TB-A3.dxf                   the new title block that redefine_block takes TB-A3 from
"""

from __future__ import annotations

from pathlib import Path

import ezdxf

HERE = Path(__file__).resolve().parent
TITLE_TAGS = ("TITLE", "DWG_NO", "REV", "DATE")


def sheet(path: Path, number: str, revision: str = "A", version: str = "R2000", title: str = "Pump housing") -> None:
    """A sheet as a project has it: a frame title block TB-A3 (attributes TITLE, DWG_NO, REV, DATE)
    in its paperspace layout, dimensions on layer DIM, a note that names the project phase, and an
    unused layer and block for `purge`."""
    doc = ezdxf.new(version, setup=True)
    doc.header["$INSUNITS"] = 4  # millimetres
    doc.layers.add("DIM", color=1)
    doc.layers.add("NOTES", color=2)
    doc.layers.add("OLD", color=5)  # unused: purged by the recipe
    block = doc.blocks.new("TB-A3")
    block.add_lwpolyline([(0, 0), (180, 0), (180, 40), (0, 40)], close=True)
    block.add_text("PROJECT X", dxfattribs={"height": 3}).set_placement((5, 42))
    for i, tag in enumerate(TITLE_TAGS):
        block.add_attdef(tag, (5, 35 - 8 * i), dxfattribs={"height": 2.5})
    doc.blocks.new("UNUSED").add_circle((0, 0), 1)  # never placed: purged by the recipe

    msp = doc.modelspace()
    msp.add_lwpolyline([(0, 0), (120, 0), (120, 60), (0, 60)], close=True)
    msp.add_circle((60, 30), 15)
    msp.add_linear_dim(base=(0, -10), p1=(0, 0), p2=(120, 0), dxfattribs={"layer": "DIM"}).render()
    msp.add_text(f"Phase 1: {title.lower()}", dxfattribs={"layer": "NOTES", "height": 4}).set_placement((0, 70))
    layout = doc.layouts.get("Layout1")
    values = {"TITLE": title, "DWG_NO": number, "REV": revision, "DATE": "2024-01-15"}
    layout.add_blockref("TB-A3", (230, 10)).add_auto_attribs(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc.saveas(path)


def title_block_library(path: Path) -> None:
    """The new TB-A3: a wider frame with a logo circle, the same attributes."""
    doc = ezdxf.new("R2018")
    doc.layers.add("FRAME", color=8)
    block = doc.blocks.new("TB-A3")
    block.add_lwpolyline([(0, 0), (200, 0), (200, 45), (0, 45)], close=True, dxfattribs={"layer": "FRAME"})
    block.add_circle((190, 35), 6, dxfattribs={"layer": "FRAME"})
    block.add_text("PROJECT X", dxfattribs={"height": 3}).set_placement((5, 47))
    for i, tag in enumerate(TITLE_TAGS):
        block.add_attdef(tag, (5, 38 - 8 * i), dxfattribs={"height": 2.5})
    path.parent.mkdir(parents=True, exist_ok=True)
    doc.saveas(path)


def main() -> None:
    sheet(HERE / "project-x" / "PX-100.dxf", "PX-100", version="R2000", title="Pump housing")
    sheet(HERE / "project-x" / "PX-101.dxf", "PX-101", version="R2013", title="Pump cover")
    sheet(HERE / "project-x" / "PX-102.dxf", "PX-102", revision="C", title="Impeller")
    sheet(HERE / "project-x" / "PX-103-old.dxf", "PX-103", title="Old shaft")
    sheet(HERE / "project-x" / "superseded" / "PX-090.dxf", "PX-090", title="First housing")
    sheet(HERE / "project-y" / "PY-200.dxf", "PY-200", title="Valve body")
    title_block_library(HERE / "blocks" / "TB-A3.dxf")


if __name__ == "__main__":
    main()
