"""Typed tables as CSV and XLSX files: what a drawing office opens (registers, BOM sheets).

A :class:`Table` names its columns and their kinds; rows are mappings from column key to value.
XLSX (openpyxl) keeps the kinds: numbers as numbers, dates as dates, links as hyperlinks, text as
text, with a bold frozen header row, an autofilter over the data and column widths fitted to the
content (within limits). CSV is UTF-8 without a byte-order mark, RFC 4180 quoting, one header
row; dates in ISO 8601, links as their relative targets, empty cells for missing values.

Cell text comes from drawings and is untrusted: in XLSX a text starting with ``=`` is stored as
text, never as a formula; characters XML cannot hold are written ``\\xNN``; text longer than a
cell holds (32,767 characters) is cut and ends with ``[cut]``. CSV keeps the text as it is (it
is data for programs; open the XLSX in a spreadsheet program).

Both writers write a temporary file beside the target and rename it into place.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from documents.atomic import atomic_path

if TYPE_CHECKING:
    from openpyxl import Workbook

KINDS = ("text", "int", "float", "date", "datetime", "bool", "link")
XLSX_CELL_LIMIT = 32_767
_CUT = " [cut]"
_MIN_WIDTH, _MAX_WIDTH = 6, 60
_DATE_FORMAT = "yyyy-mm-dd"
_DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"


@dataclass(frozen=True)
class Column:
    key: str
    label: str = ""  # header text; the key when empty
    kind: str = "text"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"column {self.key}: unknown kind {self.kind!r} (known: {', '.join(KINDS)})")

    @property
    def header(self) -> str:
        return self.label or self.key


@dataclass(frozen=True)
class Link:
    """A hyperlink: `target` relative to the folder of the file that holds it."""

    target: str
    text: str = ""

    def __str__(self) -> str:
        return self.target


@dataclass
class Table:
    name: str  # the XLSX sheet name (at most 31 characters, none of []:*?/\)
    columns: list[Column]
    rows: Sequence[Mapping[str, Any]] = field(default_factory=list)


def missing(value: Any) -> bool:
    """None, NaN and pandas' NA/NaT: nothing in the cell."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return type(value).__name__ in ("NAType", "NaTType")


def write_csv(path: Path | str, table: Table) -> None:
    with atomic_path(Path(path)) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([c.header for c in table.columns])
            for row in table.rows:
                writer.writerow([_csv_value(row.get(c.key), c) for c in table.columns])


def write_xlsx(path: Path | str, tables: Sequence[Table], title: str = "") -> None:
    # Write-only mode streams rows out (ten times faster than building every cell in memory).
    from openpyxl import Workbook  # here: importing openpyxl costs a second a run that writes no XLSX

    book = Workbook(write_only=True)
    if title:
        book.properties.title = _text(title)[:255]
    book.properties.creator = "cadpipe"
    for table in tables:
        _sheet(book, table)
    with atomic_path(Path(path)) as tmp:
        book.save(tmp)


def _sheet(book: Workbook, table: Table) -> None:
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    sheet = book.create_sheet(table.name[:31])
    bold = Font(bold=True)
    link_font = Font(color="0563C1", underline="single")
    rows = [[_xlsx_value(row.get(c.key), c) for c in table.columns] for row in table.rows]
    # Sheet settings come before the rows in the file: widths, frozen header, filter first.
    for i, column in enumerate(table.columns):
        width = max([len(column.header)] + [_display_width(r[i]) for r in rows if r[i] is not None])
        sheet.column_dimensions[get_column_letter(i + 1)].width = min(_MAX_WIDTH, max(_MIN_WIDTH, width + 2))
    sheet.freeze_panes = "A2"
    if table.columns:
        sheet.auto_filter.ref = f"A1:{get_column_letter(len(table.columns))}{max(1, len(rows) + 1)}"
    header = []
    for column in table.columns:
        cell = WriteOnlyCell(sheet, column.header)
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    for source, shown in zip(table.rows, rows):
        cells: list[Any] = []
        for column, value in zip(table.columns, shown):
            if value is None:
                cells.append(None)
                continue
            cell = WriteOnlyCell(sheet, value)
            if isinstance(value, str):
                cell.data_type = "s"  # never a formula, whatever the text starts with
            raw = source.get(column.key)
            if isinstance(raw, Link):
                cell.hyperlink = raw.target
                cell.font = link_font
            elif isinstance(value, dt.datetime):
                cell.number_format = _DATETIME_FORMAT
            elif isinstance(value, dt.date):
                cell.number_format = _DATE_FORMAT
            cells.append(cell)
        sheet.append(cells)


def _display_width(value: Any) -> int:
    if isinstance(value, dt.datetime):
        return 19
    if isinstance(value, dt.date):
        return 10
    text = str(value)
    return max((len(line) for line in text.splitlines()), default=0)


def _xlsx_value(value: Any, column: Column) -> Any:
    if missing(value):
        return None
    if isinstance(value, Link):
        return _text(value.text or value.target)
    kind = column.kind
    if kind == "int" and _is_number(value):
        return int(value)
    if kind == "float" and _is_number(value):
        return float(value)
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "datetime" and isinstance(value, dt.datetime):
        # Excel has no time zones: UTC, as the catalog records it.
        return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value
    if kind in ("date", "datetime") and isinstance(value, dt.date):
        return value
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and kind in ("int", "float"):
        return value
    return _text(str(value))


def _csv_value(value: Any, column: Column) -> Any:
    if missing(value):
        return ""
    if isinstance(value, Link):
        return value.target
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and column.kind == "int":
        return str(int(value))
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))  # 2, not 2.0
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _text(text: str) -> str:
    """Text an XLSX cell can hold: control characters as \\xNN, at most the cell limit."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    text = ILLEGAL_CHARACTERS_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    if len(text) > XLSX_CELL_LIMIT:
        text = text[: XLSX_CELL_LIMIT - len(_CUT)] + _CUT
    return text
