"""Datasheets, batch report and BOM roll-ups: the pure functions on known rows (a real batch under
Prefect's test harness: tests/e2e/test_docs_batch.py)."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pandas as pd

from converters.datasheet import (
    BatchReport,
    LayoutOutputs,
    OutputLink,
    ReportEntry,
    ReportFailure,
    build_datasheet,
    href,
    preview,
    render_datasheet,
    render_report,
)
from engine.rollups import ROLLUP_COLUMNS, WHERE_USED_COLUMNS, bom_rollup, where_used
from tests.docs_drawings import SCRIPT


class Page(HTMLParser):
    """Tags, text and link targets of an HTML page, as a browser's parser sees them."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.links: list[str] = []
        self.meta: dict[str, str] = {}
        self.rows: dict[str, int] = {}  # body rows per table id
        self._tables: list[str] = []
        self._in_body = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        self.links += [attrs[a] for a in ("href", "src") if attrs.get(a)]
        if tag == "table":
            self._tables.append(attrs.get("id") or "")
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body and self._tables:
            self.rows[self._tables[-1]] = self.rows.get(self._tables[-1], 0) + 1
        if tag == "meta" and "name" in attrs:
            self.meta[attrs["name"]] = attrs.get("content", "")
        for name, value in attrs.items():
            assert not name.startswith("on"), f"event handler attribute {name}={value!r}"

    def handle_endtag(self, tag):
        if tag == "table" and self._tables:
            self._tables.pop()
        elif tag == "tbody":
            self._in_body = False

    def handle_data(self, data):
        self.text.append(data)


def page(path: Path) -> Page:
    return Page(path.read_text(encoding="utf-8"))


def assert_links_resolve(path: Path, out: Path) -> None:
    """Every link and image of a page points at a file inside the output folder."""
    for link in page(path).links:
        parts = urlsplit(link)
        assert not parts.scheme and not parts.netloc, f"{path.name}: absolute link {link}"
        target = (path.parent / unquote(parts.path)).resolve()
        assert target.is_relative_to(out.resolve()), f"{path.name}: {link} leaves the output folder"
        assert target.is_file(), f"{path.name}: {link} -> {target} does not exist"


# Roll-ups on known rows.


def bom_frame(*rows: tuple) -> pd.DataFrame:
    columns = ["sha256", "part_number", "description", "qty", "unit", "insert_count"]
    return pd.DataFrame([dict(zip(columns, r)) for r in rows], columns=columns)


def test_bom_rollup_sums_the_same_part_number_per_drawing():
    bom = bom_frame(
        ("a", "B-100", "Bolt", 4.0, None, 1),
        ("a", "B-100", None, 2.0, None, 2),
        ("a", "N-200", "Nut", None, None, 1),  # QTY "AR"
        ("a", "N-200", "Nut", 3.0, None, 1),
        ("a", "C-1", "Cable", 2.5, "m", None),  # from a parts-list table: no inserts
        ("a", "C-1", "Cable", 4.0, "pcs", None),  # another unit: not added to metres
        ("a", None, "no part number", 7.0, None, 1),
        ("b", "B-100", "Bolt", 10.0, None, 5),
    )
    got = bom_rollup(bom)
    assert list(got.columns) == ROLLUP_COLUMNS
    rows = {(r["sha256"], r["part_number"], r["unit"]): r for r in got.to_dict("records")}
    assert set(rows) == {
        ("a", "B-100", None),
        ("a", "N-200", None),
        ("a", "C-1", "m"),
        ("a", "C-1", "pcs"),
        ("b", "B-100", None),
    }
    bolt = rows[("a", "B-100", None)]
    assert (bolt["total_qty"], bolt["rows"], bolt["qty_unknown"], bolt["inserts"], bolt["description"]) == (
        6.0,
        2,
        0,
        3.0,
        "Bolt",
    )
    nut = rows[("a", "N-200", None)]
    assert (nut["total_qty"], nut["rows"], nut["qty_unknown"]) == (3.0, 2, 1)
    assert rows[("a", "C-1", "m")]["total_qty"] == 2.5 and pd.isna(rows[("a", "C-1", "m")]["inserts"])
    assert rows[("b", "B-100", None)]["total_qty"] == 10.0


def test_rollup_quantity_stays_unknown_when_no_row_states_one():
    got = bom_rollup(bom_frame(("a", "X", None, None, None, 1), ("a", "X", None, None, None, 1)))
    [row] = got.to_dict("records")
    assert pd.isna(row["total_qty"]) and row["qty_unknown"] == 2 and row["rows"] == 2


def test_where_used_counts_paths_and_adds_each_content_once():
    rollup = bom_rollup(
        bom_frame(
            ("a", "B-100", "Bolt", 6.0, None, 2),
            ("b", "B-100", "Bolt", 10.0, None, 1),
            ("b", "F-9", None, 2.0, None, 1),
            ("gone", "B-100", "Bolt", 99.0, None, 1),
        )
    )
    files = pd.DataFrame(
        [
            {"source_root": "/lib", "path": "pump.dxf", "sha256": "a", "status": "ok"},
            {"source_root": "/lib", "path": "copy/pump.dxf", "sha256": "a", "status": "ok"},
            {"source_root": "/lib", "path": "frame.dxf", "sha256": "b", "status": "ok"},
            {"source_root": "/lib", "path": "bad.dxf", "sha256": "gone", "status": "failed"},
        ]
    )
    got = where_used(rollup, files)
    assert list(got.columns) == WHERE_USED_COLUMNS
    assert list(got["part_number"]) == ["B-100", "F-9"]  # most used first
    bolt = got.iloc[0]
    assert list(bolt["paths"]) == ["/lib/copy/pump.dxf", "/lib/frame.dxf", "/lib/pump.dxf"]
    assert (bolt["drawings"], bolt["contents"], bolt["total_qty"]) == (3, 2, 16.0)


def test_rollups_of_an_empty_library():
    assert bom_rollup(pd.DataFrame()).empty and list(bom_rollup(pd.DataFrame()).columns) == ROLLUP_COLUMNS
    assert bom_rollup(bom_frame(("a", None, "x", 1.0, None, 1))).empty
    assert where_used(pd.DataFrame(columns=ROLLUP_COLUMNS), pd.DataFrame()).empty


# Pages from known rows.

EVIL = '"><img src=x onerror=alert(2)>'


def evil_sheet() -> str:
    row = {
        "path": f"sub/{EVIL}#1?.dxf",
        "sha256": "f" * 64,
        "work_id": "w1",
        "format": "dxf",
        "status": "ok",
        "title": SCRIPT,
        "drawing_number": EVIL,
        "drawn_by": "<b>eve</b>",
        "warnings": [SCRIPT],
        "processed_at": "2026-01-01",
        "run_id": "r1",
        "custom_field": SCRIPT,
    }
    sheet = build_datasheet(
        row,
        paths=[f"/lib/sub/{EVIL}#1?.dxf"],
        outputs=[{"layout": SCRIPT, "format": "png", "file": "model.png", "empty": False}],
        layers=[{"name": SCRIPT, "entity_count": 1}],
        bom=[{"part_number": SCRIPT, "description": EVIL, "qty": 2.0, "attributes": json.dumps({"<i>TAG": SCRIPT})}],
    )
    return render_datasheet(sheet, key="abc123")


def test_datasheet_shows_markup_from_drawings_as_text():
    html = evil_sheet()
    parsed = Page(html)
    assert "script" not in parsed.tags and parsed.tags.count("img") == 1  # only the preview
    text = "".join(parsed.text)
    for value in (SCRIPT, EVIL, "<b>eve</b>", "<i>TAG"):
        assert value in text
    assert "<script" not in html and "<b>eve" not in html
    assert parsed.meta["cadpipe-datasheet"] == "abc123"
    assert "script-src" not in html and "default-src 'none'" in html  # CSP: no script, whatever slips through


def test_datasheet_links_are_relative_and_encoded():
    sheet = build_datasheet(
        {"path": "a.dxf", "sha256": "f" * 64, "work_id": "w 1#", "outputs": []},
        paths=["/lib/a.dxf"],
        outputs=[{"layout": "Model", "format": "svg", "file": "model.svg"}],
    )
    assert sheet.preview.href == "../../outputs/w%201%23/model.svg"
    assert sheet.result_href == "../../outputs/w%201%23/result.json"
    assert (
        href("../", "quarantine/abc-we?ird #name.dxf.error.json")
        == "../quarantine/abc-we%3Fird%20%23name.dxf.error.json"
    )


def test_preview_skips_empty_layouts_and_prefers_png():
    def group(layout, empty, *formats):
        return LayoutOutputs(layout, empty, [OutputLink(f"{layout}.{f}", f"{layout}.{f}", f) for f in formats])

    assert preview([group("model", True, "png"), group("layout-a", False, "svg", "png")]).label == "layout-a.png"
    assert preview([group("model", False, "pdf", "svg")]).label == "model.svg"
    assert preview([group("model", True, "png")]).label == "model.png"  # all empty: still show the page
    assert preview([group("model", False, "pdf")]) is None
    assert preview([]) is None


def test_3d_model_outputs_without_a_layout():
    sheet = build_datasheet(
        {"path": "m.step", "sha256": "e" * 64, "work_id": "w"},
        paths=["/lib/m.step"],
        outputs=[
            {"layout": None, "format": "stl", "file": "model.stl", "empty": False},
            {"layout": "views", "format": "png", "file": "views.png", "empty": False},
        ],
        bom=[
            {"part_number": "ASM", "qty": 1.0, "parent": None, "level": 0, "source": "3d", "block_path": "ASM"},
            {"part_number": "BOLT", "qty": 6.0, "parent": "ASM", "level": 1, "source": "3d", "block_path": "ASM/BOLT"},
        ],
    )
    assert [(g.layout, [f.label for f in g.files]) for g in sheet.outputs] == [
        ("model", ["model.stl"]),
        ("views", ["views.png"]),
    ]
    assert sheet.preview.label == "views.png"
    assert sheet.bom_columns == ["part_number", "description", "qty", "parent", "block_path", "source"]
    parsed = Page(render_datasheet(sheet))
    assert "None" not in "".join(parsed.text) and parsed.rows["bom-table"] == 2


def test_report_escapes_failures_and_links_their_error_reports():
    report = BatchReport(
        run={
            "run_id": "r1",
            "started_at": "s",
            "finished_at": "f",
            "sources": [EVIL],
            "pipeline_version": "v",
            "files_seen": 2,
            "processed": 1,
            "reused": 0,
            "unchanged": 0,
            "failed": 1,
        },
        entries=[
            ReportEntry(SCRIPT + ".dxf", "processed", "ok", title=SCRIPT, bom_rows=3, datasheet="files/x.html"),
            ReportEntry("bad.dxf", "failed", "failed", error=SCRIPT),
        ],
        failures=[
            ReportFailure(
                "bad.dxf",
                "load",
                "InputError",
                f"bad.dxf: load: {SCRIPT}",
                True,
                False,
                "../quarantine/q.error.json",
                "../quarantine/q",
            )
        ],
        slowest=[],
        where_used=[],
        where_used_total=0,
    )
    html = render_report(report)
    parsed = Page(html)
    assert "script" not in parsed.tags and "img" not in parsed.tags
    assert f"bad.dxf: load: {SCRIPT}" in "".join(parsed.text)
    assert "../quarantine/q.error.json" in parsed.links and "files/x.html" in parsed.links
