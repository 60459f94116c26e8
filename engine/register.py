"""The drawing register: one row per 2D drawing of the catalog, as `OUT/register.csv`,
`OUT/register.xlsx` and the page `OUT/docs/register.html`.

Rows are in drawing-number order (natural: D-2 before D-10; drawings without a number after,
by file name), failed drawings included with their reason. Columns: the title-block fields
(title, drawing number, revision, date, drawn by, scale, sheet, project, material, and any a
custom `[title_block]` tag map adds), format, page size (the paper set up in the layout of the
first sheet: A1, ANSI D, or width x height in mm), sheets (pages in the PDF set), status, BOM
rows and symbols, warnings, the error of a failed drawing; links to the first sheet's PDF, the
datasheet, the set's PDF and the drawing's BOM export; its path, source root, when it was
processed and its content hash. Links are relative to the file that holds them.

The date is a date where the title block's text reads as one without doubt (2024-05-01,
01.05.2024, 1 May 2024, 05/13/2024; 05/06/2024 is ambiguous and stays text, as does anything
else): a date cell in the XLSX, ISO 8601 in the CSV. The three files are written again only
when a row changed.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from converters.spreadsheet import Column, Link, Table, write_csv, write_xlsx
from engine.docs import datasheet_path, register_page_fingerprint, write_register_page
from engine.library import Built, Drawing, DrawingSet, Library, State, fingerprint

VERSION = "1"
CSV_FILE = "register.csv"
XLSX_FILE = "register.xlsx"
PAGE_FILE = "docs/register.html"
_LABELS = {
    "drawing_number": "Drawing number",
    "title": "Title",
    "revision": "Revision",
    "date": "Date",
    "drawn_by": "Drawn by",
    "scale": "Scale",
    "sheet": "Sheet",
    "project": "Project",
    "material": "Material",
}
_FIRST_FIELDS = ["drawing_number", "title", "revision", "date", "drawn_by", "scale", "sheet", "project", "material"]
_TAIL = [
    Column("format", "Format"),
    Column("page_size", "Page size"),
    Column("sheets", "Sheets", "int"),
    Column("status", "Status"),
    Column("bom_rows", "BOM rows", "int"),
    Column("symbols", "Symbols", "int"),
    Column("warnings", "Warnings", "int"),
    Column("error", "Error"),
    Column("pdf", "PDF", "link"),
    Column("datasheet", "Datasheet", "link"),
    Column("set", "Set", "link"),
    Column("bom", "BOM", "link"),
    Column("path", "Path"),
    Column("source_root", "Source root"),
    Column("processed_at", "Processed (UTC)", "datetime"),
    Column("sha256", "SHA-256"),
]


def register_columns(fields: list[str]) -> list[Column]:
    ordered = [f for f in _FIRST_FIELDS if f in fields] + [f for f in fields if f not in _FIRST_FIELDS]
    columns = [Column(f, _LABELS.get(f, f), "date" if f == "date" else "text") for f in ordered]
    return columns + _TAIL


def register_rows(
    library: Library, set_of: Mapping[str, DrawingSet], links: Mapping[str, Mapping[str, str]], root: str = ""
) -> list[dict[str, Any]]:
    """The register's rows; `root` leads from the file holding them to OUT."""
    rows = []
    for drawing in sorted(library.drawings, key=Drawing.order):
        linked = links.get(drawing.location, {})
        drawing_set = set_of.get(drawing.location)
        pdf = next((s.files.get("pdf") or s.files.get("svg") for s in drawing.sheets), None)
        row: dict[str, Any] = dict(drawing.fields)
        row["date"] = parse_date(drawing.fields.get("date"))
        row.update(
            format=drawing.format,
            page_size=drawing.page_size,
            sheets=len(drawing.sheets) if drawing.status == "ok" else None,
            status=drawing.status,
            bom_rows=drawing.bom_rows,
            symbols=drawing.bom_symbols,
            warnings=drawing.warnings,
            error=drawing.error,
            pdf=_link(root, pdf),
            datasheet=_link(root, datasheet_path(drawing.sha256), "datasheet")
            if drawing.status == "ok" and drawing.sha256
            else None,
            set=_link(root, linked.get("set"), drawing_set.label if drawing_set else None),
            bom=_link(root, linked.get("bom")),
            path=drawing.path,
            source_root=drawing.source_root,
            processed_at=drawing.processed_at,
            sha256=drawing.sha256,
        )
        rows.append(row)
    return rows


def build_register(
    library: Library,
    set_of: Mapping[str, DrawingSet],
    links: Mapping[str, Mapping[str, str]],
    state: State,
    built: Built,
) -> None:
    columns = register_columns(library.title_fields)
    rows = register_rows(library, set_of, links)
    key = fingerprint(VERSION, [c.key for c in columns], [{k: _key_value(v) for k, v in r.items()} for r in rows])
    page_key = fingerprint(key, register_page_fingerprint())
    stale = [not state.fresh(CSV_FILE, key), not state.fresh(XLSX_FILE, key), not state.fresh(PAGE_FILE, page_key)]
    if not any(stale):
        built.unchanged += 1
        return
    table = Table("Register", columns, rows)
    out = library.out
    if stale[0]:
        write_csv(out / CSV_FILE, table)
        built.written.append(CSV_FILE)
    if stale[1]:
        write_xlsx(out / XLSX_FILE, [table], title="Drawing register")
        built.written.append(XLSX_FILE)
    if stale[2]:
        page_rows = register_rows(library, set_of, links, root="../")
        write_register_page(Path(out), Table("Register", columns, page_rows))
        built.written.append(PAGE_FILE)
    state.made(CSV_FILE, key)
    state.made(XLSX_FILE, key)
    state.made(PAGE_FILE, page_key)


def _link(root: str, relative: str | None, text: str | None = None) -> Link | None:
    if not relative:
        return None
    return Link(root + relative, text or relative.rsplit("/", 1)[-1])


def _key_value(value: Any) -> Any:
    if isinstance(value, Link):
        return [value.target, value.text]
    return value


# Dates as title blocks write them.
_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("jan", "january", "januar", "janv", "janvier"),
            ("feb", "february", "februar", "fev", "fevr", "fevrier", "feb."),
            ("mar", "march", "marz", "maerz", "mars", "mär", "märz"),
            ("apr", "april", "avr", "avril"),
            ("may", "mai"),
            ("jun", "june", "juni", "juin"),
            ("jul", "july", "juli", "juil", "juillet"),
            ("aug", "august", "aout", "août"),
            ("sep", "sept", "september", "septembre"),
            ("oct", "october", "okt", "oktober", "octobre"),
            ("nov", "november", "novembre"),
            ("dec", "december", "dez", "dezember", "decembre", "déc", "décembre"),
        ],
        start=1,
    )
    for name in names
}
_YMD = re.compile(r"^(\d{4})[-./](\d{1,2})[-./](\d{1,2})$")
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_DMY_DOTS = re.compile(r"^(\d{1,2})\.\s?(\d{1,2})\.\s?(\d{2}|\d{4})$")
_NUMERIC = re.compile(r"^(\d{1,2})[/-](\d{1,2})[/-](\d{2}|\d{4})$")
_DAY_MONTH_YEAR = re.compile(r"^(\d{1,2})\.?[\s-]+([^\W\d_]+)\.?[\s,-]+(\d{2}|\d{4})$")
_MONTH_DAY_YEAR = re.compile(r"^([^\W\d_]+)\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})$")


def parse_date(text: str | None) -> dt.date | str | None:
    """The date a title block states, or its text when it is not one beyond doubt (see module doc)."""
    if not text:
        return None
    value = text.strip()
    for pattern, order in ((_YMD, "ymd"), (_COMPACT, "ymd"), (_DMY_DOTS, "dmy")):
        match = pattern.match(value)
        if match:
            return _date(match, order) or text
    match = _NUMERIC.match(value)
    if match:  # 05/13/2024 (US) or 13/05/2024: only when one of them cannot be a month
        first, second = int(match[1]), int(match[2])
        if first > 12 >= second:
            return _date(match, "dmy") or text
        if second > 12 >= first:
            return _date(match, "mdy") or text
        if first == second:
            return _date(match, "dmy") or text
        return text
    for pattern, order in ((_DAY_MONTH_YEAR, "dMy"), (_MONTH_DAY_YEAR, "Mdy")):
        match = pattern.match(value)
        if match:
            return _date(match, order) or text
    return text


def _date(match: re.Match, order: str) -> dt.date | None:
    parts = dict(zip(order, match.groups()))
    try:
        if "M" in parts:
            month = _MONTHS.get(parts["M"].casefold().rstrip("."))
            if month is None:
                return None
        else:
            month = int(parts["m"])
        year = int(parts["y"])
        if year < 100:  # 24 -> 2024, 85 -> 1985
            year += 2000 if year < 70 else 1900
        return dt.date(year, month, int(parts["d"]))
    except ValueError:
        return None
