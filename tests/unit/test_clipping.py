"""The viewport clipping of converters/clipping.py gives ezdxf's paths, in ezdxf's order."""

from __future__ import annotations

import random

import ezdxf
import pytest
from ezdxf.math import Matrix44
from ezdxf.npshapes import NumpyPath2d
from ezdxf.path import Path
from ezdxf.tools.clipping_portal import ClippingPortal, ClippingRect, ConvexClippingPolygon

from converters.clipping import FastClippingPortal
from converters.dxf_render import PageSpec, _render_svg


def _paths(seed: int) -> list[NumpyPath2d]:
    """Multi-paths of lines and curves: wholly inside the rectangle (0,0)-(10,10), apart from it,
    straddling it, touching its border, degenerate (a lone move, one point)."""
    rng = random.Random(seed)
    paths = []
    for _ in range(40):
        path = Path((rng.uniform(-5, 15), rng.uniform(-5, 15)))
        for _ in range(rng.randint(0, 4)):
            for _ in range(rng.randint(0, 3)):
                end = (rng.uniform(-5, 15), rng.uniform(-5, 15))
                if rng.random() < 0.5:
                    path.line_to(end)
                else:
                    path.curve4_to(end, (rng.uniform(-5, 15), rng.uniform(-5, 15)), (rng.uniform(-5, 15), 3))
            path.move_to((rng.uniform(-5, 15), rng.uniform(-5, 15)))
        paths.append(NumpyPath2d(path))
    inside = Path((1, 1))
    inside.line_to((9, 1))
    inside.line_to((9, 9))
    inside.move_to((2, 2))
    inside.curve4_to((8, 8), (3, 9), (7, 1))
    border = Path((0, 0))
    border.line_to((0, 10))  # on the border: inside, as ezdxf counts it
    border.move_to((10, 0))
    border.line_to((10, 10))
    apart = Path((20, 20))
    apart.line_to((30, 25))
    apart.move_to((21, 22))
    apart.line_to((25, 21))
    touching = Path((10, 3))  # touches the border from outside
    touching.line_to((14, 3))
    touching.line_to((14, 7))
    return [*paths, NumpyPath2d(inside), NumpyPath2d(border), NumpyPath2d(apart), NumpyPath2d(touching)]


def _clipped(portal_class, shape, transform, paths, filled):
    portal = portal_class()
    portal.push(shape, transform)
    copies = [path.clone() for path in paths]
    clipped = portal.clip_filled_paths(copies, 0.01) if filled else portal.clip_paths(copies, 0.01)
    return [(p.np_vertices().tolist(), p.command_codes()) for p in clipped]


SHAPES = {
    "rectangle": lambda: ClippingRect([(0, 0), (10, 0), (10, 10), (0, 10)]),
    "polygon": lambda: ConvexClippingPolygon([(0, 0), (10, 0), (10, 10), (0, 10)]),  # ezdxf's own code
    "too small": lambda: ClippingRect([(0, 0), (1e-6, 0), (1e-6, 1e-6)]),  # removes everything
}


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("filled", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("transform", [None, Matrix44.translate(1.5, -2, 0) @ Matrix44.scale(1.2)])
def test_clipping_gives_ezdxfs_paths_in_ezdxfs_order(seed, filled, shape, transform):
    paths = _paths(seed)
    expected = _clipped(ClippingPortal, SHAPES[shape](), transform, paths, filled)
    assert _clipped(FastClippingPortal, SHAPES[shape](), transform, paths, filled) == expected
    assert bool(expected) == (shape != "too small")


def test_nested_stages_clip_as_ezdxfs():
    paths = _paths(7)
    results = []
    for portal in (ClippingPortal(), FastClippingPortal()):
        portal.push(ClippingRect([(-2, -2), (12, -2), (12, 12), (-2, 12)]), None)
        portal.push(ClippingRect([(0, 0), (10, 0), (10, 10), (0, 10)]), Matrix44.translate(0.5, 0.5, 0))
        copies = [path.clone() for path in paths]
        results.append([(p.np_vertices().tolist(), p.command_codes()) for p in portal.clip_filled_paths(copies, 0.01)])
    assert results[0] == results[1]


def test_a_layout_viewport_is_drawn_through_the_fast_portal(monkeypatch):
    doc = ezdxf.new()
    msp = doc.modelspace()
    for i in range(5):
        msp.add_text(f"text {i}", height=2).set_placement((i * 10, i * 3))
    msp.add_line((0, 0), (60, 30))
    layout = doc.layouts.new("Sheet")
    layout.add_viewport(center=(100, 100), size=(80, 40), view_center_point=(20, 10), view_height=25)
    used = []
    original = FastClippingPortal.clip_filled_paths

    def spy(self, paths, max_sagitta):
        used.append(self)
        return original(self, paths, max_sagitta)

    monkeypatch.setattr(FastClippingPortal, "clip_filled_paths", spy)
    page = _render_svg(doc, layout, PageSpec(), "test")
    assert used and not page.empty
