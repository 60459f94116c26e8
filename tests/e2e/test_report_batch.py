"""Two real batches (Prefect's test harness) over a library where one drawing's revision attribute
and one line change, with a real webhook receiver: the `changes` row, the overlay, the report's
"What changed", the webhook's list; then the report and the gallery in a real headless Chromium
(every link and image resolves, screenshots not blank, filters and search work)."""

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

from converters.overlay import Window
from engine.catalog import CHANGE_COLUMNS
from tests.conftest import REPO, catalog_table
from tests.docs_drawings import broken_drawing, pump_drawing
from tests.e2e.test_browser import assert_not_blank, browser  # noqa: F401 (the fixture)
from tests.unit.test_docs import assert_links_resolve, page
from tests.unit.test_report import GREEN, RED, colour_mask, drawing_points
from tests.unit.test_webhooks import SECRET, Receiver

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
    files = catalog_table(out, "files").set_index("path")
    changes = catalog_table(out, "changes")
    assert list(changes.columns) == CHANGE_COLUMNS
    [row] = changes.to_dict("records")
    assert (row["path"], row["run_id"]) == ("pump.dxf", second["run_id"])
    assert row["sha256_after"] == files.loc["pump.dxf", "sha256"]
    assert row["sha256_before"] == files.loc["pump.dxf", "previous_sha256"] != row["sha256_after"]
    assert json.loads(row["title_changes"]) == {"revision": ["B", "C"]}
    counts = {k: row[k] for k in CHANGE_COLUMNS if k.startswith(("bom_", "layers_", "entity_"))}
    assert set(counts.values()) == {0}, f"flagged beyond the revision and the line: {counts}"
    assert row["compared"] and row["layouts_changed"] == 1 and pd.isna(row["note"])  # pandas: missing text is NaN
    assert row["summary"] == "revision 'B' -> 'C'; drawing changed in Model"
    assert files.loc[["gear.dxf", "sub/viewports_vp4.dxf"], "previous_sha256"].isna().all()
    assert (second["processed"], second["unchanged"]) == (1, 2)


def test_the_overlay_is_red_and_green_where_the_line_moved_and_at_the_revision(revised):
    out = revised["out"]
    [row] = catalog_table(out, "changes").to_dict("records")
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
    assert len(catalog_table(out, "changes")) == 1


def test_the_old_revisions_detail_rows_wait_for_maintenance_and_no_reader_shows_them(revised, tmp_path):
    from engine.catalog import Catalog
    from engine.catalog_store import DETAIL_TABLES

    out = revised["out"]
    files = catalog_table(out, "files").set_index("path")
    old, new = files.loc["pump.dxf", "previous_sha256"], files.loc["pump.dxf", "sha256"]
    assert old and old != new and old not in set(files["sha256"])
    stored = catalog_table(out, "layers")  # as stored: the previous revision's rows are still there
    assert (stored["sha256"] == old).any() and (stored["sha256"] == new).any()
    catalog = Catalog(out)
    for name in (*DETAIL_TABLES, "bom_rollup"):  # cadpipe's reads, and the tables derived from them
        assert old not in set(catalog.read(name)["sha256"]), name
    catalog.export(tmp_path / "export")
    for name in DETAIL_TABLES:
        assert old not in set(pd.read_parquet(tmp_path / "export" / f"{name}.parquet")["sha256"]), name
    catalog.maintain()
    assert not (catalog_table(out, "layers")["sha256"] == old).any(), "maintenance pruned them"
    assert (catalog_table(out, "layers")["sha256"] == new).sum() == (stored["sha256"] == new).sum()


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
