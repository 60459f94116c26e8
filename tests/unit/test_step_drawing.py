"""Four-view line drawings (SVG + PNG) of generated models with known geometry."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import cadquery as cq
import numpy as np
import pymupdf
import pytest

from converters.step_drawing import DrawingOptions, iso_scale, render_views
from converters.step_mesh import mesh_model, write_stl
from documents.step_document import open_model, open_step

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def holed_box(tmp_path_factory) -> Path:
    """100 x 50 x 20 mm box centred on the origin, a 20 mm hole straight through along Z."""
    path = tmp_path_factory.mktemp("drawing_models") / "holed_box.step"
    shape = cq.Workplane().box(100, 50, 20).faces(">Z").workplane().hole(20)
    cq.exporters.export(shape, str(path), "STEP")
    return path


def view_segments(svg_path: Path, view: str) -> tuple[np.ndarray, np.ndarray]:
    """Visible and hidden segments (K, 2, 2) of one view, in page mm (y down)."""
    group = next(g for g in ET.parse(svg_path).getroot().iter(f"{SVG}g") if g.get("id") == f"view-{view}")
    visible: list = []
    hidden: list = []
    for path in group.iter(f"{SVG}path"):
        target = hidden if path.get("stroke-dasharray") else visible
        for run in re.findall(r"M[^M]+", path.get("d")):
            numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", run)]
            points = list(zip(numbers[::2], numbers[1::2]))
            target.extend(zip(points[:-1], points[1:]))
    return np.array(visible).reshape(-1, 2, 2), np.array(hidden).reshape(-1, 2, 2)


def view_points(svg_path: Path, view: str) -> tuple[np.ndarray, np.ndarray]:
    """Endpoints of the visible and of the hidden segments of one view."""
    visible, hidden = view_segments(svg_path, view)
    return visible.reshape(-1, 2), hidden.reshape(-1, 2)


def distance_to_rectangle_outline(points: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    dx = np.minimum(np.abs(points[:, 0] - low[0]), np.abs(points[:, 0] - high[0]))
    dy = np.minimum(np.abs(points[:, 1] - low[1]), np.abs(points[:, 1] - high[1]))
    return np.minimum(dx, dy)


def test_views_show_the_right_extents_at_one_scale(holed_box, tmp_path):
    result = render_views(open_step(holed_box), tmp_path, hidden_lines=True)
    assert result["scale"] == "1:1" and result["scale_factor"] == 1.0
    svg = result["files"]["svg"]
    for view, size in {"front": (100, 20), "top": (100, 50), "right": (50, 20)}.items():
        visible, _ = view_points(svg, view)
        assert visible.max(axis=0) - visible.min(axis=0) == pytest.approx(size, abs=0.3), view
    front, top = view_points(svg, "front")[0], view_points(svg, "top")[0]
    assert front[:, 0].min() == pytest.approx(top[:, 0].min(), abs=0.3)  # third-angle: top above front
    assert front[:, 1].min() > top[:, 1].max()


def test_hole_is_hidden_in_the_front_view_and_visible_from_the_top(holed_box, tmp_path):
    result = render_views(open_step(holed_box), tmp_path, hidden_lines=True)
    svg = result["files"]["svg"]
    visible, hidden = view_points(svg, "front")
    low, high = visible.min(axis=0), visible.max(axis=0)
    # Every visible line of the front view is the box outline; the hole's edges are hidden.
    assert distance_to_rectangle_outline(visible, low, high).max() < 0.3
    # Hidden lines off the outline (the back edges lie under the front ones) are the hole's sides.
    middles = view_segments(svg, "front")[1].mean(axis=1)
    inner = middles[distance_to_rectangle_outline(middles, low, high) > 0.3]
    centre_x = (low[0] + high[0]) / 2
    assert np.all(np.abs(np.abs(inner[:, 0] - centre_x) - 10) < 0.3)
    assert inner[:, 0].min() < centre_x < inner[:, 0].max()  # both sides of the hole
    top_visible, _ = view_points(svg, "top")
    centre = (top_visible.min(axis=0) + top_visible.max(axis=0)) / 2
    radii = np.linalg.norm(top_visible - centre, axis=1)
    assert np.sum(np.abs(radii - 10) < 0.2) >= 8  # the hole's circle
    assert result["hidden_segments"] > 0


def test_without_hidden_lines_no_dashed_path_is_written(holed_box, tmp_path):
    result = render_views(open_step(holed_box), tmp_path, hidden_lines=False, formats=("svg",))
    text = result["files"]["svg"].read_text()
    assert "stroke-dasharray" not in text
    assert result["hidden_segments"] == 0
    assert set(result["files"]) == {"svg", "thumbnail"} and result["png_size"] is None
    ids = {g.get("id") for g in ET.parse(result["files"]["svg"]).getroot().iter(f"{SVG}g")}
    assert ids == {"view-top", "view-isometric", "view-front", "view-right"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["views.svg", "views.thumb.png"]


def test_png_is_rendered_from_the_svg_at_the_page_size(holed_box, tmp_path):
    options = DrawingOptions(png_dpi=100)
    result = render_views(open_step(holed_box), tmp_path, options=options, stem="box")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["box.png", "box.svg", "box.thumb.png"]
    png = pymupdf.Pixmap(str(result["files"]["png"]))
    assert (png.width, png.height) == result["png_size"]
    assert result["png_size"][0] == pytest.approx(297 / 25.4 * 100, abs=1.5)
    assert result["png_dpi"] == pytest.approx(100)


def test_mesh_only_model_is_drawn_from_its_triangles(holed_box, tmp_path):
    stl = tmp_path / "box.stl"
    write_stl(open_step(holed_box), stl, 0.05, 0.3, 10**7)
    result = render_views(open_model(stl), tmp_path)
    visible, _ = view_points(result["files"]["svg"], "front")
    assert visible.max(axis=0) - visible.min(axis=0) == pytest.approx((100, 20), abs=0.3)
    low, high = visible.min(axis=0), visible.max(axis=0)
    # Feature edges only: the flat faces' triangle diagonals and the hole stay out of the view.
    assert distance_to_rectangle_outline(visible, low, high).max() < 0.3


def test_bad_formats_are_refused(holed_box, tmp_path):
    with pytest.raises(ValueError, match="formats"):
        render_views(open_step(holed_box), tmp_path, formats=("pdf",))


@pytest.mark.parametrize(
    "fit, expected", [(1.32, 1.0), (0.3, 0.2), (0.0049, 0.002), (7.0, 5.0), (2.0, 2.0), (1e-4, 1e-4)]
)
def test_iso_scale_picks_the_largest_standard_scale_that_fits(fit, expected):
    assert iso_scale(fit) == pytest.approx(expected)


def test_silhouettes_of_a_coarsely_meshed_cylinder_are_drawn(tmp_path):
    path = tmp_path / "cylinder.step"
    cq.exporters.export(cq.Workplane().cylinder(50, 20), str(path), "STEP")
    loaded = open_step(path)
    mesh_model(loaded, 5.0, 1.0)  # an STL made under a tight cap leaves a mesh this coarse
    # The mesh turns ~28 degrees between facets, more than this feature angle (which is about
    # creases of mesh-only models): the side's silhouette must not depend on it.
    result = render_views(loaded, tmp_path, formats=("svg",), options=DrawingOptions(feature_angle_deg=15))
    visible, _ = view_segments(result["files"]["svg"], "front")
    vertical = visible[(np.abs(visible[:, 0, 0] - visible[:, 1, 0]) < 0.05)]
    lengths = np.abs(vertical[:, 0, 1] - vertical[:, 1, 1])
    # The outline of the side: two long vertical lines (however many pieces), left and right.
    xs = vertical[:, 0, 0]
    assert lengths[xs < xs.mean()].sum() > 45 and lengths[xs > xs.mean()].sum() > 45
