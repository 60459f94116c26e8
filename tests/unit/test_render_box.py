"""The box of everything a layout drew (converters/dxf_render.py: _render_box) is ezdxf's
``Player.bbox()``, to the sign of a zero."""

from __future__ import annotations

import ezdxf
import pytest

from converters import dxf_render


def _player(doc, layout):
    backend = dxf_render._InlineStyleSVGBackend()
    frontend = dxf_render._TolerantFrontend(
        dxf_render._RenderContext(doc), backend, dxf_render.Configuration(), dxf_render._DrawNotes()
    )
    frontend.draw_layout(layout, finalize=True)
    return backend


def _limits(box):
    return [repr(v) for v in (*box.extmin, *box.extmax)] if box.has_data else None


@pytest.mark.parametrize("origin", [(5, 7), (0, 0), (-3, 0)])
def test_the_render_box_is_ezdxfs(origin):
    doc = ezdxf.new()
    msp = doc.modelspace()
    x, y = origin
    msp.add_line((x, y), (x + 40, y + 10))  # a line record
    msp.add_lwpolyline([(x + 1, y + 2), (x + 9, y + 30), (x + 20, y + 4)])  # a path
    msp.add_text("words", height=3).set_placement((x + 12, y + 15))  # filled glyph paths
    msp.add_solid([(x + 30, y + 1), (x + 33, y + 1), (x + 30, y + 5)])  # a filled polygon
    msp.add_point((x + 50, y + 2))
    msp.add_circle((x + 45, y + 20), 6)
    backend = _player(doc, msp)
    assert _limits(dxf_render._render_box(backend.player())) == _limits(backend.player().bbox())


def test_nothing_drawn_gives_an_empty_box():
    doc = ezdxf.new()
    backend = _player(doc, doc.modelspace())
    assert not dxf_render._render_box(backend.player()).has_data
    assert not backend.player().bbox().has_data
