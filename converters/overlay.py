"""A visual diff of two renders of one layout: what was removed in red, what was added in green.

Both pages are rasterised by MuPDF onto one canvas laid out in the layout's own coordinates
(each page's `Placement` says where those coordinates are on it), at the same pixels per drawing
unit: a drawing whose extents grew is therefore compared point for point, not page for page.
Nothing is drawn again from the drawing; the renders already written (SVG or PDF, else PNG) are
read.

Ink is any pixel darker than `INK_BELOW`. A pixel is *removed* when the earlier render has ink
there and the later one has none within `tolerance_px` (and the other way round for *added*):
the tolerance absorbs anti-aliasing and the stroke widths of two page scales (strokes have a fixed
width on paper, so a drawing fitted at another scale has thinner or thicker lines in drawing
units). Ink in both is shown in light grey, for context; the differences are painted a pixel
wider than they are counted, so a moved hairline stands out.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pymupdf

from converters.placement import Placement
from converters.png_writer import png_bytes

INK_BELOW = 200  # grey level (0-255) under which a pixel is ink
OVERLAY_PX = 2000  # long side of the overlay image
STROKE_MM = 0.35  # a generous stroke width on paper, for the tolerance between two scales
_MAX_TOLERANCE_PX = 8
REGION_CELL_PX = 12  # changed pixels this close together are one region
MAX_REGIONS = 20
_PAD = 0.02  # of the larger side, around the union of both extents

_BACKGROUND = (255, 255, 255)
_BOTH = (200, 200, 200)
_REMOVED = (220, 0, 0)
_ADDED = (0, 150, 0)


@dataclass(frozen=True)
class Window:
    """The part of the layout's plane on the canvas: x0..x1, y0..y1 in drawing units, `scale`
    pixels per unit; pixel (0, 0) is the top-left corner (x0, y1)."""

    x0: float
    y0: float
    x1: float
    y1: float
    scale: float

    @property
    def size(self) -> tuple[int, int]:
        return max(1, math.ceil((self.x1 - self.x0) * self.scale)), max(1, math.ceil((self.y1 - self.y0) * self.scale))

    def to_drawing(self, px: float, py: float) -> tuple[float, float]:
        return self.x0 + px / self.scale, self.y1 - py / self.scale

    @classmethod
    def around(cls, placements: list[Placement], long_side_px: int = OVERLAY_PX) -> Window:
        x0 = min(p.extents[0] for p in placements)
        y0 = min(p.extents[1] for p in placements)
        x1 = max(p.extents[2] for p in placements)
        y1 = max(p.extents[3] for p in placements)
        side = max(x1 - x0, y1 - y0) or 1.0
        pad = side * _PAD
        side += 2 * pad
        return cls(x0 - pad, y0 - pad, x1 + pad, y1 + pad, long_side_px / side)


Box = tuple[float, float, float, float]  # (xmin, ymin, xmax, ymax) in drawing units


@dataclass(frozen=True)
class OverlayResult:
    png: bytes
    window: Window  # how the image's pixels map to the drawing's coordinates
    pixels_removed: int
    pixels_added: int
    removed_regions: list[Box]  # where the removed pixels are, largest first
    added_regions: list[Box]
    tolerance_px: int

    @property
    def changed(self) -> bool:
        return bool(self.pixels_removed or self.pixels_added)


@contextlib.contextmanager
def open_page(path: Path) -> Iterator[pymupdf.Page]:
    """The first page of a render (SVG, PDF or PNG) opened by MuPDF."""
    doc = pymupdf.open(path)
    try:
        yield doc[0]
    finally:
        doc.close()


def raster(page: pymupdf.Page | None, placement: Placement | None, window: Window) -> np.ndarray:
    """Grey levels (rows of uint8) of `page` on the window's canvas; white where it has nothing."""
    width, height = window.size
    canvas = np.full((height, width), 255, dtype=np.uint8)
    if page is None or placement is None:
        return canvas
    per_point = placement.width_mm / page.rect.width  # mm per page unit (points for SVG and PDF)
    units = window.scale / placement.mm_per_unit  # pixels per mm on this page
    matrix = pymupdf.Matrix(
        units * per_point,
        0,
        0,
        units * per_point,
        -window.scale * (placement.origin_x_mm / placement.mm_per_unit + window.x0),
        window.scale * (window.y1 - placement.origin_y_mm / placement.mm_per_unit),
    )
    clip = pymupdf.Rect(0, 0, width, height) * ~matrix  # the canvas, in page coordinates
    clip &= page.rect
    if clip.is_empty:
        return canvas
    pix = page.get_pixmap(matrix=matrix, clip=clip, colorspace=pymupdf.csGRAY, alpha=False)
    rows = np.frombuffer(pix.samples, dtype=np.uint8).reshape(pix.height, pix.stride)[:, : pix.width]
    left, top = pix.x, pix.y
    x0, y0 = max(0, left), max(0, top)
    x1, y1 = min(width, left + pix.width), min(height, top + pix.height)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = rows[y0 - top : y1 - top, x0 - left : x1 - left]
    return canvas


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """`mask` grown by `radius` pixels (a square neighbourhood), separably."""
    if radius <= 0:
        return mask
    grown = mask.copy()
    for shift in range(1, radius + 1):
        grown[shift:, :] |= mask[:-shift, :]
        grown[:-shift, :] |= mask[shift:, :]
    across = grown.copy()
    for shift in range(1, radius + 1):
        across[:, shift:] |= grown[:, :-shift]
        across[:, :-shift] |= grown[:, shift:]
    return across


def tolerance_for(before: Placement | None, after: Placement | None, window: Window) -> int:
    """Pixels of slack: anti-aliasing (1) plus how much a stroke's width differs between the
    two page scales, in canvas pixels."""
    scales = [p.mm_per_unit for p in (before, after) if p is not None]
    spread = 0.0
    if len(scales) == 2:
        spread = STROKE_MM * window.scale * abs(1 / scales[0] - 1 / scales[1])
    return min(_MAX_TOLERANCE_PX, 1 + math.ceil(spread / 2))


def overlay(
    before: tuple[pymupdf.Page | None, Placement | None],
    after: tuple[pymupdf.Page | None, Placement | None],
    long_side_px: int = OVERLAY_PX,
) -> OverlayResult:
    """The overlay PNG of two renders of one layout, and where they differ."""
    placements = [p for _, p in (before, after) if p is not None]
    if not placements:
        raise ValueError("neither render has a placement: nothing to align")
    window = Window.around(placements, long_side_px)
    old_ink = raster(*before, window) < INK_BELOW
    new_ink = raster(*after, window) < INK_BELOW
    tolerance = tolerance_for(before[1], after[1], window)
    removed = old_ink & ~dilate(new_ink, tolerance)
    added = new_ink & ~dilate(old_ink, tolerance)
    image = np.empty(old_ink.shape + (3,), dtype=np.uint8)
    image[:] = _BACKGROUND
    image[old_ink | new_ink] = _BOTH
    # Drawn a pixel wider than measured: a moved hairline must be seen at a glance.
    image[dilate(removed, 1)] = _REMOVED
    image[dilate(added, 1)] = _ADDED
    width, height = window.size
    pix = pymupdf.Pixmap(pymupdf.csRGB, width, height, image.tobytes(), False)
    return OverlayResult(
        png=png_bytes(pix),
        window=window,
        pixels_removed=int(removed.sum()),
        pixels_added=int(added.sum()),
        removed_regions=regions(removed, window),
        added_regions=regions(added, window),
        tolerance_px=tolerance,
    )


def regions(mask: np.ndarray, window: Window, cell: int = REGION_CELL_PX, limit: int = MAX_REGIONS) -> list[Box]:
    """Boxes (drawing units) around the groups of set pixels of `mask`, largest first: pixels
    within about `cell` pixels of each other are one group (a moved line is one region)."""
    height, width = mask.shape
    rows, columns = -(-height // cell), -(-width // cell)
    padded = np.zeros((rows * cell, columns * cell), dtype=bool)
    padded[:height, :width] = mask
    grid = np.asarray(padded.reshape(rows, cell, columns, cell).any(axis=(1, 3)))
    seen = np.zeros_like(grid)
    found: list[tuple[int, Box]] = []
    for start in zip(*np.nonzero(grid)):
        if seen[start]:
            continue
        seen[start] = True
        stack, cells = [start], []
        while stack:
            r, c = stack.pop()
            cells.append((r, c))
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    nr, nc = r + dr, c + dc
                    if 0 <= nr < rows and 0 <= nc < columns and grid[nr, nc] and not seen[nr, nc]:
                        seen[nr, nc] = True
                        stack.append((nr, nc))
        r0, r1 = min(r for r, _ in cells) * cell, (max(r for r, _ in cells) + 1) * cell
        c0, c1 = min(c for _, c in cells) * cell, (max(c for _, c in cells) + 1) * cell
        part = padded[r0:r1, c0:c1]
        ys, xs = np.flatnonzero(part.any(axis=1)), np.flatnonzero(part.any(axis=0))
        x_min, y_max = window.to_drawing(c0 + xs[0], r0 + ys[0])
        x_max, y_min = window.to_drawing(c0 + xs[-1] + 1, r0 + ys[-1] + 1)
        found.append((int(part.sum()), (float(x_min), float(y_min), float(x_max), float(y_max))))
    found.sort(key=lambda item: -item[0])
    return [box for _, box in found[:limit]]
