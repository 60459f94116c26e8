"""Render a loaded DXF document to SVG, PDF and PNG, one page per layout.

Each layout is drawn ONCE, by ezdxf's drawing add-on into an SVG fitted to the page; the PDF and
the PNG are derived from that SVG by MuPDF. (ezdxf's own PyMuPDF backend re-renders the drawing
per format and is an order of magnitude slower on text-heavy drawings.) The SVG styles every path
with attributes rather than ezdxf's CSS classes, which MuPDF does not read. Text is drawn as glyph
outlines, so no fonts are needed to view the output.

What is rendered:

- the modelspace, always;
- every paperspace layout that holds anything besides its main viewport, in tab order.
  Paperspace layouts with nothing on them are skipped and do not appear in the result.
  Viewports are drawn as ezdxf does: one whose stored status is 0 ("off") shows nothing.

Output names in ``out_dir``:

- ``model.<ext>`` for the modelspace (and ``model.thumb.png``, a thumbnail of the same page);
- ``layout-<slug>.<ext>`` for a paperspace layout, where ``<slug>`` is the layout name in lower
  case with every run of characters outside ``[a-z0-9]`` replaced by ``-`` (and ``-`` trimmed at
  both ends; ``unnamed`` when nothing is left). When two layouts give the same slug, the later one
  in tab order gets ``-2``, then ``-3`` ...  e.g. ``Layout 1`` -> ``layout-layout-1.pdf``.

Every page is ``RenderOptions.page`` (default A3 landscape, 10 mm margins); the drawing is scaled
to fit inside the margins and centred. Colours are kept, on white paper, but made readable there:
ACI 7 and white strokes are drawn black, and strokes too light for white paper (yellow, cyan,
light grey ...) are darkened keeping their hue (``darken_for_white_paper``). Solid fills keep
their colour, because a white fill usually masks what lies below it.
The PNG is rendered at ``png_dpi`` unless that would exceed ``png_max_pixels``; then the
resolution is lowered until it fits, and ``RenderedLayout.png_dpi`` reports what was used.

A layout with nothing to draw (ezdxf: "empty bounding box") gives a blank page of the page size
in every format, ``RenderedLayout.empty=True`` and a warning, not an error; when the layout does
hold entities, the warning names what kept each from being drawn. An entity whose drawing raises
is left out and named in a warning; the rest of the layout is still drawn. Entities ezdxf skips
(types it cannot draw, such as ACIS solids and proxies, 3D text, text too small to see; invisible
ones aside) are counted per type and reason in a warning too.

Repairs made while drawing, each counted in a warning: a pattern HATCH whose file names a pattern
but stores no definition (ezdxf would draw nothing; CAD programs use their pattern library) is
drawn with ezdxf's definition of that name, or ANSI31 when it has none.

ACI 7 and other "foreground" colours resolve against white paper: the layout's background is set
white before drawing, so even text whose colour ezdxf resolves late (MTEXT inline codes,
columns) comes out black, not white on white.

Errors: ``InputError`` when ezdxf or MuPDF cannot render a layout of this document at all;
``TransientError`` when the output cannot be written; ``ValueError`` for invalid options.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy
import pymupdf
from ezdxf import options as ezdxf_options
from ezdxf.addons import acadctb
from ezdxf.addons.drawing import Frontend, RenderContext
from ezdxf.addons.drawing import layout as page_layout
from ezdxf.addons.drawing.config import BackgroundPolicy, ColorPolicy, Configuration, ImagePolicy
from ezdxf.addons.drawing.frontend import UniversalFrontend, _find_image_path  # the path ezdxf itself would open
from ezdxf.addons.drawing.pipeline import RenderPipeline2d
from ezdxf.addons.drawing.properties import (
    BackendProperties,
    Filling,
    LayerProperties,
    LayoutProperties,
    Properties,
)
from ezdxf.addons.drawing.recorder import (
    FilledPathsRecord,
    ImageRecord,
    PathRecord,
    Player,
    PointsRecord,
    SolidLinesRecord,
)
from ezdxf.addons.drawing.svg import SVGBackend, SVGRenderBackend
from ezdxf.colors import RGB
from ezdxf.document import Drawing
from ezdxf.entities import DXFGraphic, DXFTagStorage, Image
from ezdxf.filemanagement import find_support_file
from ezdxf.layouts import Layout, Paperspace
from ezdxf.math import BoundingBox2d
from ezdxf.tools import pattern as hatch_patterns
from ezdxf.tools.clipping_portal import ClippingPortal

from converters import svg_paths
from converters.clipping import FastClippingPortal
from converters.placement import Placement, page_pixmap, thumbnail_png
from converters.png_writer import COMPRESSIONS, png_bytes
from documents import atomic
from documents.errors import InputError, TransientError
from documents.file_access import may_read

FORMATS = ("svg", "pdf", "png")
THUMBNAIL = "thumbnail"  # the files key and output format of a layout's thumbnail (<stem>.thumb.png)

# ISO sizes and the US sizes of the brief, as (short side, long side) in mm.
_PAGE_SIZES_MM: dict[str, tuple[float, float]] = {
    "a0": (841.0, 1189.0),
    "a1": (594.0, 841.0),
    "a2": (420.0, 594.0),
    "a3": (297.0, 420.0),
    "a4": (210.0, 297.0),
    "letter": (215.9, 279.4),
    "legal": (215.9, 355.6),
    "tabloid": (279.4, 431.8),
}

# ezdxf's perceived luminance (0 black .. 1 white). Strokes lighter than _MAX_LUMINANCE fade on
# white paper (yellow is 0.94, cyan 0.84, green 0.77, red 0.55): they are darkened to it, keeping
# their hue. White and near-white greys become black: they are the "foreground" of dark screens.
_MAX_LUMINANCE = 0.6
_WHITE_LUMINANCE = 0.95
_GREY_SPREAD = 16  # max - min channel value at or below which a colour counts as grey
# Entity kinds whose colour is an area fill; these keep their colour (see module docstring).
_AREA_FILLS = frozenset({"SOLID", "TRACE", "WIPEOUT"})
_MAX_FAILURES_NAMED = 5
_FALLBACK_PATTERN = "ANSI31"
_PAPER = "#ffffff"


@dataclass(frozen=True)
class PageSpec:
    """Output page in millimetres; the drawing is fitted inside the margins."""

    width_mm: float = 420.0
    height_mm: float = 297.0
    margin_mm: float = 10.0

    def __post_init__(self) -> None:
        if not (self.width_mm > 0 and self.height_mm > 0):
            raise ValueError(f"page size must be positive, got {self.width_mm} x {self.height_mm} mm")
        if not 0 <= 2 * self.margin_mm < min(self.width_mm, self.height_mm):
            raise ValueError(
                f"margin {self.margin_mm} mm leaves no room on a {self.width_mm} x {self.height_mm} mm page"
            )

    @classmethod
    def named(cls, size: str = "A3", orientation: str = "landscape", margin_mm: float = 10.0) -> PageSpec:
        """A standard page: A0-A4, letter, legal or tabloid, in landscape or portrait."""
        try:
            short, long = _PAGE_SIZES_MM[size.strip().lower()]
        except KeyError:
            raise ValueError(f"unknown page size {size!r}; expected one of {', '.join(_PAGE_SIZES_MM)}") from None
        match orientation.strip().lower():
            case "landscape":
                return cls(long, short, margin_mm)
            case "portrait":
                return cls(short, long, margin_mm)
        raise ValueError(f"unknown page orientation {orientation!r}; expected 'landscape' or 'portrait'")

    def to_ezdxf(self) -> page_layout.Page:
        return page_layout.Page(
            self.width_mm, self.height_mm, page_layout.Units.mm, page_layout.Margins.all(self.margin_mm)
        )


@dataclass(frozen=True)
class RenderOptions:
    page: PageSpec = PageSpec()
    formats: tuple[str, ...] = FORMATS
    png_dpi: int = 150
    png_max_pixels: int = 16_000_000
    png_compression: str = "fast"  # converters/png_writer.py: "fast" or "small", the same pixels

    def __post_init__(self) -> None:
        unknown = [f for f in self.formats if f not in FORMATS]
        if unknown or not self.formats:
            raise ValueError(f"formats must be a non-empty subset of {FORMATS}, got {self.formats!r}")
        if self.png_dpi <= 0 or self.png_max_pixels <= 0:
            raise ValueError(f"png_dpi and png_max_pixels must be positive, got {self.png_dpi}, {self.png_max_pixels}")
        if self.png_compression not in COMPRESSIONS:
            raise ValueError(f"png_compression must be one of {COMPRESSIONS}, got {self.png_compression!r}")


@dataclass
class RenderedLayout:
    layout: str  # the layout name as in the DXF ("Model" for the modelspace)
    stem: str  # file name without extension, see module docstring
    empty: bool  # nothing to draw: the files hold a blank page
    files: dict[str, Path]  # format -> written file: the requested formats and THUMBNAIL
    png_size: tuple[int, int] | None  # (width, height) in pixels when a PNG was written
    png_dpi: float | None  # resolution actually used for the PNG (lowered by the pixel cap)
    placement: Placement | None = None  # where the layout's coordinates are on the page (None: empty)


@dataclass
class RenderResult:
    layouts: list[RenderedLayout]
    warnings: list[str] = field(default_factory=list)


def render_dxf(doc: Drawing, out_dir: Path, options: RenderOptions = RenderOptions()) -> RenderResult:
    """Write the requested formats of the modelspace and each non-empty paperspace layout."""
    source = doc.filename or "<unsaved drawing>"
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TransientError(f"{source}: cannot create output folder {out_dir}: {exc}") from exc

    result = RenderResult(layouts=[])
    reported: set[str] = set()  # handles already named: a viewport shows modelspace entities again
    for layout, stem in _layouts_to_render(doc):
        where = f"{source}: layout {layout.name!r}"
        drawn = _render_svg(doc, layout, options.page, where, reported)
        result.warnings += drawn.notes.warnings(where, drawn.empty, _entity_total(layout))
        rendered = _write_formats(drawn, layout.name, stem, out_dir, options, where)
        rendered.placement = drawn.placement
        result.layouts.append(rendered)
    return result


@dataclass
class _DrawNotes:
    """What drawing one layout left out or repaired, for its warnings."""

    failures: list[str] = field(default_factory=list)  # "LINE(#2A) (ValueError: ...)"
    skipped: dict[str, int] = field(default_factory=dict)  # "3DSOLID (unsupported)" -> count
    patterns: dict[str, int] = field(default_factory=dict)  # "'NAME' drawn as ANSI31" -> count
    reported: set[str] = field(default_factory=set)  # handles named by an earlier layout

    def warnings(self, where: str, empty: bool, entities: int) -> list[str]:
        sentences = []
        if empty and entities:
            what = "its entity drew" if entities == 1 else f"its {entities} entities drew"
            sentences.append(f"{where} has nothing to draw ({what} nothing); wrote a blank page")
        elif empty:
            sentences.append(f"{where} has nothing to draw; wrote a blank page")
        if self.failures:
            named = "; ".join(self.failures[:_MAX_FAILURES_NAMED])
            if len(self.failures) > _MAX_FAILURES_NAMED:
                named += f"; and {len(self.failures) - _MAX_FAILURES_NAMED} more"
            sentences.append(f"{where}: {len(self.failures)} entities could not be drawn and are missing: {named}")
        if self.skipped:
            n = sum(self.skipped.values())
            sentences.append(f"{where}: {n} {'entity' if n == 1 else 'entities'} not drawn: {_counted(self.skipped)}")
        if self.patterns:
            sentences.append(
                f"{where}: {sum(self.patterns.values())} HATCH patterns without a definition in the file: "
                f"{_counted(self.patterns)}"
            )
        return sentences


def _counted(counts: dict[str, int]) -> str:
    items = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    text = ", ".join(f"{n} {what}" for what, n in items[:_MAX_FAILURES_NAMED])
    if len(items) > _MAX_FAILURES_NAMED:
        text += f" and {sum(n for _, n in items[_MAX_FAILURES_NAMED:])} more"
    return text


def _entity_total(layout: Layout) -> int:
    main = layout.main_viewport() if isinstance(layout, Paperspace) else None
    return sum(1 for entity in layout if entity is not main)


def svg_to_pdf(svg: str) -> bytes:
    """A one-page PDF of the SVG; the page size is the SVG's width and height."""
    with _open_svg(svg) as svg_doc:
        return _pdf_from(svg_doc)


def svg_to_png(svg: str, dpi: int, max_pixels: int) -> tuple[bytes, tuple[int, int], float]:
    """PNG of the SVG at ``dpi``, or lower so that width * height <= ``max_pixels``.

    Returns the PNG, its (width, height) in pixels and the resolution used.
    """
    with _open_svg(svg) as svg_doc:
        return _png_from(svg_doc, dpi, max_pixels)


def layout_slug(name: str) -> str:
    """File-name-safe form of a layout name (see the module docstring)."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unnamed"


def _layouts_to_render(doc: Drawing) -> Iterator[tuple[Layout, str]]:
    yield doc.modelspace(), "model"
    used: set[str] = set()
    for name in doc.layouts.names_in_taborder():
        layout = doc.layouts.get(name)
        if not isinstance(layout, Paperspace) or not _has_content(layout):
            continue
        base = f"layout-{layout_slug(name)}"
        stem, n = base, 1
        while stem in used:
            n += 1
            stem = f"{base}-{n}"
        used.add(stem)
        yield layout, stem


def _has_content(layout: Paperspace) -> bool:
    # Every paperspace has a main viewport (the sheet itself); it alone draws nothing.
    main = layout.main_viewport()
    return any(entity is not main for entity in layout)


@dataclass
class _SvgPage:
    """One layout drawn as an SVG page."""

    svg: str
    empty: bool
    notes: _DrawNotes  # what was left out or repaired
    placement: Placement | None  # where the layout's coordinates are on the page
    grey: bool  # drawn in greys only: rasterised in grey
    paperless: str  # `svg` without its white paper rectangle: what MuPDF reads


def _render_svg(doc: Drawing, layout: Layout, page: PageSpec, where: str, reported: set[str] | None = None) -> _SvgPage:
    """The layout as an SVG page. Entities whose handle is in `reported` are not named again
    (and are added to it)."""
    config = Configuration(background_policy=BackgroundPolicy.WHITE, color_policy=ColorPolicy.COLOR)
    backend = _InlineStyleSVGBackend()
    notes = _DrawNotes(reported=reported if reported is not None else set())
    settings = page_layout.Settings(fit_page=True)
    try:
        # A fresh context per layout (cheap): nothing one layout leaves behind affects the next.
        context = _RenderContext(doc)
        context.layers = _LayersAsCADProgramsLoadThem(context.layers)
        frontend = _TolerantFrontend(context, backend, config, notes)
        frontend.push_property_override_function(_readable_on_white)
        paper = LayoutProperties.from_layout(layout)
        paper.set_colors(_PAPER)  # ACI 7 resolves to black on it, wherever ezdxf resolves it
        with _repeatable_random():
            frontend.draw_layout(layout, finalize=True, layout_properties=paper)
        render_box = _render_box(backend.player())
        empty = not render_box.has_data
        if empty:
            # Any box will do: there is nothing in it, and the page size is fixed.
            render_box = BoundingBox2d([(0, 0), (1, 1)])
        svg = backend.get_string(page.to_ezdxf(), settings=settings, render_box=render_box)
        placement = None if empty else _placement(backend, page, settings, render_box)
        grey = backend.page_backend is not None and backend.page_backend.grey_only
        paperless = _without_paper(svg, backend.page_backend)
    except MemoryError:
        raise
    except Exception as exc:
        raise InputError(f"{where}: ezdxf cannot render it: {exc!r}") from exc
    return _SvgPage(svg, empty, notes, placement, grey, paperless)


@contextlib.contextmanager
def _repeatable_random() -> Iterator[None]:
    """ezdxf shifts every hatch pattern by a random fraction of its line distance (ezdxf's
    render/hatching.py, so that pattern lines do not run exactly along a boundary): the same
    drawing gave another SVG, PDF and PNG on every run, and a revision diff saw pattern noise.
    The draw runs on a fixed seed; the caller's random state is restored after."""
    state = random.getstate()
    random.seed(0x5EED)
    try:
        yield
    finally:
        random.setstate(state)


def _without_paper(svg: str, page_backend: _InlineStyleRenderBackend | None) -> str:
    """`svg` without the white rectangle ezdxf lays under the drawing, for MuPDF. Its rasters start
    white (alpha=False) and a PDF page is white paper, so filling the whole page first changes no
    pixel and costs the time of a small drawing's raster again (15.7 ms instead of 6.3 on a page
    of 2379 x 1682). The written SVG keeps it: a browser shows an SVG on its own background.
    The rectangle is taken out only where it is ezdxf's opaque white one, right after <defs>."""
    if page_backend is None:
        return svg
    paper = page_backend.background
    if paper.get("fill", "").lower() not in ("#ffffff", "white") or float(paper.get("fill-opacity", "1")) != 1.0:
        return svg
    text = ET.tostring(paper, encoding="unicode")
    at = svg.find(text)
    if at < 0 or not svg[:at].endswith(("<defs />", "</defs>")):
        return svg
    return svg[:at] + svg[at + len(text) :]


def _render_box(player: Player) -> BoundingBox2d:
    """``player.bbox()``, the box of everything drawn, from one NumPy pass over all recorded
    vertices instead of a NumPy box per record and one more per record to extend the total (a
    third of the drawing of a page of 10,000 lines). The same vertices, so the same minima and
    maxima; with a non-finite vertex (ezdxf's per-record boxes skip some), a zero limit, or a
    record type not known here, ezdxf's own."""
    arrays = []
    for record in player.records:
        if isinstance(record, PointsRecord):
            vertices = record.points.np_vertices()
        elif isinstance(record, SolidLinesRecord):
            vertices = record.lines.np_vertices()
        elif isinstance(record, PathRecord):
            vertices = record.path.np_vertices()
        elif isinstance(record, ImageRecord):
            vertices = record.boundary.np_vertices()
        elif isinstance(record, FilledPathsRecord):
            arrays += [path.np_vertices() for path in record.paths if len(path) and len(path.np_vertices())]
            continue
        else:
            return player.bbox()
        if len(vertices):
            arrays.append(vertices)
    if not arrays:
        return BoundingBox2d()
    everything = numpy.concatenate(arrays)
    low, high = everything.min(axis=0), everything.max(axis=0)
    if not numpy.isfinite(everything).all() or not (low.all() and high.all()):
        return player.bbox()  # a zero: which of 0.0 and -0.0 is the minimum depends on the order
    return BoundingBox2d((low, high))


def _placement(
    backend: SVGBackend, page: PageSpec, settings: page_layout.Settings, box: BoundingBox2d
) -> Placement | None:
    """The fit ezdxf chose (its placement matrix maps layout units to SVG viewBox units)."""
    matrix = backend.transformation_matrix
    if matrix is None:
        return None
    per_mm = settings.page_output_scale_factor(page.to_ezdxf())  # viewBox units per mm
    ox, oy, _ = matrix.transform((0.0, 0.0, 0.0))
    ux, uy, _ = matrix.transform((1.0, 0.0, 0.0))
    scale = math.hypot(ux - ox, uy - oy) / per_mm
    if not (scale > 0 and math.isfinite(scale)):
        return None
    return Placement(
        page.width_mm,
        page.height_mm,
        scale,
        ox / per_mm,
        oy / per_mm,
        (box.extmin.x, box.extmin.y, box.extmax.x, box.extmax.y),
    )


class _RenderContext(RenderContext):
    """ezdxf's render context, with its default plot style table built once per process.

    ezdxf builds a plot style table (255 entries, about 2 ms) each time a context is made and each
    time it changes layout, two to three times per layout; for the usual drawing, which names no
    table file or one that is not there, it is the same default table every time. Contexts only
    read it. A table file that exists is still loaded by ezdxf each time."""

    @staticmethod
    def _load_plot_style_table(filename):
        if isinstance(filename, str) and not os.path.isfile(find_support_file(filename, ezdxf_options.support_dirs)):
            return _default_plot_styles()
        return RenderContext._load_plot_style_table(filename)


@functools.cache
def _default_plot_styles() -> acadctb.ColorDependentPlotStyles:
    """What ezdxf makes when the table file cannot be read: a new table, filled in as it fills one."""
    return RenderContext._load_plot_style_table(acadctb.new_ctb())


class _LayersAsCADProgramsLoadThem(dict):
    """The render context's layer table, where a layer that entities name but the LAYER table
    lacks is what AutoCAD creates on load: colour 7, visible. ezdxf's stand-in is white, which
    its late-resolving MTEXT renderer then draws white on white paper."""

    def get(self, key, default=None):  # every lookup of ezdxf's RenderContext goes through get()
        found = super().get(key)
        return found if found is not None else _UNDEFINED_LAYER


def _undefined_layer() -> LayerProperties:
    layer = LayerProperties()
    layer.has_aci_color_7 = True
    return layer


_UNDEFINED_LAYER = _undefined_layer()


class _InlineStyleSVGBackend(SVGBackend):
    page_backend: _InlineStyleRenderBackend | None = None  # the one that wrote the last page

    # An instance method where ezdxf has a static one: the page backend is kept for its colours.
    def make_backend(self, page: page_layout.Page, settings: page_layout.Settings) -> SVGRenderBackend:  # type: ignore[override]
        self.page_backend = _InlineStyleRenderBackend(page, settings)
        return self.page_backend


class _InlineStyleRenderBackend(SVGRenderBackend):
    """Writes stroke and fill as attributes of each path instead of CSS classes, and path data
    formatted in bulk (:mod:`converters.svg_paths`).

    MuPDF's SVG reader ignores CSS class rules: with ezdxf's classes every line vanished and
    every circle came out as a filled black disc.

    It also notes every colour it writes: a page drawn in greys only is rasterised in grey
    directly (a third of the pixels to clear, draw and encode, and no colour check after).
    """

    def __init__(self, page: page_layout.Page, settings: page_layout.Settings) -> None:
        super().__init__(page, settings)
        self.colours: set[str] = {"#ffffff"}  # the white background (BackgroundPolicy.WHITE)

    @property
    def grey_only(self) -> bool:
        """True when every colour on the page is a grey that MuPDF rasterises in grey exactly as
        in RGB (#rrggbb with r == g == b, of the values in `_exact_greys`)."""
        exact = _exact_greys()
        for colour in self.colours:
            c = colour.lower()
            if not (len(c) == 7 and c[1:3] == c[3:5] == c[5:7]) or int(c[1:3], 16) not in exact:
                return False
        return True

    def set_background(self, color: str) -> None:
        super().set_background(color)
        self.colours.add(color[:7])

    @staticmethod
    def make_path_str(path, close=False) -> str:
        return svg_paths.path_data(path._vertices, path._commands, close)

    @staticmethod
    def make_polyline_str(points, close=False) -> str:
        return svg_paths.polyline_data(points, close)

    @staticmethod
    def make_multi_line_str(lines) -> str:
        return svg_paths.lines_data(lines)

    def add_strokes(self, d: str, properties: BackendProperties) -> None:
        if not d:
            return
        color, opacity = self.resolve_color(properties.color)
        self.colours.add(color)
        width = self.resolve_stroke_width(properties.lineweight)
        path = ET.SubElement(self.entities, "path", d=d, fill="none", stroke=color)
        path.set("stroke-width", str(width))
        if opacity < 1.0:
            path.set("stroke-opacity", f"{opacity:.3f}")

    def add_filling(self, d: str, properties: BackendProperties) -> None:
        if not d:
            return
        color, opacity = self.resolve_color(properties.color)
        self.colours.add(color)
        path = ET.SubElement(self.entities, "path", d=d, fill=color)
        if opacity < 1.0:
            path.set("fill-opacity", f"{opacity:.3f}")


@functools.cache
def _exact_greys() -> frozenset[int]:
    """The grey levels v that MuPDF draws as v in a grey raster as in an RGB one. (It converts a
    grey fill to its grey colour space rounding down for some levels: 0x60 comes out 0x5f. Only
    pages of these levels take the grey raster; the others keep the RGB raster and its check.)"""
    bars = "".join(f'<rect x="{v}" y="0" width="1" height="3" fill="#{v:02x}{v:02x}{v:02x}"/>' for v in range(256))
    svg = f'<svg xmlns="http://www.w3.org/2000/svg" width="256" height="3" viewBox="0 0 256 3">{bars}</svg>'
    with pymupdf.open(stream=svg.encode("ascii"), filetype="svg") as doc:
        grey = doc[0].get_pixmap(alpha=False, colorspace=pymupdf.csGRAY)
        rgb = doc[0].get_pixmap(alpha=False)
        row = grey.width  # the middle row: no edge of the page
        return frozenset(v for v in range(256) if grey.samples[row + v] == v and rgb.samples[3 * (row + v)] == v)


class _Pipeline(RenderPipeline2d):
    """ezdxf's 2D pipeline, clipping viewports with the same output but faster
    (:mod:`converters.clipping`)."""

    def build_render_pipeline(self):
        self.clipping_portal = FastClippingPortal()  # before the stages that hold it are built
        return super().build_render_pipeline()


class _TolerantFrontend(Frontend):
    """Leaves out an entity whose drawing raises, instead of losing the whole layout.

    ezdxf's frontend only skips entities it knows it cannot draw; an exception from a broken
    entity (or a broken block behind an INSERT) would end the whole render.
    """

    def __init__(self, ctx: RenderContext, backend: SVGBackend, config: Configuration, notes: _DrawNotes):
        # What Frontend.__init__ does, with the pipeline that clips through FastClippingPortal.
        UniversalFrontend.__init__(self, ctx, _Pipeline(backend), config)
        self.notes = notes
        self._patterns: dict[str, list] | None = None

    @property
    def _clipping(self) -> ClippingPortal:
        pipeline = self.pipeline
        assert isinstance(pipeline, RenderPipeline2d)  # what Frontend builds; typed as the abstract base
        return pipeline.clipping_portal

    def skip_entity(self, entity, msg: str) -> None:
        handle = entity.dxf.get("handle") if not getattr(entity, "is_virtual", False) else None
        # Invisible is hidden on purpose: a CAD program would not show it either.
        if msg != "invisible" and (handle is None or handle not in self.notes.reported):
            if handle is not None:
                self.notes.reported.add(handle)
            key = f"{entity.dxftype()} ({msg})"
            self.notes.skipped[key] = self.notes.skipped.get(key, 0) + 1
        super().skip_entity(entity, msg)

    def draw_hatch_pattern(self, polygon, paths, properties: Properties) -> None:
        if polygon.pattern is None or len(polygon.pattern.lines) == 0:
            self._give_pattern_definition(polygon)
        super().draw_hatch_pattern(polygon, paths, properties)

    def _give_pattern_definition(self, polygon) -> None:
        """The file names a pattern but stores no lines: ezdxf would draw nothing there."""
        if self._patterns is None:
            measurement = polygon.doc.header.get("$MEASUREMENT", 1) if polygon.doc is not None else 1
            self._patterns = hatch_patterns.load(measurement=0 if measurement == 0 else 1)
        name = str(polygon.dxf.get("pattern_name", "") or "").upper()
        used = name if name in self._patterns else _FALLBACK_PATTERN
        polygon.set_pattern_definition(
            self._patterns[used],
            factor=polygon.dxf.get("pattern_scale", 1.0) or 1.0,
            angle=polygon.dxf.get("pattern_angle", 0.0) or 0.0,
        )
        key = (
            f"{name or 'unnamed'!r} drawn with ezdxf's definition"
            if used == name
            else f"{name or 'unnamed'!r} drawn as {used}"
        )
        self.notes.patterns[key] = self.notes.patterns.get(key, 0) + 1

    def draw_entity(self, entity: DXFGraphic, properties: Properties) -> None:
        modelled = getattr(entity, "entity", entity)  # ezdxf wraps unmodelled types in a proxy
        if isinstance(modelled, DXFTagStorage) and not getattr(modelled, "proxy_graphic", None):
            # ezdxf keeps this type only as tags; with no proxy graphic it would draw nothing, unsaid.
            self.skip_entity(entity, "a type ezdxf does not model, without proxy graphic")
            return
        # A failure inside an INSERT leaves its block state and clipping pushed; undo both.
        saved_states = len(self.ctx._saved_states)
        clipping = self._clipping
        clip_depth = clipping.stack_depth
        try:
            super().draw_entity(entity, properties)
        except MemoryError:
            raise
        except Exception as exc:
            while len(self.ctx._saved_states) > saved_states:
                self.ctx.pop_state()
            while clipping.stack_depth > clip_depth:
                clipping.pop()
            self.notes.failures.append(f"{entity} ({type(exc).__name__}: {exc})")

    def draw_image_entity(self, entity: DXFGraphic, properties: Properties) -> None:
        # ezdxf opens the image file it finds; only one the read scope allows is opened (outside
        # the drawing's source, or a FIFO, it is drawn as missing: its frame and file name).
        image_def = entity.image_def if isinstance(entity, Image) else None  # ezdxf calls this for IMAGE only
        if image_def is not None and self.ctx.document_dir is not None:
            found = _find_image_path(self.ctx.document_dir, image_def.dxf.filename)
            if not may_read(found):
                saved, self.config = self.config, self.config.with_changes(image_policy=ImagePolicy.MISSING)
                try:
                    return super().draw_image_entity(entity, properties)
                finally:
                    self.config = saved
        return super().draw_image_entity(entity, properties)


def _readable_on_white(entity: DXFGraphic, properties: Properties) -> None:
    """Property override: darken strokes too light to read on white paper."""
    if entity.dxftype() in _AREA_FILLS:
        return
    if properties.filling is not None and properties.filling.type != Filling.PATTERN:
        return  # solid or gradient HATCH/MPOLYGON: an area fill too
    color = properties.color
    properties.color = darken_for_white_paper(color[:7]) + color[7:]  # keep the transparency


def darken_for_white_paper(color: str) -> str:
    """``#rrggbb`` readable on white: white/near-white to black, other light colours darkened."""
    rgb = RGB.from_hex(color)
    luminance = rgb.luminance
    if luminance <= _MAX_LUMINANCE:
        return color
    if luminance >= _WHITE_LUMINANCE and max(rgb) - min(rgb) <= _GREY_SPREAD:
        return "#000000"
    # Scaling all channels scales this luminance by the same factor, and keeps the hue.
    factor = _MAX_LUMINANCE / luminance
    return RGB(*(int(channel * factor) for channel in rgb)).to_hex()


def _write_formats(
    drawn: _SvgPage, name: str, stem: str, out_dir: Path, options: RenderOptions, where: str
) -> RenderedLayout:
    svg = drawn.svg
    files: dict[str, Path] = {}
    png_size: tuple[int, int] | None = None
    png_dpi: float | None = None
    if "svg" in options.formats:
        files["svg"] = _write_atomic(out_dir / f"{stem}.svg", svg.encode("utf-8"))
    try:
        with _open_svg(drawn.paperless) as svg_doc:
            pdf = _pdf_from(svg_doc) if "pdf" in options.formats else None
            png = (
                _png_from(svg_doc, options.png_dpi, options.png_max_pixels, drawn.grey, options.png_compression)
                if "png" in options.formats
                else None
            )
            thumbnail = thumbnail_png(svg_doc[0], grey=drawn.grey)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from exc
    if pdf is not None:
        files["pdf"] = _write_atomic(out_dir / f"{stem}.pdf", pdf)
    if png is not None:
        data, png_size, png_dpi = png
        files["png"] = _write_atomic(out_dir / f"{stem}.png", data)
    files[THUMBNAIL] = _write_atomic(out_dir / f"{stem}.thumb.png", thumbnail)
    return RenderedLayout(name, stem, drawn.empty, files, png_size, png_dpi)


def svg_thumbnail(svg: str) -> bytes:
    """The thumbnail PNG of an SVG page (converters/placement.py: thumbnail_png)."""
    with _open_svg(svg) as svg_doc:
        return thumbnail_png(svg_doc[0])


@contextlib.contextmanager
def _open_svg(svg: str) -> Iterator[pymupdf.Document]:
    try:
        svg_doc = pymupdf.open(stream=svg.encode("utf-8"), filetype="svg")
    except Exception as exc:
        raise InputError(f"MuPDF cannot read the SVG: {exc}") from exc
    try:
        if svg_doc.page_count != 1:
            raise InputError(f"MuPDF read {svg_doc.page_count} pages from the SVG, expected 1")
        yield svg_doc
    finally:
        svg_doc.close()


def _pdf_from(svg_doc: pymupdf.Document) -> bytes:
    return svg_doc.convert_to_pdf()


def _png_from(
    svg_doc: pymupdf.Document, dpi: int, max_pixels: int, grey: bool = False, compression: str = "fast"
) -> tuple[bytes, tuple[int, int], float]:
    """The page as a PNG; `grey`: the page is known to hold greys only, rasterised in grey."""
    if dpi <= 0 or max_pixels <= 0:
        raise ValueError(f"dpi and max_pixels must be positive, got {dpi}, {max_pixels}")
    page = svg_doc[0]
    rect = page.rect  # in points (1/72 inch)
    zoom = min(dpi / 72, math.sqrt(max_pixels / (rect.width * rect.height)))
    # MuPDF rounds the pixel box outwards; shrink until the rounded box is within the cap too.
    while _pixel_count(rect, zoom) > max_pixels:
        zoom *= 0.999
    pix = page_pixmap(page, zoom, grey)
    return png_bytes(pix, compression), (pix.width, pix.height), zoom * 72


def _pixel_count(rect: pymupdf.Rect, zoom: float) -> int:
    box = (rect * pymupdf.Matrix(zoom, zoom)).irect
    return box.width * box.height


def _write_atomic(path: Path, data: bytes) -> Path:
    """Write via a temporary name in the same folder, so readers never see a partial file."""
    try:
        return atomic.write_bytes(path, data)
    except OSError as exc:
        raise TransientError(f"cannot write {path}: {exc}") from exc
