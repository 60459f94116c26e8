"""Where a layout's own coordinates land on its rendered page, and small images of a page.

The renderer fits each layout's drawn box onto a fixed page (converters/dxf_render.py), so the
same point of a drawing lands elsewhere on the page when the drawing's extents change. Recording
the fit lets two renders be laid over each other in the drawing's coordinates
(converters/overlay.py) without drawing either again.

Thumbnails are rasterised from a page already rendered (an SVG or PDF opened by MuPDF), with a
minimum line width so hairlines stay visible at a few hundred pixels.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import pymupdf

from converters.png_writer import png_bytes

THUMBNAIL_PX = 320  # long side of a thumbnail
_THUMBNAIL_MIN_LINE_PX = 1.0


@dataclass(frozen=True)
class Placement:
    """page_x = origin_x_mm + x * mm_per_unit, page_y = origin_y_mm - y * mm_per_unit (mm from the
    page's top-left corner, y down); `extents` (xmin, ymin, xmax, ymax) is the drawn box, in the
    layout's units, that was fitted to the page."""

    width_mm: float
    height_mm: float
    mm_per_unit: float
    origin_x_mm: float
    origin_y_mm: float
    extents: tuple[float, float, float, float]

    def to_page(self, x: float, y: float) -> tuple[float, float]:
        return self.origin_x_mm + x * self.mm_per_unit, self.origin_y_mm - y * self.mm_per_unit

    def as_dict(self) -> dict:
        return {**asdict(self), "extents": list(self.extents)}

    @classmethod
    def from_dict(cls, value: dict | None) -> Placement | None:
        if not value:
            return None
        try:
            placement = cls(
                float(value["width_mm"]),
                float(value["height_mm"]),
                float(value["mm_per_unit"]),
                float(value["origin_x_mm"]),
                float(value["origin_y_mm"]),
                tuple(float(v) for v in value["extents"]),  # type: ignore[arg-type]
            )
        except (KeyError, TypeError, ValueError):
            return None
        return placement if placement.mm_per_unit > 0 and len(placement.extents) == 4 else None


@contextlib.contextmanager
def _min_line_width(pixels: float) -> Iterator[None]:
    """MuPDF's minimum stroke width is process-wide: set it for one rasterisation only."""
    before = pymupdf.TOOLS.show_aa_level()["graphics_min_line_width"]
    pymupdf.TOOLS.set_graphics_min_line_width(pixels)
    try:
        yield
    finally:
        pymupdf.TOOLS.set_graphics_min_line_width(before)


def thumbnail_png(page: pymupdf.Page, size_px: int = THUMBNAIL_PX, grey: bool = False) -> bytes:
    """A PNG of `page` whose long side is `size_px`: grey when the page has no colour (`grey`:
    known to have none, rasterised in grey directly)."""
    rect = page.rect
    zoom = size_px / max(rect.width, rect.height, 1e-9)
    with _min_line_width(_THUMBNAIL_MIN_LINE_PX):
        return png_bytes(page_pixmap(page, zoom, grey), "small")  # tiny: the smaller file costs nothing


def page_pixmap(page: pymupdf.Page, zoom: float, grey: bool = False) -> pymupdf.Pixmap:
    """`page` rasterised at `zoom`, in grey when it has no colour: directly when `grey` says the
    page holds greys only, else in RGB, converted when every pixel came out grey anyway.
    Black-on-white drawings are most of a library: a grey PNG holds the very same pixels in a
    third of the bytes, and encodes three times faster (PNG encoding is most of a small
    drawing's time)."""
    matrix = pymupdf.Matrix(zoom, zoom)
    if grey:
        pix = page.get_pixmap(matrix=matrix, alpha=False, colorspace=pymupdf.csGRAY)
    else:
        pix = page.get_pixmap(matrix=matrix, alpha=False)
        pix = pymupdf.Pixmap(pymupdf.csGRAY, pix) if _all_grey(pix) else pix
    dpi = round(72 * zoom)  # MuPDF leaves 96: the PNG's pHYs then tells a viewer the wrong print size
    pix.set_dpi(dpi, dpi)
    return pix


def _all_grey(pix: pymupdf.Pixmap) -> bool:
    """True when every pixel of an RGB pixmap has R == G == B."""
    rgb = np.frombuffer(pix.samples, dtype=np.uint8).reshape(-1, 3)  # a copy: no view outlives the pixmap
    return bool((rgb[:, 0] == rgb[:, 1]).all() and (rgb[:, 1] == rgb[:, 2]).all())
