"""BOM exports: spreadsheets of the catalog's `bom` rows, per drawing and rolled up per set.

Per drawing with BOM rows or symbols, in its set's folder (engine/library.py):
    `OUT/sets/<set>/bom/<file name>.csv` the rows; `.xlsx` with the sheets BOM, Symbols, Drawing.
    (Two drawings of a set with the same file name: `<folder>__<file name>`.)
Per set:
    `OUT/sets/<set>/<set>-bom.csv` the set's totals: the same item (part number, tag,
    description, type, size, material, unit) summed over its drawings, with the drawings named;
    `<set>-bom-rows.csv` every row of every drawing, the drawing in the first columns;
    `<set>-bom.xlsx` with the sheets Totals, Rows, Symbols, Drawings.

Columns: the canonical BOM columns (extractors/dxf_bom.py; tag first, for P&ID lists), the
columns a custom `[bom]` tag map adds, where the row comes from (block path, layout, level,
insert count, source, handle), then one column per raw attribute tag (`attr:<TAG>`, as stored in
the drawing). Symbols (attributed inserts whose attributes are all empty) are no rows: they
are counted per block in the Symbols sheet. Each file is written again only when its drawing
(or a drawing of its set) changed.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from converters.spreadsheet import Column, Link, Table, missing, write_csv, write_xlsx
from documents.names import to_native
from engine.library import Built, Drawing, DrawingSet, Library, State, fingerprint, natural_key, write_file_for

VERSION = "1"
VALUE_COLUMNS = [
    Column("item_no", "item"),
    Column("tag"),
    Column("part_number"),
    Column("description"),
    Column("type"),
    Column("loop_number"),
    Column("service"),
    Column("size"),
    Column("qty", kind="float"),
    Column("unit"),
    Column("material"),
    Column("mass", "mass (kg)", "float"),
    Column("revision"),
    Column("vendor"),
]
SOURCE_COLUMNS = [
    Column("block_name"),
    Column("block_path"),
    Column("layout"),
    Column("level", kind="int"),
    Column("insert_count", kind="int"),
    Column("source"),
    Column("handle"),
]
DRAWING_COLUMNS = [
    Column("drawing_number"),
    Column("drawing_title"),
    Column("drawing_revision"),
    Column("drawing", kind="link"),
]
SYMBOL_COLUMNS = [
    Column("block_path"),
    Column("block_name"),
    Column("layout"),
    Column("count", kind="int"),
    Column("handle"),
]
TOTAL_KEY = ["part_number", "tag", "description", "type", "size", "material", "unit"]
TOTAL_COLUMNS = [Column(k) for k in TOTAL_KEY] + [
    Column("qty", "total qty", "float"),
    Column("qty_unknown", "qty not a number", "int"),
    Column("rows", kind="int"),
    Column("drawings", kind="int"),
    Column("drawing_numbers", "used in"),
]
ATTRIBUTE_PREFIX = "attr:"
NAME_BYTES = 200  # a drawing's export name; with ".xlsx" and atomic_path's temporary name < 255


def build_exports(library: Library, drawing_set: DrawingSet, state: State, built: Built) -> dict[str, str]:
    """Write the stale BOM exports of a set; return drawing location -> its XLSX (relative to OUT)."""
    custom = [Column(c) for c in library.bom_columns]

    def details() -> tuple[dict[str, list[dict]], dict[str, list[dict]]]:
        # Read once per build, and only when something is stale.
        return library.cached("bom", _by_sha), library.cached("bom_symbols", _by_sha)

    files: dict[str, str] = {}
    names = _file_names(drawing_set.members)
    with_bom = [m for m in drawing_set.members if (m.bom_rows or 0) + (m.bom_symbols or 0) > 0]
    for member in with_bom:
        base = f"{drawing_set.folder}/bom/{names[member.location]}"
        key = fingerprint(VERSION, member.key(), library.bom_columns)
        csv_file, xlsx_file = f"{base}.csv", f"{base}.xlsx"
        files[member.location] = xlsx_file
        if state.fresh(csv_file, key) and state.fresh(xlsx_file, key):
            built.unchanged += 1
            continue
        rows, symbols = details()
        bom = _rows(rows.get(member.sha256 or "", []), custom)
        root = "../../../"  # from sets/<set>/bom/ up to OUT
        write_csv(write_file_for(library.out, csv_file), bom)
        write_xlsx(
            write_file_for(library.out, xlsx_file),
            [bom, _symbols(symbols.get(member.sha256 or "", [])), _drawing_sheet(member, root)],
            title=f"BOM of {member.bookmark}",
        )
        for file in (csv_file, xlsx_file):
            state.made(file, key)
            built.written.append(file)
    if not with_bom:
        return files  # a set without any BOM row gets no roll-up
    base = f"{drawing_set.folder}/{drawing_set.slug}-bom"
    key = fingerprint(VERSION, drawing_set.label, [m.key() for m in drawing_set.members], library.bom_columns)
    products = [f"{base}.csv", f"{base}-rows.csv", f"{base}.xlsx"]
    if all(state.fresh(p, key) for p in products):
        built.unchanged += 1
        return files
    rows, symbols = details()
    tables = _set_tables(drawing_set, rows, symbols, custom, files)
    write_csv(write_file_for(library.out, products[0]), tables[0])
    write_csv(write_file_for(library.out, products[1]), tables[1])
    write_xlsx(write_file_for(library.out, products[2]), tables, title=f"BOM of {drawing_set.label}")
    for file in products:
        state.made(file, key)
        built.written.append(file)
    return files


def _set_tables(
    drawing_set: DrawingSet,
    rows_of: Mapping[str, list[dict]],
    symbols_of: Mapping[str, list[dict]],
    custom: list[Column],
    files: Mapping[str, str],
) -> list[Table]:
    root = "../../"  # from sets/<set>/ up to OUT
    all_rows, all_symbols, drawings = [], [], []
    for member in drawing_set.members:
        about = _about(member, root)
        member_rows = rows_of.get(member.sha256 or "", [])
        member_symbols = symbols_of.get(member.sha256 or "", [])
        all_rows += [{**about, **row} for row in member_rows]
        all_symbols += [{**about, **row} for row in member_symbols]
        export = files.get(member.location)
        drawings.append(
            {
                **about,
                "bom_rows": member.bom_rows,
                "symbols": member.bom_symbols,
                "bom": Link(posixpath.relpath(export, drawing_set.folder), posixpath.basename(export))
                if export
                else None,
            }
        )
    rows = _rows(all_rows, custom, DRAWING_COLUMNS)
    rows.name = "Rows"
    symbols = _symbols(all_symbols, DRAWING_COLUMNS)
    listing = Table(
        "Drawings",
        DRAWING_COLUMNS
        + [Column("bom_rows", "BOM rows", "int"), Column("symbols", kind="int"), Column("bom", "BOM", "link")],
        drawings,
    )
    return [_totals(all_rows), rows, symbols, listing]


def _about(member: Drawing, root: str) -> dict[str, Any]:
    """The drawing columns of a roll-up row."""
    pdf = next((s.files.get("pdf") for s in member.sheets if s.files.get("pdf")), None)
    return {
        "drawing_number": member.number,
        "drawing_title": member.title,
        "drawing_revision": member.fields.get("revision"),
        "drawing": Link(root + pdf, member.location) if pdf else member.location,
    }


def _rows(rows: list[dict], custom: list[Column], leading: Sequence[Column] = ()) -> Table:
    """BOM rows with their raw attributes spread into `attr:<TAG>` columns."""
    attribute_tags: dict[str, None] = {}
    shown = []
    for row in rows:
        attributes = _attributes(row.get("attributes"))
        attribute_tags.update(dict.fromkeys(attributes))
        shown.append({**row, **{ATTRIBUTE_PREFIX + tag: value for tag, value in attributes.items()}})
    columns = (
        list(leading)
        + VALUE_COLUMNS
        + custom
        + SOURCE_COLUMNS
        + [Column(ATTRIBUTE_PREFIX + tag) for tag in attribute_tags]
    )
    return Table("BOM", columns, shown)


def _symbols(symbols: list[dict], leading: Sequence[Column] = ()) -> Table:
    rows = [{**s, "count": s.get("insert_count")} for s in symbols]
    return Table("Symbols", list(leading) + SYMBOL_COLUMNS, rows)


def _drawing_sheet(member: Drawing, root: str) -> Table:
    facts: list[tuple[str, Any]] = [("path", member.location)]
    facts += [(k, v) for k, v in member.fields.items() if v is not None]
    facts += [("BOM rows", member.bom_rows), ("symbols (untagged, not BOM rows)", member.bom_symbols)]
    pdf = next((s.files.get("pdf") for s in member.sheets if s.files.get("pdf")), None)
    if pdf:
        facts.append(("PDF", Link(root + pdf, posixpath.basename(pdf))))
    return Table(
        "Drawing",
        [Column("field"), Column("value")],
        [{"field": k, "value": v} for k, v in facts],
    )


def _totals(rows: list[dict]) -> Table:
    """The same item over all rows: quantities summed (unknown ones counted), drawings named."""
    groups: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        key = tuple(None if missing(row.get(k)) else row.get(k) for k in TOTAL_KEY)
        if all(v is None for v in key):
            key = (None, None, row.get("block_name")) + (None,) * (len(TOTAL_KEY) - 3)
        total = groups.setdefault(key, {"qty": None, "qty_unknown": 0, "rows": 0, "drawings": {}})
        qty: Any = row.get("qty")
        if missing(qty):
            total["qty_unknown"] += 1
        else:
            total["qty"] = (total["qty"] or 0.0) + float(qty)
        total["rows"] += 1
        total["drawings"][row.get("drawing_number") or str(row.get("drawing"))] = None
    listed = []
    for key, total in groups.items():
        listed.append(
            {
                **dict(zip(TOTAL_KEY, key)),
                "qty": total["qty"],
                "qty_unknown": total["qty_unknown"],
                "rows": total["rows"],
                "drawings": len(total["drawings"]),
                "drawing_numbers": ", ".join(sorted(total["drawings"], key=natural_key)),
            }
        )
    listed.sort(key=lambda t: [natural_key(str(t.get(k) or "")) for k in ("part_number", "tag", "description")])
    return Table("Totals", TOTAL_COLUMNS, listed)


def _file_names(members: Iterable[Drawing]) -> dict[str, str]:
    """Export file stem per drawing: its file name; folder and name where two share a name;
    shortened (with a hash of the whole) where the file system could not hold it."""
    members = list(members)
    counts: dict[str, int] = defaultdict(int)
    for m in members:
        counts[m.name] += 1
    return {m.location: _fit(m.name if counts[m.name] == 1 else m.path.replace("/", "__")) for m in members}


def _fit(name: str, limit: int = NAME_BYTES) -> str:
    """`name` (text form) short enough that it, `.xlsx` and a temporary name beside it fit in a
    file name (255 bytes)."""
    if len(os.fsencode(to_native(name))) <= limit:
        return name
    cut = name
    while len(os.fsencode(to_native(cut))) > limit - 9:
        cut = cut[:-1]
    return f"{cut}~{fingerprint(name)[:8]}"


def _attributes(raw: Any) -> dict[str, Any]:
    if missing(raw) or not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except (TypeError, ValueError):
        return {"attributes": raw}
    return parsed if isinstance(parsed, dict) else {"attributes": raw}


def _by_sha(frame: pd.DataFrame) -> dict[str, list[dict]]:
    if frame.empty or "sha256" not in frame.columns:
        return {}
    grouped: dict[str, list[dict]] = defaultdict(list)
    for row in frame.to_dict("records"):
        grouped[row["sha256"]].append({k: (None if missing(v) else v) for k, v in row.items()})
    return grouped
