"""The drawing register: OUT/register.csv, register.xlsx and docs/register.html, from a real
run of the engine over generated drawings (and one broken file), read back with openpyxl."""

from __future__ import annotations

import csv
import datetime as dt
import os
from pathlib import Path

import openpyxl
import pytest

from converters.spreadsheet import Column, Link, Table, write_csv, write_xlsx
from engine.register import parse_date
from tests.deliverable_library import PageLinks, broken_links, catalogue, titled_drawing


@pytest.fixture(scope="module")
def register(tmp_path_factory):
    root = tmp_path_factory.mktemp("register")
    lib = root / "library"
    titled_drawing(lib / "pump.dxf", "D-10", "Pump", revision="C", date="13.05.2024", project="P-7")
    titled_drawing(lib / "valve.dxf", "D-2", '=HYPERLINK("http://x")', date="05/06/2024", sheets=2)
    titled_drawing(lib / "sub" / "frame.dxf", None, "Frame", date="1 May 2024", paper=(841, 594))
    (lib / "broken.dxf").write_text("0\nSECTION\n2\nENTITIES\n0\nLINE\n8\n", encoding="ascii")
    out = root / "out"
    built = catalogue([lib], out)
    return {"lib": lib, "out": out, "built": built}


def rows_of(sheet) -> list[dict]:
    header = [c.value for c in sheet[1]]
    return [dict(zip(header, (c for c in row))) for row in sheet.iter_rows(min_row=2)]


def test_register_files_are_written(register):
    assert {"register.csv", "register.xlsx", "docs/register.html"} <= set(register["built"].written)
    assert not register["built"].problems


def test_xlsx_has_typed_cells_frozen_header_and_autofilter(register):
    book = openpyxl.load_workbook(register["out"] / "register.xlsx")
    sheet = book["Register"]
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"A1:{sheet.cell(1, sheet.max_column).column_letter}{sheet.max_row}"
    assert all(cell.font.bold for cell in sheet[1])
    rows = rows_of(sheet)
    # drawing-number order, natural (D-2 before D-10); then those without a number, by file name
    assert [r["Drawing number"].value for r in rows] == ["D-2", "D-10", None, None]
    valve, pump, broken, frame = rows
    assert pump["Date"].is_date and pump["Date"].value.date() == dt.date(2024, 5, 13)
    assert frame["Date"].value.date() == dt.date(2024, 5, 1)
    assert valve["Date"].value == "05/06/2024" and valve["Date"].data_type == "s"  # May or June: stays text
    assert pump["Sheets"].value == 1 and valve["Sheets"].value == 2 and isinstance(valve["Sheets"].value, int)
    assert pump["BOM rows"].value == 0 and pump["Symbols"].value == 0
    assert isinstance(pump["Processed (UTC)"].value, dt.datetime)
    assert (pump["Revision"].value, pump["Project"].value, pump["Status"].value) == ("C", "P-7", "ok")
    # drawing text is never a formula
    assert valve["Title"].data_type == "s" and valve["Title"].value.startswith("=HYPERLINK")
    assert frame["Page size"].value == "A1"
    assert (broken["Status"].value, broken["Format"].value) == ("failed", "dxf")
    assert "broken.dxf" in broken["Path"].value and broken["Error"].value
    assert broken["PDF"].value is None and broken["Sheets"].value is None
    # links: relative to the workbook, to files that exist
    for row in (valve, pump, frame):
        for column in ("PDF", "Datasheet", "Set"):
            target = row[column].hyperlink.target
            assert (register["out"] / target).is_file(), (column, target)
    widths = {sheet.cell(1, i).value: sheet.column_dimensions[sheet.cell(1, i).column_letter].width for i in (1, 2)}
    assert all(6 <= w <= 62 for w in widths.values())


def test_csv_has_the_same_rows(register):
    with open(register["out"] / "register.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["Drawing number"] for r in rows] == ["D-2", "D-10", "", ""]
    assert rows[1]["Date"] == "2024-05-13" and rows[0]["Date"] == "05/06/2024"
    assert rows[0]["Sheets"] == "2"
    assert (register["out"] / rows[0]["PDF"]).is_file()
    assert rows[2]["Status"] == "failed"


def test_register_page_lists_every_drawing_and_its_links_resolve(register):
    out = register["out"]
    html = PageLinks(out / "docs" / "register.html")
    assert html.body_rows == 4
    text = " ".join(html.text)
    assert "D-10" in text and "=HYPERLINK" in text and "broken.dxf" in text
    assert broken_links(out / "docs" / "register.html", out) == []
    assert "../docs/register.html" in PageLinks(out / "docs" / "index.html").links


def test_rerun_rewrites_nothing_and_a_change_rewrites_the_register(register, tmp_path):
    lib, out = register["lib"], register["out"]
    before = {name: os.stat(out / name).st_ino for name in ("register.csv", "register.xlsx", "docs/register.html")}
    again = catalogue([lib], out)
    assert not again.written and not again.removed
    assert {name: os.stat(out / name).st_ino for name in before} == before
    titled_drawing(lib / "pump.dxf", "D-10", "Pump", revision="D", date="13.05.2024", project="P-7")
    changed = catalogue([lib], out)
    assert {"register.csv", "register.xlsx", "docs/register.html"} <= set(changed.written)
    rows = rows_of(openpyxl.load_workbook(out / "register.xlsx")["Register"])
    assert rows[1]["Revision"].value == "D"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2024-05-01", dt.date(2024, 5, 1)),
        ("2024/5/1", dt.date(2024, 5, 1)),
        ("20240501", dt.date(2024, 5, 1)),
        ("01.05.2024", dt.date(2024, 5, 1)),
        ("1.5.24", dt.date(2024, 5, 1)),
        ("13/05/2024", dt.date(2024, 5, 13)),
        ("05/13/2024", dt.date(2024, 5, 13)),
        ("12-13-10", dt.date(2010, 12, 13)),
        ("07/07/2024", dt.date(2024, 7, 7)),
        ("05/06/2024", "05/06/2024"),  # May 6 or June 5
        ("1 May 2024", dt.date(2024, 5, 1)),
        ("01-MAR-2024", dt.date(2024, 3, 1)),
        ("12. März 2024", dt.date(2024, 3, 12)),
        ("March 3rd, 2024", dt.date(2024, 3, 3)),
        ("31.02.2024", "31.02.2024"),
        ("AS BUILT", "AS BUILT"),
        ("", None),
        (None, None),
    ],
)
def test_parse_date(text, expected):
    assert parse_date(text) == expected


def test_spreadsheet_cells_take_untrusted_text_as_text(tmp_path):
    table = Table(
        "T",
        [Column("text"), Column("n", kind="int"), Column("x", kind="float"), Column("link", kind="link")],
        [
            {"text": "=1+1", "n": 3, "x": 2.5, "link": Link("a b/c.pdf", "c.pdf")},
            {"text": "bell\x07 and nul\x00", "n": None, "x": float("nan"), "link": None},
            {"text": "x" * 40_000, "n": 2.0, "x": 1},
        ],
    )
    write_xlsx(tmp_path / "t.xlsx", [table])
    write_csv(tmp_path / "t.csv", table)
    sheet = openpyxl.load_workbook(tmp_path / "t.xlsx")["T"]
    assert (sheet["A2"].value, sheet["A2"].data_type) == ("=1+1", "s")
    assert sheet["A3"].value == "bell\\x07 and nul\\x00"
    assert len(sheet["A4"].value) == 32_767 and sheet["A4"].value.endswith("[cut]")
    assert (sheet["B2"].value, sheet["B3"].value, sheet["B4"].value) == (3, None, 2)
    assert sheet["C3"].value is None
    assert sheet["D2"].hyperlink.target == "a b/c.pdf" and sheet["D2"].value == "c.pdf"
    lines = (tmp_path / "t.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "text,n,x,link" and lines[1] == "=1+1,3,2.5,a b/c.pdf" and lines[2].endswith(",,,")
    assert not [p for p in Path(tmp_path).iterdir() if p.name.startswith(".")]  # no temporary left
