"""Drawing fidelity, one bug class per test, each drawing generated with ezdxf at test time.

An ``ok`` drawing must be complete: nothing the audit removes silently, nothing drawable removed,
header extents checked against what is drawn, text escapes decoded in every output, and no single
odd entity failing the whole file.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import ezdxf
import pymupdf
import pytest
from ezdxf.entities.mtext import MTextColumns

from converters.dxf_render import RenderOptions, render_dxf
from documents.dxf_document import open_dxf
from documents.dxf_text import NBSP, decode_mtext, decode_single_line
from extractors.dxf_metadata import extract_metadata

PNG_ONLY = RenderOptions(formats=("png",), png_dpi=50)


def ink(png: Path) -> float:
    """Share of the page's pixels that are not white."""
    pix = pymupdf.Pixmap(str(png))
    samples = pix.samples
    return sum(1 for value in samples if value < 245) / len(samples)


def load(path: Path):
    loaded = open_dxf(path)
    return loaded, extract_metadata(loaded, path)


def rendered_ink(loaded, tmp_path: Path) -> tuple[float, list[str]]:
    result = render_dxf(loaded.doc, tmp_path / "render", PNG_ONLY)
    return ink(result.layouts[0].files["png"]), result.warnings


def readfile_count(path: Path) -> int:
    """Graphical entities of every layout and block as ezdxf.readfile reads the file, no audit."""
    return sum(1 for block in ezdxf.readfile(path).blocks for _ in block)


def plain_audit_count(path: Path) -> int:
    """The same after ezdxf's own audit: what cadpipe used to keep."""
    doc = ezdxf.readfile(path)
    doc.audit()
    return sum(1 for block in doc.blocks for _ in block)


def spline_with_bad_knots(path: Path) -> Path:
    doc = ezdxf.new("R2010")
    spline = doc.modelspace().add_spline()
    spline.control_points = [(0, 0), (10, 20), (30, 5), (40, 20)]
    spline.dxf.degree = 3
    spline.knots = [0, 1, 2, 3, 4]  # a cubic with 4 control points needs 8
    doc.saveas(path)
    return path


def test_a_spline_the_audit_would_delete_is_repaired_kept_and_drawn(tmp_path):
    path = spline_with_bad_knots(tmp_path / "spline.dxf")
    assert plain_audit_count(path) == 0, "the case is one ezdxf's audit deletes"
    loaded, meta = load(path)
    s = meta.summary
    assert (s["entities_read"], s["entities_kept"], s["entities_removed"]) == (1, 1, 0)
    assert s["entity_count"] == readfile_count(path) == 1
    assert "repaired and kept 1 entity: 1 SPLINE (knots regenerated)" in meta.warnings
    drawn, warnings = rendered_ink(loaded, tmp_path)
    assert drawn > 0.001 and not any("nothing to draw" in w for w in warnings)


def test_a_dimension_without_its_geometry_block_is_kept_and_drawn_again(tmp_path):
    doc = ezdxf.new("R2010", setup=True)
    dimension = doc.modelspace().add_linear_dim(base=(0, 5), p1=(0, 0), p2=(100, 0)).render().dimension
    dimension.dxf.geometry = "*D99"  # the block its graphics live in is missing
    doc.saveas(tmp_path / "dim.dxf")
    assert plain_audit_count(tmp_path / "dim.dxf") < readfile_count(tmp_path / "dim.dxf")
    loaded, meta = load(tmp_path / "dim.dxf")
    kept = loaded.doc.modelspace().query("DIMENSION")
    assert len(kept) == 1 and kept[0].dxf.geometry in loaded.doc.blocks
    assert meta.summary["entities_removed"] == 0
    assert "repaired and kept 1 entity: 1 DIMENSION (geometry block regenerated)" in meta.warnings
    assert rendered_ink(loaded, tmp_path)[0] > 0.0005


def test_what_cannot_be_drawn_is_removed_with_its_type_count_and_reason(tmp_path):
    doc = ezdxf.new("R2010")
    msp = doc.modelspace()
    doc.blocks.new("PART").add_line((0, 0), (1, 1))
    insert = msp.add_blockref("PART", (0, 0))
    msp.add_line((0, 0), (5, 5))
    doc.saveas(tmp_path / "a.dxf")
    text = (tmp_path / "a.dxf").read_text()
    # The INSERT names a block that the file does not define.
    text = re.sub(rf"(INSERT\n  5\n{insert.dxf.handle}\n(?:.*\n)*?  2\n)PART\n", r"\1NO_SUCH_BLOCK\n", text, count=1)
    (tmp_path / "a.dxf").write_text(text)
    assert readfile_count(tmp_path / "a.dxf") == 3
    loaded, meta = load(tmp_path / "a.dxf")
    s = meta.summary
    assert (s["entities_read"], s["entities_kept"], s["entities_removed"]) == (3, 2, 1)
    assert "removed 1 entity that cannot be drawn: 1 INSERT (undefined block)" in meta.warnings
    assert rendered_ink(loaded, tmp_path)[0] > 0.0005  # the line is still there


def test_a_zero_z_scale_insert_is_drawn_and_measured(tmp_path):
    # 2D writers store Z scale 0; ezdxf divides by zero transforming a nested reference through it.
    doc = ezdxf.new("R2010")
    doc.blocks.new("HOLE").add_circle((0, 0), 5)
    doc.blocks.new("PLATE").add_blockref("HOLE", (0, 0), dxfattribs={"rotation": 120, "zscale": 3})
    doc.modelspace().add_blockref("PLATE", (10, 10), dxfattribs={"xscale": 2, "yscale": 2, "zscale": 3})
    doc.saveas(tmp_path / "z.dxf")
    text = (tmp_path / "z.dxf").read_text()
    (tmp_path / "z.dxf").write_text(text.replace(" 43\n3.0\n", " 43\n0.0\n"))  # ezdxf itself refuses 0
    assert ezdxf.readfile(tmp_path / "z.dxf").modelspace()[0].dxf.zscale == 0
    loaded, meta = load(tmp_path / "z.dxf")
    s = meta.summary
    assert (s["extents_min_x"], s["extents_max_x"]) == pytest.approx((0, 20))
    assert "repaired and kept 2 entities: 2 INSERT (zero Z scale drawn as 1)" in meta.warnings
    drawn, warnings = rendered_ink(loaded, tmp_path)
    assert drawn > 0.001 and not any("could not be drawn" in w for w in warnings)


def test_text_on_a_layer_missing_from_the_layer_table_is_drawn_black(tmp_path):
    # ezdxf resolves an undefined layer to white; its column MTEXT renderer then drew white on white.
    doc = ezdxf.new("R2018")
    mtext = doc.modelspace().add_mtext("Lorem ipsum dolor sit amet " * 40, dxfattribs={"layer": "UNDEFINED"})
    mtext.setup_columns(MTextColumns.new_static_columns(2, 20, 2, 30))
    assert "UNDEFINED" not in doc.layers
    doc.saveas(tmp_path / "columns.dxf")
    loaded, _ = load(tmp_path / "columns.dxf")
    assert rendered_ink(loaded, tmp_path)[0] > 0.005


def test_a_hatch_pattern_without_definition_is_drawn_and_said(tmp_path):
    doc = ezdxf.new("R2010")
    hatch = doc.modelspace().add_hatch()
    hatch.paths.add_polyline_path([(0, 0), (100, 0), (100, 100), (0, 100)], is_closed=True)
    hatch.set_pattern_fill("NOT_IN_ANY_LIBRARY", scale=5)
    hatch.pattern.lines.clear()  # the file names a pattern but stores no lines
    doc.saveas(tmp_path / "h.dxf")
    loaded, _ = load(tmp_path / "h.dxf")
    drawn, warnings = rendered_ink(loaded, tmp_path)
    assert drawn > 0.01
    assert any("'NOT_IN_ANY_LIBRARY' drawn as ANSI31" in w for w in warnings), warnings


@pytest.mark.parametrize(
    ("stored", "plain"),
    [
        (r"\U+0420\U+0430\U+0437\U+043C\U+0435\U+0440", "Размер"),
        (r"Ma\U+00DF %%c10 %%d %%p0.1", "Maß Ø10 ° ±0.1"),
        ("%%176 %%177 %%%", "° ± %"),
        (r"Zeichnungsnr.\M+18140", "Zeichnungsnr." + bytes.fromhex("8140").decode("cp932")),
    ],
)
def test_text_escapes_are_decoded_in_the_texts_table(tmp_path, stored, plain):
    doc = ezdxf.new("R2000")  # R2000 and older keep non-ASCII text as \U+ escapes
    msp = doc.modelspace()
    msp.add_text(stored, dxfattribs={"insert": (0, 0)})
    block = doc.blocks.new("TB")
    block.add_attdef("TITLE", (0, 0))
    msp.add_blockref("TB", (0, 10)).add_attrib("TITLE", stored, (0, 10))
    doc.saveas(tmp_path / "t.dxf")
    assert stored.split()[0] in (tmp_path / "t.dxf").read_text(encoding="cp1252", errors="replace")
    _, meta = load(tmp_path / "t.dxf")
    texts = {row["dxftype"]: row["text"] for row in meta.texts}
    assert texts == {"TEXT": plain, "ATTRIB": plain}


def test_mtext_escapes_and_non_breaking_spaces_are_decoded(tmp_path):
    doc = ezdxf.new("R2018")
    doc.modelspace().add_mtext(r"M6\~x\~20 \U+00E4\Pzweite\~Zeile, a \\~ stays", dxfattribs={"width": 100})
    doc.saveas(tmp_path / "m.dxf")
    loaded, meta = load(tmp_path / "m.dxf")
    assert [row["text"] for row in meta.texts] == ["M6 x 20 ä\nzweite Zeile, a \\~ stays"]
    mtext = loaded.doc.modelspace().query("MTEXT")[0]
    assert mtext.text == "M6" + NBSP + "x" + NBSP + r"20 ä\Pzweite" + NBSP + r"Zeile, a \\~ stays"


def test_decoded_text_renders_as_if_typed_in_the_character_itself(tmp_path):
    pages = []
    for name, content in (("escaped", r"\U+0420\U+0430%%176"), ("typed", "Ра°")):
        doc = ezdxf.new("R2018")
        doc.modelspace().add_text(content, dxfattribs={"insert": (0, 0), "height": 5})
        doc.modelspace().add_line((0, -5), (60, -5))
        doc.saveas(tmp_path / f"{name}.dxf")
        result = render_dxf(open_dxf(tmp_path / f"{name}.dxf").doc, tmp_path / name, RenderOptions(formats=("svg",)))
        pages.append(result.layouts[0].files["svg"].read_text())
    assert pages[0] == pages[1]


def test_decoders_leave_formatting_codes_alone():
    assert decode_single_line("%%u underlined%%u 50%%%") == "%%u underlined%%u 50%%%"
    assert decode_mtext(r"{\fArial|b1;Bold}\PNext\S1/2;") == r"{\fArial|b1;Bold}\PNext\S1/2;"
    assert decode_mtext(r"a\\~b") == r"a\\~b"  # an escaped backslash, then a tilde


def entity_kept_only_as_tags(path: Path, *, with_entity_subclass: bool) -> Path:
    """A drawing with an entity type ezdxf does not model (a SECTIONOBJECT, as AutoCAD writes one)."""
    doc = ezdxf.new("R2018")
    msp = doc.modelspace()
    msp.add_line((0, 0), (10, 10))
    stream = io.StringIO()
    doc.write(stream)
    text = stream.getvalue()
    common = "100\nAcDbEntity\n  8\nSECTION\n" if with_entity_subclass else ""
    tags = f"  0\nSECTIONOBJECT\n  5\nABC1\n330\n{msp.layout_key}\n{common}100\nAcDbSection\n 90\n1\n  1\nSection\n"
    end = text.index("  0\nENDSEC", text.index("ENTITIES"))
    path.write_text(text[:end] + tags + text[end:])
    return path


@pytest.mark.parametrize("with_entity_subclass", [True, False])
def test_an_entity_type_ezdxf_keeps_as_tags_never_fails_the_drawing(tmp_path, with_entity_subclass):
    path = entity_kept_only_as_tags(tmp_path / "section.dxf", with_entity_subclass=with_entity_subclass)
    loaded, meta = load(path)  # raised DXFAttributeError on .dxf.get("layer") before
    s = meta.summary
    assert s["entities_kept"] + s["entities_removed"] == s["entities_read"] == readfile_count(path)
    if with_entity_subclass:
        assert s["entity_count"] == 2
        layers = {row["name"]: row["entity_count"] for row in meta.layers}
        assert layers["SECTION"] == 1, "the layer is read from the entity's tags"
    else:  # ezdxf's audit removes it as "not a graphical entity": said, with its type
        assert (
            "removed 1 entity that cannot be drawn: 1 SECTIONOBJECT (removed invalid graphic entity)" in meta.warnings
        )
    result = render_dxf(loaded.doc, tmp_path / "render", PNG_ONLY)
    if with_entity_subclass:
        assert any("1 SECTIONOBJECT (a type ezdxf does not model" in w for w in result.warnings), result.warnings
