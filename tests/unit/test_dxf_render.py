"""Rendering DXF layouts to SVG/PDF/PNG: generated drawings with known content (real corpus files:
tests/e2e/test_dxf_render_corpus.py)."""

from __future__ import annotations

import functools
from pathlib import Path
from xml.etree import ElementTree as ET

import ezdxf
import pymupdf
import pytest
from ezdxf.colors import RGB

from converters.dxf_render import (
    PageSpec,
    RenderedLayout,
    RenderOptions,
    RenderResult,
    darken_for_white_paper,
    layout_slug,
    render_dxf,
    svg_to_pdf,
    svg_to_png,
)
from converters.placement import THUMBNAIL_PX
from documents.errors import InputError, TransientError

SVG_NS = "{http://www.w3.org/2000/svg}"
A3_LANDSCAPE_PT = (420 / 25.4 * 72, 297 / 25.4 * 72)
MM = 72 / 25.4  # points per mm


def pdf_page_size(path: Path) -> tuple[float, float]:
    with pymupdf.open(path) as pdf:
        assert pdf.page_count == 1
        return pdf[0].rect.width, pdf[0].rect.height


def png_dpi(path: Path) -> tuple[float, float]:
    """The resolution the PNG's pHYs chunk states (read by Pillow: MuPDF reads below 72 dpi as 72)."""
    from PIL import Image

    with Image.open(path) as image:
        return image.info["dpi"]


def png_pixmap(path: Path, *, as_rgb: bool = True) -> pymupdf.Pixmap:
    """The PNG's pixels, as RGB (a black-and-white page is written as a grey PNG)."""
    pix = pymupdf.Pixmap(path.read_bytes())
    return pymupdf.Pixmap(pymupdf.csRGB, pix) if as_rgb and pix.n == 1 else pix


def all_white(pix: pymupdf.Pixmap) -> bool:
    # (Pixmap.is_unicolor takes seconds on a blank A3 page)
    samples = pix.samples
    return samples == b"\xff" * len(samples)


def stroked_paths(svg_path: Path) -> list[ET.Element]:
    root = ET.parse(svg_path).getroot()
    return [p for p in root.iter(f"{SVG_NS}path") if p.get("stroke") not in (None, "none")]


def drawn_box(pdf_path: Path) -> pymupdf.Rect:
    """Union of every stroked vector path on the PDF page (the white page background is fill-only)."""
    with pymupdf.open(pdf_path) as pdf:
        rects = [d["rect"] for d in pdf[0].get_drawings() if d.get("color") is not None]
    assert rects, "no stroked paths in the PDF"
    return functools.reduce(lambda a, b: a | b, rects)


def assert_valid_outputs(layout: RenderedLayout, page_pt: tuple[float, float] = A3_LANDSCAPE_PT) -> None:
    ET.parse(layout.files["svg"])  # well-formed XML
    assert pdf_page_size(layout.files["pdf"]) == pytest.approx(page_pt, abs=0.1)
    pix = png_pixmap(layout.files["png"])
    assert (pix.width, pix.height) == layout.png_size
    assert pix.width * pix.height <= RenderOptions().png_max_pixels
    thumbnail = png_pixmap(layout.files["thumbnail"])  # the same page, small
    assert max(thumbnail.width, thumbnail.height) == THUMBNAIL_PX
    assert thumbnail.width / thumbnail.height == pytest.approx(pix.width / pix.height, rel=0.02)


def assert_no_temp_files(out_dir: Path) -> None:
    assert [p.name for p in out_dir.iterdir() if p.name.startswith(".")] == []


@pytest.fixture
def drawing() -> ezdxf.document.Drawing:
    """Modelspace: a 200 x 50 frame, two crossing lines, a circle, a text. One paperspace layout with
    a line, one with nothing (besides the main viewport ezdxf gives every layout)."""
    doc = ezdxf.new(setup=True)
    msp = doc.modelspace()
    msp.add_lwpolyline([(0, 0), (200, 0), (200, 50), (0, 50)], close=True)
    msp.add_line((0, 0), (200, 50))
    msp.add_line((0, 50), (200, 0))
    msp.add_circle((100, 25), radius=20)
    msp.add_text("cadpipe", height=5).set_placement((5, 5))
    sheet = doc.layouts.new("Sheet A (1)")
    sheet.add_line((10, 10), (100, 60))
    doc.layouts.new("Nothing here")
    return doc


def test_generated_drawing_renders_model_and_non_empty_layouts(drawing, tmp_path):
    result = render_dxf(drawing, tmp_path)

    assert isinstance(result, RenderResult)
    assert [(r.layout, r.stem, r.empty) for r in result.layouts] == [
        ("Model", "model", False),
        ("Sheet A (1)", "layout-sheet-a-1", False),
    ]
    assert result.warnings == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{stem}.{ext}" for stem in ("model", "layout-sheet-a-1") for ext in ("svg", "pdf", "png", "thumb.png")
    )
    for rendered in result.layouts:
        assert set(rendered.files) == {"svg", "pdf", "png", "thumbnail"}
        assert all(path.parent == tmp_path for path in rendered.files.values())
        assert_valid_outputs(rendered)
        assert rendered.png_dpi == 150
        assert rendered.png_size == pytest.approx((420 / 25.4 * 150, 297 / 25.4 * 150), abs=1)
    # frame, 2 lines and circle as strokes; the text is filled glyph outlines
    assert len(stroked_paths(result.layouts[0].files["svg"])) >= 4
    assert len(stroked_paths(result.layouts[1].files["svg"])) == 1
    assert_no_temp_files(tmp_path)


def test_drawing_is_fitted_inside_the_margins(drawing, tmp_path):
    # The 200 x 50 frame is wider than the page proportions: it must span margin to margin.
    options = RenderOptions(page=PageSpec(420, 297, margin_mm=20), formats=("pdf",))
    model = render_dxf(drawing, tmp_path, options).layouts[0]

    box = drawn_box(model.files["pdf"])
    half_stroke = 1.0  # pt, lines are 0.25 mm wide
    assert box.x0 == pytest.approx(20 * MM, abs=half_stroke)
    assert box.x1 == pytest.approx(400 * MM, abs=half_stroke)
    height = 380 * 50 / 200  # frame scaled to 380 mm wide
    assert box.height == pytest.approx(height * MM, abs=2 * half_stroke)
    assert (box.y0 + box.y1) / 2 == pytest.approx(297 / 2 * MM, abs=half_stroke)  # centred


def test_strokes_are_drawn_as_lines_not_filled_shapes(drawing, tmp_path):
    # MuPDF ignores CSS classes: with ezdxf's stock SVG the circle came out as a black disc.
    model = render_dxf(drawing, tmp_path, RenderOptions(formats=("png",), png_dpi=50)).layouts[0]
    pix = png_pixmap(model.files["png"])
    scale = 50 / 25.4  # px per mm
    # frame fitted to 400 mm wide => 2 mm per drawing unit; circle centre at (100, 25) of the frame
    cx, cy = 10 + 100 * 2, 297 / 2
    inside_circle = (round((cx + 10) * scale), round((cy - 10) * scale))  # between the crossing lines
    assert pix.pixel(*inside_circle) == (255, 255, 255)
    assert not all_white(pix)


def test_colours_are_readable_on_white(tmp_path):
    doc = ezdxf.new()
    msp = doc.modelspace()
    msp.add_line((0, 0), (10, 0), dxfattribs={"color": 7})  # ACI 7: white on dark screens
    msp.add_line((0, 1), (10, 1)).rgb = (255, 255, 255)
    msp.add_line((0, 2), (10, 2), dxfattribs={"color": 1})  # red stays red
    msp.add_line((0, 3), (10, 3), dxfattribs={"color": 5})  # blue stays blue
    msp.add_line((0, 4), (10, 4), dxfattribs={"color": 2})  # yellow: darkened
    msp.add_line((0, 5), (10, 5), dxfattribs={"color": 4})  # cyan: darkened
    solid = msp.add_solid([(0, 6), (10, 6), (0, 7), (10, 7)])
    solid.rgb = (255, 255, 255)  # a white fill masks what is below it: keep it white

    model = render_dxf(doc, tmp_path, RenderOptions(formats=("svg",))).layouts[0]

    root = ET.parse(model.files["svg"]).getroot()
    strokes = [p.get("stroke") for p in root.iter(f"{SVG_NS}path") if p.get("fill") == "none"]
    fills = [p.get("fill") for p in root.iter(f"{SVG_NS}path") if p.get("fill") != "none"]
    assert strokes[:4] == ["#000000", "#000000", "#ff0000", "#0000ff"]
    yellow, cyan = (RGB.from_hex(c) for c in strokes[4:])
    assert yellow.r == yellow.g > 100 and yellow.b == 0 and yellow.luminance <= 0.6
    assert cyan.r == 0 and cyan.g == cyan.b > 100 and cyan.luminance <= 0.6
    assert fills == ["#ffffff"]
    background = root.find(f"{SVG_NS}rect")
    assert background is not None and background.get("fill") == "#ffffff"


@pytest.mark.parametrize(
    "color, expected",
    [
        ("#ffffff", "#000000"),
        ("#f8f8f8", "#000000"),  # near-white grey
        ("#ff0000", "#ff0000"),
        ("#000080", "#000080"),
        ("#ffff00", "#a2a200"),  # same hue, darker
        ("#c0c0c0", "#989898"),  # light grey stays grey
    ],
)
def test_darken_for_white_paper(color, expected):
    assert darken_for_white_paper(color) == expected


def test_empty_drawing_gives_blank_pages_and_a_warning(tmp_path):
    doc = ezdxf.new()  # ezdxf alone: "empty bounding box"

    result = render_dxf(doc, tmp_path)

    [model] = result.layouts
    assert (model.layout, model.stem, model.empty) == ("Model", "model", True)
    assert len(result.warnings) == 1 and "'Model'" in result.warnings[0] and "blank" in result.warnings[0]
    assert_valid_outputs(model)
    assert all_white(png_pixmap(model.files["png"]))
    assert stroked_paths(model.files["svg"]) == []


def test_paperspace_layout_with_nothing_visible_is_rendered_blank(tmp_path):
    doc = ezdxf.new()
    sheet = doc.layouts.new("Hidden")
    sheet.add_line((0, 0), (10, 10), dxfattribs={"layer": "OFF"})
    doc.layers.add("OFF").off()

    result = render_dxf(doc, tmp_path, RenderOptions(formats=("svg",)))

    assert [(r.stem, r.empty) for r in result.layouts] == [("model", True), ("layout-hidden", True)]
    assert len(result.warnings) == 2 and "'Hidden'" in result.warnings[1]


@pytest.mark.parametrize("formats", [("svg",), ("pdf",), ("png",), ("pdf", "png")])
def test_only_requested_formats_are_written(drawing, tmp_path, formats):
    result = render_dxf(drawing, tmp_path, RenderOptions(formats=formats))

    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(f"{r.stem}.{ext}" for r in result.layouts for ext in (*formats, "thumb.png"))
    for rendered in result.layouts:
        assert set(rendered.files) == {*formats, "thumbnail"}
        assert (rendered.png_size is None) == ("png" not in formats)
        assert (rendered.png_dpi is None) == ("png" not in formats)


def test_render_overwrites_previous_output(drawing, tmp_path):
    render_dxf(drawing, tmp_path, RenderOptions(formats=("png",), png_dpi=40))
    result = render_dxf(drawing, tmp_path, RenderOptions(formats=("png",), png_dpi=60))

    png = result.layouts[0].files["png"]
    assert png_pixmap(png).width == pytest.approx(420 / 25.4 * 60, abs=1)
    assert png_dpi(png) == pytest.approx((60, 60), abs=0.01), "its pHYs says 60 dpi, so it prints at paper size"
    assert_no_temp_files(tmp_path)


def test_png_pixel_cap_lowers_the_dpi(drawing, tmp_path):
    cap = 500_000
    options = RenderOptions(formats=("png",), png_dpi=300, png_max_pixels=cap)

    for rendered in render_dxf(drawing, tmp_path, options).layouts:
        width, height = rendered.png_size
        assert width * height <= cap
        assert png_pixmap(rendered.files["png"]).width == width
        assert png_dpi(rendered.files["png"]) == pytest.approx((round(rendered.png_dpi),) * 2, abs=0.01)
        assert rendered.png_dpi < 300
        # the reported dpi is the one used: page width in inches * dpi = pixel width
        assert width == pytest.approx(420 / 25.4 * rendered.png_dpi, abs=1)
        assert width * height > 0.99 * cap  # lowered no further than needed


@pytest.mark.parametrize("cap", [1, 10_000, 999_999, 1_000_000, 1_234_567])
def test_svg_to_png_never_exceeds_the_cap(drawing, tmp_path, cap):
    svg = render_dxf(drawing, tmp_path, RenderOptions(formats=("svg",))).layouts[0].files["svg"].read_text()

    data, (width, height), dpi = svg_to_png(svg, 600, cap)

    assert width * height <= cap
    pix = pymupdf.Pixmap(data)
    assert (pix.width, pix.height) == (width, height)
    assert 0 < dpi < 600


def test_svg_to_png_keeps_the_dpi_under_the_cap():
    svg = '<svg xmlns="http://www.w3.org/2000/svg" width="2in" height="1in"></svg>'
    data, size, dpi = svg_to_png(svg, 100, 1_000_000)
    assert size == (200, 100)
    assert dpi == pytest.approx(100)


def test_mupdf_turns_a_drawn_svg_into_a_non_white_png():
    line = '<path d="M 10 50 L 190 50" stroke="#000000" stroke-width="4" fill="none"/>'
    blank = '<svg xmlns="http://www.w3.org/2000/svg" width="2in" height="1in" viewBox="0 0 200 100">{}</svg>'

    drawn, _, _ = svg_to_png(blank.format(line), 72, 1_000_000)
    empty, _, _ = svg_to_png(blank.format(""), 72, 1_000_000)

    assert not all_white(pymupdf.Pixmap(drawn))
    assert all_white(pymupdf.Pixmap(empty))


def test_svg_to_pdf_page_size_is_the_svg_size():
    pdf = svg_to_pdf('<svg xmlns="http://www.w3.org/2000/svg" width="210mm" height="297mm"></svg>')
    with pymupdf.open(stream=pdf, filetype="pdf") as doc:
        assert (doc[0].rect.width, doc[0].rect.height) == pytest.approx((210 * MM, 297 * MM), abs=0.1)


@pytest.mark.parametrize("bad", ["", "not an svg at all", '<svg xmlns="http://www.w3.org/2000/svg"'])
def test_svg_converters_refuse_what_is_not_svg(bad):
    with pytest.raises(InputError, match="SVG"):
        svg_to_pdf(bad)
    with pytest.raises(InputError, match="SVG"):
        svg_to_png(bad, 72, 1000)


def test_layout_names_become_unique_slugs(tmp_path):
    doc = ezdxf.new()
    for name in ("Sheet 1", "sheet-1", "SHEET__1", "a b", "a-b-2", "図面", "  "):
        doc.layouts.new(name).add_line((0, 0), (1, 1))

    result = render_dxf(doc, tmp_path, RenderOptions(formats=("svg",)))

    assert [(r.layout, r.stem) for r in result.layouts] == [
        ("Model", "model"),
        ("Sheet 1", "layout-sheet-1"),
        ("sheet-1", "layout-sheet-1-2"),
        ("SHEET__1", "layout-sheet-1-3"),
        ("a b", "layout-a-b"),
        ("a-b-2", "layout-a-b-2"),
        ("図面", "layout-unnamed"),
        ("  ", "layout-unnamed-2"),
    ]
    written = sorted(f"{r.stem}.{ext}" for r in result.layouts for ext in ("svg", "thumb.png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == written


def test_layout_names_with_a_later_clash_of_suffixes(tmp_path):
    doc = ezdxf.new()
    for name in ("a b", "a_b", "A-B-2"):  # the third slug is already taken by the second layout
        doc.layouts.new(name).add_line((0, 0), (1, 1))

    stems = [r.stem for r in render_dxf(doc, tmp_path, RenderOptions(formats=("svg",))).layouts]

    assert stems == ["model", "layout-a-b", "layout-a-b-2", "layout-a-b-2-2"]


@pytest.mark.parametrize(
    "name, slug",
    [("Layout1", "layout1"), ("Plan: Level 2 / North", "plan-level-2-north"), ("--x--", "x"), ("Ü", "unnamed")],
)
def test_layout_slug(name, slug):
    assert layout_slug(name) == slug


def test_broken_entities_are_left_out_and_named(tmp_path):
    doc = ezdxf.new()
    msp = doc.modelspace()
    msp.add_blockref("NO_SUCH_BLOCK", (0, 0), dxfattribs={"color": 1})  # red INSERT, raises inside
    spline = msp.add_spline()
    spline.control_points = [(0, 0), (1, 1), (2, 0), (3, 1)]
    spline.knots = [0, 0, 1]  # a cubic with 4 control points needs 8 knots
    msp.add_line((0, 0), (10, 10), dxfattribs={"color": 0})  # BYBLOCK: red only inside that INSERT

    result = render_dxf(doc, tmp_path, RenderOptions(formats=("svg", "png")))

    [model] = result.layouts
    assert not model.empty
    [warning] = result.warnings
    assert "2 entities" in warning and "INSERT" in warning and "SPLINE" in warning
    assert "NO_SUCH_BLOCK" in warning and "knot" in warning
    # the failed INSERT's block colour must not leak onto the entities drawn after it
    assert [p.get("stroke") for p in stroked_paths(model.files["svg"])] == ["#000000"]
    assert not all_white(png_pixmap(model.files["png"]))


def test_page_spec_named_sizes():
    assert PageSpec.named() == PageSpec(420, 297, 10)
    assert PageSpec.named("A4", "portrait", margin_mm=5) == PageSpec(210, 297, 5)
    assert PageSpec.named("a0") == PageSpec(1189, 841, 10)
    assert PageSpec.named("Letter") == PageSpec(279.4, 215.9, 10)
    assert PageSpec.named("legal", "portrait") == PageSpec(215.9, 355.6, 10)
    assert PageSpec.named("tabloid") == PageSpec(431.8, 279.4, 10)


@pytest.mark.parametrize("size, orientation", [("A5", "landscape"), ("B4", "portrait"), ("A3", "sideways")])
def test_page_spec_named_refuses_unknown(size, orientation):
    with pytest.raises(ValueError):
        PageSpec.named(size, orientation)


@pytest.mark.parametrize("width, height, margin", [(0, 297, 10), (420, -1, 10), (100, 100, 50), (100, 100, -1)])
def test_page_spec_refuses_impossible_pages(width, height, margin):
    with pytest.raises(ValueError):
        PageSpec(width, height, margin)


@pytest.mark.parametrize(
    "kwargs", [{"formats": ()}, {"formats": ("svg", "jpg")}, {"png_dpi": 0}, {"png_max_pixels": -5}]
)
def test_render_options_refuse_invalid(kwargs):
    with pytest.raises(ValueError):
        RenderOptions(**kwargs)


def test_other_page_size_reaches_pdf_and_png(drawing, tmp_path):
    options = RenderOptions(page=PageSpec.named("A4", "portrait"), png_dpi=72)

    for rendered in render_dxf(drawing, tmp_path, options).layouts:
        assert pdf_page_size(rendered.files["pdf"]) == pytest.approx((210 * MM, 297 * MM), abs=0.1)
        assert rendered.png_size == pytest.approx((210 * MM, 297 * MM), abs=1)  # 72 dpi: 1 px per pt


def test_output_folder_that_cannot_be_created_is_transient(drawing, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(TransientError, match="file"):
        render_dxf(drawing, blocker / "out")


@pytest.mark.parametrize(("color", "channels"), [(7, 1), (8, 1), (9, 1), (251, 1), (253, 1), (1, 3), (2, 3)])
def test_a_black_and_white_page_is_a_grey_png_with_the_same_pixels(tmp_path, color, channels):
    doc = ezdxf.new("R2018")
    doc.modelspace().add_circle((0, 0), 10, dxfattribs={"color": color})
    doc.modelspace().add_text("A3", dxfattribs={"height": 2, "color": color})
    result = render_dxf(doc, tmp_path, RenderOptions(formats=("svg", "png"), png_dpi=60))
    png = png_pixmap(result.layouts[0].files["png"], as_rgb=False)
    assert png.n == channels
    with pymupdf.open(stream=result.layouts[0].files["svg"].read_bytes(), filetype="svg") as svg:
        zoom = result.layouts[0].png_dpi / 72
        reference = svg[0].get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), alpha=False)
    as_rgb = pymupdf.Pixmap(pymupdf.csRGB, png) if png.n == 1 else png
    assert as_rgb.samples == reference.samples, "grey or colour, the PNG holds exactly what MuPDF drew"


def test_the_white_paper_is_in_the_svg_but_mupdf_does_not_paint_it_again(tmp_path):
    doc = ezdxf.new("R2018")
    msp = doc.modelspace()
    msp.add_circle((0, 0), 10, dxfattribs={"color": 1})
    msp.add_solid([(0, 0), (5, 0), (0, 5)], dxfattribs={"color": 5})
    msp.add_text("paper", dxfattribs={"height": 2})
    result = render_dxf(doc, tmp_path, RenderOptions(formats=("svg", "pdf", "png"), png_dpi=60))
    files = result.layouts[0].files
    root = ET.parse(files["svg"]).getroot()
    paper = root.find(f"{SVG_NS}rect")
    assert paper is not None and paper.get("fill") == "#ffffff"
    assert (paper.get("width"), paper.get("height")) == tuple(root.get("viewBox").split()[2:])
    with pymupdf.open(files["pdf"]) as pdf, pymupdf.open(files["svg"]) as svg:
        page_area = pdf[0].rect.width * pdf[0].rect.height
        fills = [
            d for d in pdf[0].get_drawings() if d.get("fill") and d["rect"].width * d["rect"].height > page_area / 2
        ]
        assert fills == [], "the PDF page is paper already: no page-sized white fill"
        zoom = result.layouts[0].png_dpi / 72
        on_paper = svg[0].get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), alpha=False)
        assert pdf[0].get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), alpha=False).samples == on_paper.samples
    assert png_pixmap(files["png"]).samples == on_paper.samples


def test_the_default_plot_style_table_is_built_once_and_is_ezdxfs(tmp_path, monkeypatch):
    from ezdxf.addons.drawing.properties import RenderContext

    from converters.dxf_render import _RenderContext

    ours = _RenderContext._load_plot_style_table("")
    assert _RenderContext._load_plot_style_table(str(tmp_path / "absent.ctb")) is ours  # built once
    theirs = RenderContext._load_plot_style_table("")
    for aci in range(1, 256):
        assert (ours[aci].color, ours[aci].lineweight) == (theirs[aci].color, theirs[aci].lineweight)
    assert ours.forced_colors == theirs.forced_colors
    # A table file that is there is still loaded by ezdxf, each time.
    (tmp_path / "mine.ctb").write_bytes(b"")
    seen = []
    monkeypatch.setattr(RenderContext, "_load_plot_style_table", staticmethod(lambda name: seen.append(name) or theirs))
    assert _RenderContext._load_plot_style_table(str(tmp_path / "mine.ctb")) is theirs
    assert seen == [str(tmp_path / "mine.ctb")]


def test_a_pattern_hatch_draws_the_same_svg_on_every_run(tmp_path):
    import random

    doc = ezdxf.new("R2018")
    hatch = doc.modelspace().add_hatch(color=1)
    hatch.set_pattern_fill("ANSI31", scale=0.5)
    hatch.paths.add_polyline_path([(0, 0), (10, 0), (10, 10), (0, 10)], is_closed=True)
    svgs = []
    for run in range(3):
        random.seed(run)  # whatever the caller's random state
        result = render_dxf(doc, tmp_path / str(run), RenderOptions(formats=("svg",)))
        svgs.append(result.layouts[0].files["svg"].read_bytes())
    assert svgs[0] == svgs[1] == svgs[2]
    assert len(stroked_paths(result.layouts[0].files["svg"])) >= 1
    random.seed(7)
    expected = random.random()
    random.seed(7)
    render_dxf(doc, tmp_path / "again", RenderOptions(formats=("svg",)))
    assert random.random() == expected, "the caller's random sequence goes on where it was"
