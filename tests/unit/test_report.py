"""Revision diffs, thumbnails and the gallery on known records and real renders of generated
drawings (no Prefect, no browser): page placement, thumbnails, overlays across page scales, the
comparison of two versions' records, which revisions are pending, the gallery's escaping."""

from __future__ import annotations

import json
from pathlib import Path

import ezdxf
import numpy as np
import pandas as pd
import pymupdf
import pytest

from converters.dxf_render import render_dxf
from converters.overlay import Window, open_page, overlay
from converters.placement import THUMBNAIL_PX
from engine.revision_diff import Revision, bom_changes, compare_records, pending_revisions
from tests.unit.test_docs import Page

RED, GREEN = (220, 0, 0), (0, 150, 0)


# Placement, thumbnails and overlays on real renders.


def frame(line_y: float, far_corner: tuple[float, float] | None = None) -> ezdxf.document.Drawing:
    doc = ezdxf.new("R2018")
    msp = doc.modelspace()
    msp.add_lwpolyline([(0, 0), (200, 0), (200, 100), (0, 100)], close=True)
    msp.add_circle((100, 50), 30)
    msp.add_line((20, line_y), (180, line_y))
    if far_corner:  # grows the extents: the page scale changes
        msp.add_point(far_corner)
    return doc


def rendered(doc, folder: Path):
    return render_dxf(doc, folder).layouts[0]


def ink(png: Path) -> np.ndarray:
    pix = pymupdf.Pixmap(pymupdf.csGRAY, pymupdf.Pixmap(str(png)))
    return np.frombuffer(pix.samples, dtype=np.uint8).reshape(pix.height, pix.stride)[:, : pix.width] < 128


def test_placement_says_where_the_drawing_lands_on_the_page(tmp_path):
    layout = rendered(frame(20), tmp_path)
    placement = layout.placement
    assert placement.extents == pytest.approx((0, 0, 200, 100))
    dark = ink(layout.files["png"])
    per_mm = layout.png_size[0] / placement.width_mm
    for x, y in ((20, 20), (180, 20), (100, 80), (0, 0), (200, 100)):  # on the line, circle, frame
        px, py = (v * per_mm for v in placement.to_page(x, y))
        window = dark[round(py) - 3 : round(py) + 4, round(px) - 3 : round(px) + 4]
        assert window.any(), f"no ink where ({x}, {y}) should be drawn"
    px, py = (round(v * per_mm) for v in placement.to_page(50, 10))  # nothing is drawn there
    assert not dark[py - 3 : py + 4, px - 3 : px + 4].any()


def test_a_thumbnail_is_the_same_page_small(tmp_path):
    layout = rendered(frame(20), tmp_path)
    thumb = pymupdf.Pixmap(str(layout.files["thumbnail"]))
    assert max(thumb.width, thumb.height) == THUMBNAIL_PX
    assert thumb.n == 1, "black on white: a grey PNG"
    assert ink(layout.files["thumbnail"]).mean() > 0.01, "hairlines stay visible at thumbnail size"


def colour_mask(png: bytes, colour: tuple[int, int, int]) -> np.ndarray:
    pix = pymupdf.Pixmap(png)
    rgb = np.frombuffer(pix.samples, dtype=np.uint8).reshape(pix.height, pix.width, pix.n)[..., :3]
    return (rgb == colour).all(axis=2)


def drawing_points(mask: np.ndarray, window: Window) -> np.ndarray:
    rows, columns = np.nonzero(mask)
    return np.column_stack([window.x0 + (columns + 0.5) / window.scale, window.y1 - (rows + 0.5) / window.scale])


@pytest.mark.parametrize("far_corner", [None, (320, 160)], ids=["same extents", "extents grew"])
def test_overlay_shows_a_moved_line_and_nothing_else(tmp_path, far_corner):
    before = rendered(frame(12), tmp_path / "a")  # below the circle, apart from it
    after = rendered(frame(70, far_corner), tmp_path / "b")
    with open_page(before.files["svg"]) as old, open_page(after.files["svg"]) as new:
        result = overlay((old, before.placement), (new, after.placement))
    red, green = colour_mask(result.png, RED), colour_mask(result.png, GREEN)
    assert red.sum() > 200 and green.sum() > 200
    for points, y in ((drawing_points(red, result.window), 12), (drawing_points(green, result.window), 70)):
        on_line = (abs(points[:, 1] - y) < 2) & (points[:, 0] > 18) & (points[:, 0] < 182)
        if far_corner and y == 70:  # the point that grew the extents is new too
            on_line |= np.hypot(points[:, 0] - far_corner[0], points[:, 1] - far_corner[1]) < 1.5
        assert on_line.all(), f"changed pixels away from the line at y={y}: {points[~on_line][:5]}"
    [removed] = result.removed_regions
    assert abs(removed[1] - 12) < 1 and abs(removed[3] - 12) < 1 and removed[0] < 21 and removed[2] > 179
    assert len(result.added_regions) == (2 if far_corner else 1)
    assert abs(result.added_regions[0][1] - 70) < 1 and abs(result.added_regions[0][3] - 70) < 1
    same = rendered(frame(12), tmp_path / "c")
    with open_page(before.files["svg"]) as old, open_page(same.files["svg"]) as new:
        unchanged = overlay((old, before.placement), (new, same.placement))
    assert (unchanged.pixels_removed, unchanged.pixels_added, unchanged.removed_regions) == (0, 0, [])


def test_overlay_of_a_layout_empty_before_is_all_added(tmp_path):
    after = rendered(frame(20), tmp_path)
    with open_page(after.files["svg"]) as new:
        result = overlay((None, None), (new, after.placement))
    assert result.pixels_removed == 0 and result.pixels_added > 500


# Comparing records.


def bom_row(handle, part, qty, **extra):
    row = {"part_number": part, "description": "Bolt", "qty": qty, "block_path": "BOLT", "handle": handle}
    row["attributes"] = json.dumps({"PART_NO": part, "QTY": str(qty)})
    return {**row, **extra}


def test_bom_rows_are_matched_by_handle_then_by_values_then_by_part_number():
    before = [bom_row("A1", "B-100", 4), bom_row("A2", "N-200", 1), bom_row(None, "W-300", 2), bom_row("A4", "X-1", 1)]
    after = [
        bom_row("A1", "B-100", 6),  # same insert, new quantity
        bom_row("B9", "N-200", 1),  # rewritten with new handles: same values
        bom_row(None, "W-300", 3),  # no handle: found by part number
        bom_row("C1", "Z-9", 1),  # new
    ]
    added, removed, changed = bom_changes(before, after)
    assert [r["part_number"] for r in added] == ["Z-9"] and [r["part_number"] for r in removed] == ["X-1"]
    assert {c.name: {f.field: (f.before, f.after) for f in c.fields} for c in changed} == {
        "B-100": {"qty": (4, 6), "attributes": ({"PART_NO": "B-100", "QTY": "4"}, {"PART_NO": "B-100", "QTY": "6"})},
        "W-300": {"qty": (2, 3), "attributes": ({"PART_NO": "W-300", "QTY": "2"}, {"PART_NO": "W-300", "QTY": "3"})},
    }


def record(revision="A", layers=(("0", 7, 3),), entities=(("Model", "LINE", 3),), bom=(), pages=("Model",)):
    return {
        "summary": {"title": "Pump", "revision": revision, "drawing_number": "D-1"},
        "tables": {
            "layers": [{"name": n, "color": c, "entity_count": k, "is_on": True} for n, c, k in layers],
            "entities": [{"layout": lay, "dxftype": t, "count": k} for lay, t, k in entities],
            "bom": list(bom),
        },
        "pages": [{"layout": name, "stem": name.lower(), "placement": None} for name in pages],
        "options": {"title_block": {"tags": {}}},
    }


def test_compare_records_names_title_layers_entities_and_layouts():
    revision = Revision("/lib", "a.dxf", "s1", "s2", "w1", "w2")
    diff = compare_records(
        revision,
        record("A", layers=(("0", 7, 3), ("OLD", 1, 0))),
        record("B", layers=(("0", 1, 4), ("NEW", 2, 1)), entities=(("Model", "LINE", 4),), pages=("Model", "Sheet")),
    )
    assert [(c.field, c.before, c.after) for c in diff.title] == [("revision", "A", "B")]
    assert (diff.layers_added, diff.layers_removed) == (["NEW"], ["OLD"])
    [layer] = diff.layers_changed
    assert layer.name == "0" and {f.field: (f.before, f.after) for f in layer.fields} == {
        "color": (7, 1),
        "entity_count": (3, 4),
    }
    assert [(c.layout, c.dxftype, c.before, c.after) for c in diff.entities] == [("Model", "LINE", 3, 4)]
    assert (diff.layouts_added, diff.layouts_removed) == (["Sheet"], [])
    nothing = compare_records(revision, record(), record())
    assert (nothing.title, nothing.bom_changed, nothing.layers_changed, nothing.entities) == ([], [], [], [])


def test_pending_revisions_follow_each_new_content_of_a_path():
    def files(sha, previous):
        row = {"source_root": "/lib", "path": "a.dxf", "status": "ok", "sha256": sha, "work_id": "w" + sha}
        return pd.DataFrame([{**row, "previous_sha256": previous, "previous_work_id": "w" + previous}])

    def changes(*pairs):
        rows = [{"source_root": "/lib", "path": "a.dxf", "sha256_before": b, "sha256_after": a} for b, a in pairs]
        return pd.DataFrame([{**r, "detected_at": f"2026-01-0{i + 1}"} for i, r in enumerate(rows)])

    assert [r.sha256_after for r in pending_revisions(files("B", "A"), pd.DataFrame())] == ["B"]
    assert pending_revisions(files("B", "A"), changes(("A", "B"))) == []  # recorded already
    assert len(pending_revisions(files("A", "B"), changes(("A", "B")))) == 1  # reverted: news
    assert len(pending_revisions(files("B", "A"), changes(("A", "B"), ("B", "A")))) == 1  # and back again
    assert pending_revisions(pd.DataFrame([{"source_root": "/lib", "path": "a.dxf"}]), pd.DataFrame()) == []


def test_a_revision_at_two_paths_is_recorded_for_each(tmp_path):
    from engine.catalog import Catalog
    from engine.revision_diff import record_changes

    out = tmp_path / "out"
    for wid, revision in (("w1", "A"), ("w2", "B")):
        (out / "outputs" / wid).mkdir(parents=True)
        (out / "outputs" / wid / "result.json").write_text(json.dumps(record(revision)), encoding="utf-8")
    rows = [
        {"source_root": "/lib", "path": p, "status": "ok", "sha256": "s2", "work_id": "w2"}
        | {"previous_sha256": "s1", "previous_work_id": "w1"}
        for p in ("a.dxf", "copy/a.dxf")
    ]
    Catalog(out).write("files", pd.DataFrame(rows))
    recorded = record_changes(out, "r1")
    assert [(r["path"], r["title_changes"]) for r in recorded] == [
        ("a.dxf", '{"revision": ["A", "B"]}'),
        ("copy/a.dxf", '{"revision": ["A", "B"]}'),  # the same diff folder, its own row
    ]
    assert record_changes(out, "r2") == []


# The gallery on known rows.

EVIL = "<script>alert(1)</script>"


def test_gallery_escapes_names_and_runs_only_its_own_scripts():
    from converters.gallery_page import render_gallery
    from engine.gallery import build_gallery

    files = pd.DataFrame(
        [
            {
                "source_root": "/lib",
                "path": f"{EVIL}/a.dxf",
                "status": "ok",
                "sha256": "s1",
                "format": "dxf",
                "title": EVIL,
                "outputs": ["outputs/w1/model.svg", "outputs/w1/model.thumb.png"],
            },
            {
                "source_root": "/lib",
                "path": "bad.dxf",
                "status": "failed",
                "sha256": "s2",
                "error_class": "InputError",
                "error_stage": "load",
                "error_message": f"bad.dxf: load: {EVIL}",
                "quarantine": "quarantine/q-bad.dxf",
            },
        ]
    )
    html = render_gallery(build_gallery(files, pd.DataFrame(), pd.DataFrame(), "r1", "search-index.js"))
    parsed = page_of(html)
    assert EVIL not in html and parsed.scripts == ["search-index.js", "gallery.js"]
    assert "../outputs/w1/model.thumb.png" in parsed.links and "../quarantine/q-bad.dxf.error.json" in parsed.links
    assert html.index("bad.dxf: load:") < html.index("a.dxf"), "failures first"


def page_of(html: str) -> Page:
    parsed = Page(html)  # also fails on any on* event handler attribute
    parsed.scripts = [link for link in parsed.links if link.endswith(".js")]
    return parsed


def test_thumbnails_put_the_modelspace_first_unless_it_is_empty():
    from engine.gallery import thumbnails

    outputs = [f"outputs/w/{stem}.{ext}" for stem in ("model", "layout-sheet-1") for ext in ("svg", "png", "thumb.png")]
    assert [(t.label, t.href) for t in thumbnails(outputs, "../")] == [
        ("Model", "../outputs/w/model.png"),
        ("sheet-1", "../outputs/w/layout-sheet-1.png"),
    ]
    assert [t.label for t in thumbnails(outputs, "../", model_empty=True)] == ["sheet-1", "Model"]
    assert thumbnails(None, "../") == [] and thumbnails(["outputs/w/model.svg"], "../") == []
