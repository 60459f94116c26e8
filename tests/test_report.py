"""Revision diffs, thumbnails, the gallery and the report's "What changed": the pure functions
on known records and renders, then two real batches (Prefect's test harness) over a library
where one drawing's revision attribute and one line change, with a real webhook receiver, and
the pages in a real headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

import ezdxf
import numpy as np
import pandas as pd
import pymupdf
import pytest

from converters.dxf_render import render_dxf
from converters.overlay import Window, open_page, overlay
from converters.placement import THUMBNAIL_PX
from engine.catalog import CHANGE_COLUMNS
from engine.revision_diff import Revision, bom_changes, compare_records, pending_revisions
from tests.conftest import REPO
from tests.docs_drawings import broken_drawing, pump_drawing
from tests.test_browser import assert_not_blank, browser  # noqa: F401 (the fixture)
from tests.test_docs import Page, assert_links_resolve, page
from tests.test_webhooks import SECRET, Receiver

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


# Two real batches: a drawing gets a new revision and one line moves.

OLD_LINE, NEW_Y = ((60.0, 60.0), (140.0, 60.0)), 90.0


def revise(path: Path) -> dict:
    """REV B -> C in the title block and the horizontal line moved up; returns where the
    changes are (drawing units) as the test expects them."""
    doc = ezdxf.readfile(path)
    msp = doc.modelspace()
    [line] = [e for e in msp.query("LINE") if tuple(e.dxf.start)[:2] == OLD_LINE[0]]
    line.dxf.start, line.dxf.end = (60, NEW_Y), (140, NEW_Y)
    [title] = [e for e in msp.query("INSERT") if e.dxf.name == "TITLE_BLOCK"]
    rev = title.get_attrib("REV")
    rev.dxf.text = "C"
    doc.saveas(path)
    x, y, height = rev.dxf.insert.x, rev.dxf.insert.y, rev.dxf.height
    return {"rev_box": (x - 1, y - 1, x + 3 * height, y + 2 * height)}


@pytest.fixture(scope="module")
def revised(tmp_path_factory, prefect_harness):
    from flows.batch import batch

    lib, out = tmp_path_factory.mktemp("lib"), tmp_path_factory.mktemp("out")
    pump_drawing(lib / "pump.dxf")
    shutil.copy2(REPO / "data" / "samples" / "gear.dxf", lib / "gear.dxf")
    (lib / "sub").mkdir()
    shutil.copy2(REPO / "data" / "samples" / "viewports_vp4.dxf", lib / "sub" / "viewports_vp4.dxf")
    broken_drawing(lib / "broken.dxf")
    config = tmp_path_factory.mktemp("config") / "cadpipe.toml"
    os.environ["CADPIPE_TEST_SECRET"] = SECRET
    with Receiver(SECRET) as receiver:
        hooks = json.dumps([receiver.url])
        config.write_text(
            f'[webhooks]\nbatch_failed = {hooks}\nbatch_completed = {hooks}\nsecret_env = "CADPIPE_TEST_SECRET"\n'
        )
        runs = []
        for step in ("first", "second"):
            if step == "second":
                where = revise(lib / "pump.dxf")
            state = batch(sources=[str(lib)], out=str(out), config=str(config), workers=2, return_state=True)
            runs.append(state.result(raise_on_failure=False))
    return {"lib": lib, "out": out, "runs": runs, "where": where, "hooks": [r["body"] for r in receiver.requests]}


def test_a_new_revision_gives_one_changes_row_and_nothing_else(revised):
    out, second = revised["out"], revised["runs"][1]
    files = pd.read_parquet(out / "catalog" / "files.parquet").set_index("path")
    changes = pd.read_parquet(out / "catalog" / "changes.parquet")
    assert list(changes.columns) == CHANGE_COLUMNS
    [row] = changes.to_dict("records")
    assert (row["path"], row["run_id"]) == ("pump.dxf", second["run_id"])
    assert row["sha256_after"] == files.loc["pump.dxf", "sha256"]
    assert row["sha256_before"] == files.loc["pump.dxf", "previous_sha256"] != row["sha256_after"]
    assert json.loads(row["title_changes"]) == {"revision": ["B", "C"]}
    counts = {k: row[k] for k in CHANGE_COLUMNS if k.startswith(("bom_", "layers_", "entity_"))}
    assert set(counts.values()) == {0}, f"flagged beyond the revision and the line: {counts}"
    assert row["compared"] and row["layouts_changed"] == 1 and row["note"] is None
    assert row["summary"] == "revision 'B' -> 'C'; drawing changed in Model"
    assert files.loc[["gear.dxf", "sub/viewports_vp4.dxf"], "previous_sha256"].isna().all()
    assert (second["processed"], second["unchanged"]) == (1, 2)


def test_the_overlay_is_red_and_green_where_the_line_moved_and_at_the_revision(revised):
    out = revised["out"]
    [row] = pd.read_parquet(out / "catalog" / "changes.parquet").to_dict("records")
    [overlay_path] = row["overlays"]
    png = (out / overlay_path).read_bytes()
    diff = json.loads((out / row["diff"]).read_text())
    [model] = diff["layouts"]
    assert model["layout"] == "Model" and model["overlay"] == overlay_path
    window = Window(**model["window"])
    (x0, y0), (x1, _) = OLD_LINE
    rev = revised["where"]["rev_box"]

    def explained(points: np.ndarray, line_y: float) -> np.ndarray:
        on_line = (abs(points[:, 1] - line_y) < 1.5) & (points[:, 0] > x0 - 1.5) & (points[:, 0] < x1 + 1.5)
        at_rev = (points[:, 0] > rev[0]) & (points[:, 0] < rev[2]) & (points[:, 1] > rev[1]) & (points[:, 1] < rev[3])
        return on_line, at_rev

    letter = 0
    for colour, line_y in ((RED, y0), (GREEN, NEW_Y)):
        points = drawing_points(colour_mask(png, colour), window)
        on_line, at_rev = explained(points, line_y)
        assert on_line.sum() > 100, f"{colour}: hardly anything on the line at y={line_y}"
        assert (on_line | at_rev).all(), f"{colour} pixels elsewhere: {points[~(on_line | at_rev)][:5]}"
        letter += at_rev.sum()
    assert letter, "the revision letter (B -> C) shows no change"  # C may lie within B's strokes
    assert any(abs(box[1] - y0) < 1.5 and abs(box[3] - y0) < 1.5 for box in model["removed_regions"])
    assert any(abs(box[1] - NEW_Y) < 1.5 and abs(box[3] - NEW_Y) < 1.5 for box in model["added_regions"])


def test_a_rerun_records_no_change_again(revised, tmp_path):
    from flows.batch import batch

    out = revised["out"]
    state = batch(sources=[str(revised["lib"])], out=str(out), workers=2, return_state=True)
    assert state.result(raise_on_failure=False)["changes"] == []
    assert len(pd.read_parquet(out / "catalog" / "changes.parquet")) == 1


def test_the_webhook_lists_the_changed_drawings(revised):
    first, second = [h for h in revised["hooks"] if h["event"].startswith("batch.")]
    assert first["changes"] == []
    [change] = second["changes"]
    assert (change["path"], change["title_changes"]) == ("pump.dxf", {"revision": ["B", "C"]})
    assert change["summary"].startswith("revision 'B' -> 'C'") and change["layouts_changed"] == 1
    assert all(Path(p).is_file() for p in change["overlays"]) and Path(change["diff"]).is_file()


def run_page(revised) -> Path:
    """The second run's report (a later test runs the batch once more: the index moves on)."""
    return revised["out"] / "docs" / "runs" / f"{revised['runs'][1]['run_id']}.html"


def test_the_report_says_what_changed_with_the_overlay(revised):
    out, second = revised["out"], revised["runs"][1]
    index = run_page(revised)
    text = "".join(page(index).text)
    assert "What changed" in text and "revision 'B' -> 'C'" in text
    links = page(index).links
    assert any(link.endswith(".png") and "/changes/" in link for link in links)
    assert any("outputs/" in link and link.endswith(".thumb.png") for link in links)
    for doc in second["documents"][:3]:
        assert_links_resolve(out / doc, out)


# The pages in a real browser.


def visible_cards(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [
        c.find_element(By.TAG_NAME, "h3").text
        for c in driver.find_elements(By.CSS_SELECTOR, "article.card")
        if c.is_displayed()
    ]


def assert_page_resolves(driver) -> None:
    """Every link and image of the page as the browser resolved it is a file; images decoded."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    targets = [a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "a[href]")]
    images = driver.find_elements(By.TAG_NAME, "img")
    targets += [img.get_attribute("src") for img in images]
    assert targets
    for target in targets:
        parts = urlsplit(target)
        assert parts.scheme == "file", target
        assert Path(unquote(parts.path)).is_file(), f"{target} does not resolve"
    for img in images:
        driver.execute_script("arguments[0].scrollIntoView()", img)
        WebDriverWait(driver, 10).until(
            lambda d, img=img: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img),
            f"image not decoded: {img.get_attribute('src')}",
        )


def console_errors(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_gallery_in_the_browser_filters_and_searches(browser, revised):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser.get((revised["out"] / "docs" / "gallery.html").as_uri())
    assert browser.title == "cadpipe gallery"
    assert browser.find_element(By.ID, "controls").is_displayed(), "the page's script did not run"
    assert visible_cards(browser) == ["broken.dxf", "gear.dxf", "pump.dxf", "viewports_vp4.dxf"], "failures first"
    [failed] = browser.find_elements(By.CSS_SELECTOR, "article.card.failed")
    assert "InputError" in failed.text and "broken.dxf" in failed.text
    assert "changed" in browser.find_element(By.CSS_SELECTOR, "article.card[data-sha] .changed").text
    assert_page_resolves(browser)
    assert console_errors(browser) == []
    shot = browser.get_screenshot_as_png()
    assert_not_blank(shot, "the gallery")
    thumb = browser.find_element(By.CSS_SELECTOR, "#drawing-cards img.thumb")
    assert_not_blank(thumb.screenshot_as_png, "a thumbnail in the gallery")

    status, folder = Select(browser.find_element(By.ID, "status")), Select(browser.find_element(By.ID, "folder"))
    status.select_by_value("failed")
    assert visible_cards(browser) == ["broken.dxf"]
    status.select_by_value("ok")
    assert visible_cards(browser) == ["gear.dxf", "pump.dxf", "viewports_vp4.dxf"]
    folder.select_by_value("sub")
    assert visible_cards(browser) == ["viewports_vp4.dxf"]
    status.select_by_value("")
    folder.select_by_value("")

    box = browser.find_element(By.ID, "search")
    box.send_keys("hex bolt")  # an attribute value of the pump's BOLT inserts
    WebDriverWait(browser, 10).until(lambda d: visible_cards(d) == ["pump.dxf"])
    hits = browser.find_element(By.CSS_SELECTOR, "article.card:not([hidden]) ul.hits").text
    assert "Hex bolt M8" in hits and "ATTRIB DESC" in hits
    box.clear()
    box.send_keys("no such words anywhere")
    WebDriverWait(browser, 10).until(lambda d: visible_cards(d) == [])
    assert browser.find_element(By.ID, "no-match").is_displayed()


def test_report_in_the_browser_shows_thumbnails_and_the_overlay(browser, revised):  # noqa: F811
    from selenium.webdriver.common.by import By

    browser.get(run_page(revised).as_uri())
    assert_page_resolves(browser)
    thumbs = browser.find_elements(By.CSS_SELECTOR, "#drawings-table img.thumb")
    assert len(thumbs) == 3  # every ok drawing; the failed one has none
    overlay_image = browser.find_element(By.CSS_SELECTOR, "section.change img.overlay")
    browser.execute_script("arguments[0].scrollIntoView()", overlay_image)
    shot = pymupdf.Pixmap(overlay_image.screenshot_as_png)  # as shown: scaled down, blended
    rgb = np.frombuffer(shot.samples, dtype=np.uint8).reshape(shot.height, shot.width, shot.n)[..., :3].astype(int)
    reddish = (rgb[..., 0] - np.maximum(rgb[..., 1], rgb[..., 2])) > 60
    greenish = (rgb[..., 1] - np.maximum(rgb[..., 0], rgb[..., 2])) > 40
    assert reddish.sum() > 50 and greenish.sum() > 50, "the overlay on the page shows no red and green"
    assert browser.find_elements(By.TAG_NAME, "script") == [], "the report runs no script"
    browser.find_element(By.ID, "gallery-link").click()
    assert browser.title == "cadpipe gallery"
