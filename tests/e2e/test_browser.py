"""The batch report and a datasheet in a real headless browser (Debian's chromium + chromedriver,
installed by .ci/run), opened from disk as a person would: DOM, images and screenshots."""

from __future__ import annotations

import shutil
from pathlib import Path

import pymupdf
import pytest

from tests.conftest import REPO
from tests.docs_drawings import SCRIPT, pump_drawing

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def pixels(png: bytes) -> tuple[float, float]:
    """(variance of the grey levels, share of dark pixels) of a PNG: 0 and 0 for a blank page."""
    image = pymupdf.Pixmap(png)
    grey = pymupdf.Pixmap(pymupdf.csGRAY, image).samples
    values = grey[:: max(1, len(grey) // 400_000)]
    mean = sum(values) / len(values)
    variance = sum((v - mean) ** 2 for v in values) / len(values)
    return variance, sum(v < 128 for v in values) / len(values)


def assert_not_blank(png: bytes, what: str) -> None:
    variance, dark = pixels(png)
    assert variance > 50 and dark > 0.001, f"{what} looks blank (variance {variance:.1f}, dark {dark:.4f})"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: apt-get install -y chromium chromium-driver (CI installs them)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        pytest.fail(f"selenium is not installed ({exc}): it is a test dependency")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1600",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    # The driver named explicitly: Selenium Manager must not look for (or download) one.
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def documents(tmp_path_factory, prefect_harness):
    from flows.batch import batch

    lib = tmp_path_factory.mktemp("lib")
    pump_drawing(lib / "pump.dxf")
    for name in ("gear.dxf", "viewports_vp4.dxf"):
        shutil.copy2(REPO / "data" / "samples" / name, lib / name)
    out = tmp_path_factory.mktemp("out")
    state = batch(sources=[str(lib)], out=str(out), workers=2, return_state=True)
    summary = state.result(raise_on_failure=False)
    assert state.is_completed(), state.message
    return {"out": out, "summary": summary, "shots": tmp_path_factory.mktemp("screenshots")}


def cells(driver, selector: str) -> list[list[str]]:
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, f"{selector} tbody tr")
    return [[td.text for td in row.find_elements(By.TAG_NAME, "td")] for row in rows]


def assert_no_script_ran(driver) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    assert driver.find_elements(By.TAG_NAME, "script") == []
    with pytest.raises(NoAlertPresentException):
        _ = driver.switch_to.alert.text


def test_batch_report_in_the_browser(browser, documents):
    from selenium.webdriver.common.by import By

    index = documents["out"] / "docs" / "index.html"
    browser.get(index.as_uri())
    assert browser.title == f"cadpipe run {documents['summary']['run_id']}"
    drawings = cells(browser, "#drawings-table")
    assert sorted(row[0] for row in drawings) == ["gear.dxf", "pump.dxf", "viewports_vp4.dxf"]
    assert all(row[1] == "ok" and row[-1] == "datasheet" for row in drawings)
    rollup = {row[0]: row for row in cells(browser, "#rollup-table")}
    assert set(rollup) == {"B-100", "N-200", "W-300"}
    assert rollup["B-100"][2:4] == ["1", "6"] and rollup["N-200"][1] == SCRIPT
    assert [row[0] for row in cells(browser, "#slowest-table")] != []
    links = browser.find_elements(By.CSS_SELECTOR, "a.datasheet")
    assert len(links) == 3 and all(link.get_attribute("href").startswith("file://") for link in links)
    assert_no_script_ran(browser)
    shot = browser.get_screenshot_as_png()
    (documents["shots"] / "index.png").write_bytes(shot)
    assert_not_blank(shot, "the batch report")


def test_datasheet_in_the_browser_shows_preview_and_bom(browser, documents):
    from selenium.webdriver.common.by import By

    browser.get((documents["out"] / "docs" / "index.html").as_uri())
    [row] = [
        r for r in browser.find_elements(By.CSS_SELECTOR, "#drawings-table tbody tr") if r.text.startswith("pump.dxf")
    ]
    row.find_element(By.CSS_SELECTOR, "a.datasheet").click()  # navigate as a reader would
    assert browser.find_element(By.TAG_NAME, "h1").text == "pump.dxf"

    image = browser.find_element(By.ID, "preview-image")
    loaded = browser.execute_script(
        "return [arguments[0].complete, arguments[0].naturalWidth, arguments[0].naturalHeight]", image
    )
    assert loaded[0] is True and loaded[1] > 0 and loaded[2] > 0, f"preview not loaded: {loaded}"
    assert image.get_attribute("src").endswith("/model.png")

    bom = cells(browser, "#bom-table")
    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#bom-table thead th")]
    column = {name: i for i, name in enumerate(headers)}
    assert sorted(r[column["part_number"]] for r in bom) == ["B-100", "B-100", "N-200", "W-300"]
    [nut] = [r for r in bom if r[column["part_number"]] == "N-200"]
    assert nut[column["description"]] == SCRIPT and nut[column["qty"]] == "3"
    title = [
        [tr.find_element(By.TAG_NAME, "th").text, tr.find_element(By.TAG_NAME, "td").text]
        for tr in browser.find_elements(By.CSS_SELECTOR, "#title-table tr")
    ]
    assert {"Title": "Pump housing", "Drawing number": "D-42", "Drawn by": "<b>eve</b>"}.items() <= dict(title).items()
    assert_no_script_ran(browser)

    shot = browser.get_screenshot_as_png()
    (documents["shots"] / "datasheet.png").write_bytes(shot)
    assert_not_blank(shot, "the datasheet")
    preview_shot = image.screenshot_as_png
    (documents["shots"] / "preview.png").write_bytes(preview_shot)
    assert_not_blank(preview_shot, "the preview image on the page")
    table = browser.find_element(By.ID, "bom-table")
    browser.execute_script("arguments[0].scrollIntoView()", table)
    table_shot = table.screenshot_as_png
    (documents["shots"] / "bom.png").write_bytes(table_shot)
    assert_not_blank(table_shot, "the BOM table")
