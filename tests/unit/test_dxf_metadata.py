"""DXF metadata: a generated drawing with known content and edge cases (every loadable corpus DXF:
tests/e2e/test_dxf_metadata_corpus.py)."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import ezdxf
import pandas as pd
import pyarrow as pa
import pytest
from ezdxf.tools.juliandate import juliandate

from documents.dxf_document import LoadedDxf, open_dxf
from extractors.dxf_metadata import DxfMetadata, extract_metadata

# The documented columns; the module docstring lists the same.
COLUMNS = {
    "layouts": ["name", "is_model", "tab_order", "paper_width", "paper_height", "paper_units", "entity_count"],
    "layers": ["name", "defined", "color", "true_color", "linetype", "is_on", "is_frozen", "is_locked", "entity_count"],
    "entities": ["layout", "dxftype", "count"],
    "blocks": ["name", "entity_count", "insert_count", "is_xref", "xref_path"],
    "texts": ["layout", "dxftype", "handle", "layer", "tag", "text"],
    "refs": ["kind", "name", "path", "resolved_path", "exists", "handle"],
}
SUMMARY_COLUMNS = [
    "dxf_version",
    "dxf_release",
    "insunits",
    "units",
    "measurement",
    "extents_min_x",
    "extents_min_y",
    "extents_min_z",
    "extents_max_x",
    "extents_max_y",
    "extents_max_z",
    "extents_source",
    "created_at",
    "updated_at",
    "codepage",
    "entity_count",
    "block_entity_count",
    "layer_count",
    "layout_count",
    "block_count",
    "text_count",
    "ref_count",
    "missing_ref_count",
    "recovered",
    "audit_fix_count",
    "audit_error_count",
    "entities_read",
    "entities_kept",
    "entities_removed",
]
SCALARS = (str, int, float, bool, type(None))
CREATED = datetime(2021, 3, 4, 5, 6, 7)


def assert_plain_tables(meta: DxfMetadata) -> None:
    assert list(meta.summary) == SUMMARY_COLUMNS
    assert all(isinstance(v, SCALARS) for v in meta.summary.values()), meta.summary
    for table, columns in COLUMNS.items():
        rows = getattr(meta, table)
        for row in rows:
            assert list(row) == columns, (table, row)
            assert all(isinstance(v, SCALARS) for v in row.values()), (table, row)
        if rows:  # what the catalog does with them
            assert pa.Table.from_pylist(rows).num_rows == len(rows)
            assert list(pd.DataFrame(rows).columns) == columns
    assert all(isinstance(w, str) for w in meta.warnings)


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, DxfMetadata]:
    """A drawing with known layers, blocks, texts and external references, saved and re-read."""
    folder = tmp_path_factory.mktemp("sample")
    (folder / "parts").mkdir()
    ezdxf.new("R2018").saveas(folder / "parts" / "bolt.dxf")
    (folder / "images").mkdir()
    (folder / "images" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff")

    doc = ezdxf.new("R2018", setup=True)
    doc.header["$INSUNITS"] = 4
    doc.header["$MEASUREMENT"] = 1
    doc.header["$TDCREATE"] = juliandate(CREATED)

    walls = doc.layers.add("Walls", color=1, linetype="DASHED")
    walls.rgb = (255, 128, 0)
    doc.layers.add("Hidden").off()
    doc.layers.add("Frozen").freeze()
    doc.layers.add("Locked").lock()

    door = doc.blocks.new("Door")
    door.add_line((0, 0), (1, 2))
    door.add_line((1, 2), (0, 2))
    door.add_text("DOOR")
    door.add_attdef("NUM", (0, 3), text="?")
    frame = doc.blocks.new("Frame")
    frame.add_line((0, 0), (5, 0))
    frame.add_blockref("Door", (1, 1)).add_attrib("NUM", "D9")
    doc.add_xref_def("parts\\bolt.dxf", "BOLT")
    doc.add_xref_def("missing\\nut.dwg", "NUT")

    msp = doc.modelspace()
    for start, end in [((0, 0), (100, 0)), ((100, 0), (100, 50)), ((100, 50), (0, 50))]:
        msp.add_line(start, end, dxfattribs={"layer": "Walls"})
    msp.add_circle((200, 100), 10, dxfattribs={"layer": "Hidden"})
    msp.add_line((5, 40), (20, 40), dxfattribs={"layer": "Ghost"})  # no LAYER table entry
    msp.add_text("Angle 45%%d", dxfattribs={"insert": (30, 30), "height": 2})
    msp.add_mtext("{\\fArial|b1;Bold} word\\Pline two", dxfattribs={"insert": (40, 45), "char_height": 2})
    msp.add_blockref("Door", (10, 10)).add_attrib("NUM", "D1", (10, 13))
    msp.add_blockref("Door", (20, 10))
    msp.add_blockref("BOLT", (70, 10))
    msp.add_linear_dim(base=(10, 30), p1=(10, 20), p2=(60, 20)).render()  # an anonymous *D block
    logo = doc.add_image_def(".\\images\\logo.png", (64, 64))
    photo = doc.add_image_def("C:\\Users\\someone\\photo.jpg", (64, 64))
    doc.add_image_def("images/missing.png", (64, 64))  # defined, never placed: still a reference
    msp.add_image(logo, (5, 5), (6.4, 3.6))
    msp.add_image(photo, (30, 5), (6.4, 3.6))
    msp.add_underlay(doc.add_underlay_def("docs/spec.pdf", "pdf", name="1"), (50, 25))

    plan = doc.layouts.new("Plan")
    plan.page_setup(size=(420, 297), margins=(10, 10, 10, 10), units="mm")  # adds the main VIEWPORT
    plan.add_text("Sheet A1")

    path = folder / "plan.dxf"
    doc.saveas(path)
    return path, extract_metadata(open_dxf(path), path)


def test_summary(sample):
    _, meta = sample
    s = meta.summary
    assert s["dxf_version"] == "AC1032" and s["dxf_release"] == "R2018"
    assert (s["insunits"], s["units"], s["measurement"]) == (4, "mm", "metric")
    assert s["created_at"] == "2021-03-04T05:06:07+00:00"
    assert datetime.fromisoformat(s["updated_at"]) > datetime.fromisoformat(s["created_at"])
    assert s["codepage"] == "ANSI_1252"
    # Model: 4 LINE, CIRCLE, TEXT, MTEXT, 3 INSERT, DIMENSION, 2 IMAGE, PDFUNDERLAY; Plan: VIEWPORT, TEXT
    # (the new drawing's empty Layout1 adds nothing)
    assert s["entity_count"] == 14 + 2
    assert s["layout_count"] == 3
    assert s["block_count"] == len(meta.blocks)
    assert s["text_count"] == 6
    assert (s["ref_count"], s["missing_ref_count"]) == (6, 3)
    assert s["recovered"] is False and s["audit_error_count"] == 0
    assert_plain_tables(meta)


def test_extents_computed_when_header_has_none(sample):
    s = sample[1].summary
    assert s["extents_source"] == "computed"  # ezdxf writes the 1e20 "unset" marker
    assert (s["extents_min_x"], s["extents_min_y"]) == pytest.approx((0, 0))
    assert (s["extents_max_x"], s["extents_max_y"]) == pytest.approx((210, 110))  # the circle


def test_layouts(sample):
    layouts = {row["name"]: row for row in sample[1].layouts}
    assert [row["name"] for row in sample[1].layouts] == ["Model", "Layout1", "Plan"]  # tab order
    assert layouts["Model"]["is_model"] is True and layouts["Model"]["entity_count"] == 14
    plan = layouts["Plan"]
    assert plan["is_model"] is False and plan["tab_order"] > layouts["Layout1"]["tab_order"]
    assert (plan["paper_width"], plan["paper_height"], plan["paper_units"]) == (420.0, 297.0, "mm")
    assert plan["entity_count"] == 2
    assert layouts["Layout1"]["entity_count"] == 0


def test_layers(sample):
    layers = {row["name"]: row for row in sample[1].layers}
    walls = layers["Walls"]
    assert (walls["color"], walls["true_color"], walls["linetype"]) == (1, "#ff8000", "DASHED")
    assert walls["entity_count"] == 3 and walls["defined"] is True
    assert layers["Hidden"]["is_on"] is False and layers["Hidden"]["entity_count"] == 1
    assert layers["Frozen"]["is_frozen"] is True and layers["Frozen"]["is_on"] is True
    assert layers["Locked"]["is_locked"] is True and layers["Locked"]["entity_count"] == 0
    ghost = layers["Ghost"]
    assert ghost["defined"] is False and ghost["entity_count"] == 1 and ghost["color"] is None
    # layer 0: TEXT, MTEXT, 3 INSERT, DIMENSION, 2 IMAGE, PDFUNDERLAY in Model; TEXT in Plan
    assert layers["0"]["entity_count"] == 9 + 1
    # ezdxf puts the main viewport on a layer it never defines
    assert layers["VIEWPORTS"]["entity_count"] == 1 and layers["VIEWPORTS"]["defined"] is False
    assert sample[1].summary["layer_count"] == 6  # 0, Defpoints, Walls, Hidden, Frozen, Locked


def test_entities(sample):
    counts = {(row["layout"], row["dxftype"]): row["count"] for row in sample[1].entities}
    assert counts == {
        ("Model", "LINE"): 4,
        ("Model", "CIRCLE"): 1,
        ("Model", "TEXT"): 1,
        ("Model", "MTEXT"): 1,
        ("Model", "INSERT"): 3,
        ("Model", "DIMENSION"): 1,
        ("Model", "IMAGE"): 2,
        ("Model", "PDFUNDERLAY"): 1,
        ("Plan", "VIEWPORT"): 1,
        ("Plan", "TEXT"): 1,
    }


def test_blocks(sample):
    blocks = {row["name"]: row for row in sample[1].blocks}
    # ezdxf's setup adds arrow blocks (_ARCHTICK ...); no anonymous *D block, no layout block
    assert {name for name in blocks if not name.startswith("_")} == {"Door", "Frame", "BOLT", "NUT"}
    assert "_ARCHTICK" in blocks and not any(name.startswith("*") for name in blocks)
    assert blocks["Door"]["entity_count"] == 4  # 2 LINE, TEXT, ATTDEF
    assert blocks["Door"]["insert_count"] == 3  # twice in Model, once inside Frame
    assert blocks["Frame"]["insert_count"] == 0
    assert blocks["BOLT"] == {
        "name": "BOLT",
        "entity_count": 0,
        "insert_count": 1,
        "is_xref": True,
        "xref_path": "parts\\bolt.dxf",
    }
    assert blocks["Door"]["is_xref"] is False and blocks["Door"]["xref_path"] is None


def test_texts(sample):
    texts = {(row["layout"], row["dxftype"], row["tag"], row["text"]) for row in sample[1].texts}
    assert texts == {
        ("Model", "TEXT", None, "Angle 45°"),  # %%d decoded
        ("Model", "MTEXT", None, "Bold word\nline two"),  # inline codes removed
        ("Model", "ATTRIB", "NUM", "D1"),
        ("Plan", "TEXT", None, "Sheet A1"),
        ("block:Door", "TEXT", None, "DOOR"),  # the ATTDEF template is not listed
        ("block:Frame", "ATTRIB", "NUM", "D9"),
    }  # no dimension text from the anonymous *D block
    assert all(row["handle"] and row["layer"] == "0" for row in sample[1].texts)


def test_refs_and_warnings(sample):
    path, meta = sample
    folder = path.parent
    refs = {(row["kind"], row["path"]): row for row in meta.refs}
    assert set(refs) == {
        ("xref", "parts\\bolt.dxf"),
        ("xref", "missing\\nut.dwg"),
        ("image", ".\\images\\logo.png"),
        ("image", "C:\\Users\\someone\\photo.jpg"),
        ("image", "images/missing.png"),
        ("underlay", "docs/spec.pdf"),
    }
    found = {key: row["resolved_path"] for key, row in refs.items() if row["exists"]}
    assert found == {
        ("xref", "parts\\bolt.dxf"): str(folder / "parts" / "bolt.dxf"),  # Windows separators, relative
        ("image", ".\\images\\logo.png"): str(folder / "images" / "logo.png"),
        ("image", "C:\\Users\\someone\\photo.jpg"): str(folder / "photo.jpg"),  # by name beside the drawing
    }
    assert all(row["resolved_path"] is None for row in meta.refs if not row["exists"])
    assert refs[("xref", "parts\\bolt.dxf")]["name"] == "BOLT"
    assert all(row["handle"] for row in meta.refs)
    assert sorted(meta.warnings) == [
        "missing external reference: missing\\nut.dwg",
        "missing image: images/missing.png",
        "missing underlay: docs/spec.pdf",
    ]


def test_header_extents_used_when_they_agree_with_the_drawing(tmp_path):
    doc = ezdxf.new("R2010")
    msp = doc.modelspace()
    msp.add_line((0, 0), (100, 50))
    # AutoCAD measures a little differently from ezdxf: within 2 % of the diagonal is agreement.
    msp.dxf.extmin, msp.dxf.extmax = (-0.5, 0, 0), (100.5, 50.5, 1)  # saved as $EXTMIN/$EXTMAX
    doc.saveas(tmp_path / "a.dxf")
    meta = extract_metadata(open_dxf(tmp_path / "a.dxf"), tmp_path / "a.dxf")
    s = meta.summary
    assert s["extents_source"] == "header"
    assert [s[f"extents_{k}"] for k in ("min_x", "min_y", "min_z", "max_x", "max_y", "max_z")] == [
        -0.5,
        0,
        0,
        100.5,
        50.5,
        1,
    ]
    assert meta.warnings == []


@pytest.mark.parametrize(
    ("extmin", "extmax"),
    [
        ((-5, -6, 0), (500, 400, 1)),  # far larger than what is drawn
        ((2000, 2000, 0), (3000, 2500, 0)),  # does not even overlap the geometry
        ((2.2e-308, 2.2e-308, 0), (2.2e-308, 3e-308, 0)),  # a writer's uninitialised doubles
    ],
)
def test_stale_header_extents_are_replaced_by_the_drawn_ones(tmp_path, extmin, extmax):
    doc = ezdxf.new("R2010")
    msp = doc.modelspace()
    msp.add_line((0, 0), (10, 10))
    msp.add_circle((10, 10), radius=2)
    doc.saveas(tmp_path / "a.dxf")
    write_header_extents(tmp_path / "a.dxf", extmin, extmax)  # as a writer stored them, bypassing ezdxf
    meta = extract_metadata(open_dxf(tmp_path / "a.dxf"), tmp_path / "a.dxf")
    s = meta.summary
    assert s["extents_source"] == "computed"
    assert (s["extents_min_x"], s["extents_min_y"]) == pytest.approx((0, 0))
    assert (s["extents_max_x"], s["extents_max_y"]) == pytest.approx((12, 12))
    assert len(meta.warnings) == 1 and meta.warnings[0].startswith("header extents (")
    assert "do not match the drawn geometry (0, 0)-(12, 12)" in meta.warnings[0]


def write_header_extents(path: Path, extmin, extmax) -> None:
    text = path.read_text()
    for name, point in (("$EXTMIN", extmin), ("$EXTMAX", extmax)):
        values = "".join(f" {code}\n{value!r}\n" for code, value in zip((10, 20, 30), point))
        text = re.sub(
            rf"(\${name[1:]}\n)(?: [123]0\n[^\n]*\n){{3}}", lambda m, values=values: m.group(1) + values, text
        )
    path.write_text(text)


def test_unset_header_extents_are_replaced_without_a_warning(tmp_path):
    doc = ezdxf.new("R2010")
    doc.modelspace().add_line((1, 2), (3, 5))
    doc.modelspace().dxf.extmin, doc.modelspace().dxf.extmax = (1e10, 1e10, 0), (-1e10, -1e10, 0)
    doc.saveas(tmp_path / "a.dxf")
    meta = extract_metadata(open_dxf(tmp_path / "a.dxf"), tmp_path / "a.dxf")
    assert meta.summary["extents_source"] == "computed" and meta.warnings == []


def test_single_point_header_extents_are_recomputed(tmp_path):
    doc = ezdxf.new("R2010")
    doc.modelspace().add_line((1, 2), (3, 5))
    doc.modelspace().dxf.extmin, doc.modelspace().dxf.extmax = (0, 0, 0), (0, 0, 0)
    doc.saveas(tmp_path / "a.dxf")
    s = extract_metadata(open_dxf(tmp_path / "a.dxf"), tmp_path / "a.dxf").summary
    assert s["extents_source"] == "computed"
    assert (s["extents_min_x"], s["extents_min_y"], s["extents_max_x"], s["extents_max_y"]) == (1, 2, 3, 5)


def test_empty_drawing(tmp_path):
    ezdxf.new("R2018").saveas(tmp_path / "empty.dxf")
    meta = extract_metadata(open_dxf(tmp_path / "empty.dxf"), tmp_path / "empty.dxf")
    s = meta.summary
    assert s["entity_count"] == 0 and s["text_count"] == 0 and s["block_count"] == 0
    assert s["extents_source"] is None
    assert all(s[f"extents_{k}"] is None for k in ("min_x", "min_y", "min_z", "max_x", "max_y", "max_z"))
    assert meta.entities == [] and meta.texts == [] and meta.refs == [] and meta.warnings == []
    assert_plain_tables(meta)


def test_r12_drawing_has_no_units_or_paper(tmp_path):
    doc = ezdxf.new("R12")
    doc.modelspace().add_text("%%c20", dxfattribs={"insert": (0, 0)})
    doc.saveas(tmp_path / "r12.dxf")
    meta = extract_metadata(open_dxf(tmp_path / "r12.dxf"), tmp_path / "r12.dxf")
    s = meta.summary
    assert (s["dxf_version"], s["dxf_release"]) == ("AC1009", "R12")
    assert (s["insunits"], s["units"], s["measurement"]) == (None, None, None)
    assert meta.texts[0]["text"] == "Ø20"
    assert all(row["paper_width"] is None for row in meta.layouts)
    assert_plain_tables(meta)


@pytest.mark.parametrize(("code", "name"), [(0, "unitless"), (1, "in"), (6, "m"), (21, "us_ft"), (99, None)])
def test_unit_names(code, name):
    doc = ezdxf.new("R2018")
    meta = extract_metadata(LoadedDxf(doc, False, header_vars={"$INSUNITS": code}), Path("x.dxf"))
    assert (meta.summary["insunits"], meta.summary["units"]) == (code, name)


@pytest.mark.parametrize("value", [0.0, -3.5, 1e12, "yesterday", None])
def test_invalid_dates_are_none(value):
    doc = ezdxf.new("R2018")
    vars_ = {"$TDCREATE": value, "$TDUPDATE": value}
    s = extract_metadata(LoadedDxf(doc, False, header_vars=vars_), Path("x.dxf")).summary
    assert s["created_at"] is None and s["updated_at"] is None


def test_in_memory_document_uses_its_own_header():
    doc = ezdxf.new("R2018")
    doc.header["$TDCREATE"] = juliandate(CREATED)
    doc.header["$INSUNITS"] = 5
    s = extract_metadata(LoadedDxf(doc, recovered=False), Path("x.dxf")).summary
    assert (s["created_at"], s["units"]) == ("2021-03-04T05:06:07+00:00", "cm")
