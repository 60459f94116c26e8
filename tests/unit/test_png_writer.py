"""PNG files of pixmaps (converters/png_writer.py): the same pixels and chunks as MuPDF's writer."""

from __future__ import annotations

import struct

import numpy as np
import pymupdf
import pytest

from converters.png_writer import png_bytes


def chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    found, i = [], 8
    while i < len(png):
        (size, kind), body = (
            struct.unpack(">I4s", png[i : i + 8]),
            png[i + 8 : i + 8 + struct.unpack(">I", png[i : i + 4])[0]],
        )
        found.append((kind, body[:size]))
        i += 12 + size
    return found


def pixmap(colourspace: pymupdf.Colorspace, width: int, height: int, seed: int) -> pymupdf.Pixmap:
    """Random samples with long white runs, like a drawing page."""
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, 256, size=(height, width * colourspace.n), dtype=np.uint8)
    samples[rng.random(samples.shape) < 0.7] = 255
    return pymupdf.Pixmap(colourspace, width, height, samples.tobytes(), False)


@pytest.mark.parametrize("compression", ["fast", "small"])
@pytest.mark.parametrize("colourspace", [pymupdf.csGRAY, pymupdf.csRGB], ids=["grey", "rgb"])
@pytest.mark.parametrize("size", [(1, 1), (7, 3), (640, 481)])
def test_decodes_to_the_same_samples_with_mupdfs_chunks(colourspace, size, compression):
    pix = pixmap(colourspace, *size, seed=size[0])
    pix.set_dpi(150, 96)
    ours, mupdf = png_bytes(pix, compression), pix.tobytes("png")
    back = pymupdf.Pixmap(ours)
    assert (back.width, back.height, back.n, back.alpha) == (pix.width, pix.height, pix.n, 0)
    assert back.samples == pix.samples
    theirs = pymupdf.Pixmap(mupdf)
    assert (back.xres, back.yres) == (theirs.xres, theirs.yres)
    ours_chunks, mupdf_chunks = chunks(ours), chunks(mupdf)
    assert (
        [kind for kind, _ in ours_chunks] == [kind for kind, _ in mupdf_chunks] == [b"IHDR", b"pHYs", b"IDAT", b"IEND"]
    )
    assert ours_chunks[:2] == mupdf_chunks[:2]  # header and resolution exactly as MuPDF writes them


def test_a_drawing_page_is_no_larger_than_mupdfs():
    # A frame, a grid and circles: most of a drawing page is white paper.
    shapes = ['<rect x="20" y="20" width="802" height="555" fill="none" stroke="#000"/>']
    shapes += [f'<path d="M{x} 40 V555" stroke="#000" stroke-width="0.3"/>' for x in range(60, 800, 90)]
    shapes += [f'<circle cx="{x}" cy="300" r="{x / 20}" fill="none" stroke="#000"/>' for x in range(100, 800, 70)]
    svg = f'<svg xmlns="http://www.w3.org/2000/svg" width="842" height="595">{"".join(shapes)}</svg>'
    with pymupdf.open(stream=svg.encode(), filetype="svg") as doc:
        pix = doc[0].get_pixmap(matrix=pymupdf.Matrix(150 / 72, 150 / 72), alpha=False, colorspace=pymupdf.csGRAY)
    small, fast = png_bytes(pix, "small"), png_bytes(pix, "fast")
    assert pymupdf.Pixmap(small).samples == pymupdf.Pixmap(fast).samples == pix.samples
    assert len(small) <= len(pix.tobytes("png"))
    assert len(small) < len(fast) < 4 * len(small)  # what "fast" gives up, bounded


def test_an_unknown_compression_is_refused():
    with pytest.raises(ValueError, match="compression must be one of"):
        png_bytes(pymupdf.Pixmap(pymupdf.csGRAY, pymupdf.IRect(0, 0, 2, 2), 0), "best")


def test_other_pixmaps_are_left_to_mupdf():
    pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 4, 4), 1)  # with alpha
    pix.clear_with(128)
    assert png_bytes(pix) == pix.tobytes("png")
