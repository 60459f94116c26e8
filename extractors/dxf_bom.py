"""Bill of materials of a DXF drawing: attributed block references and parts-list tables.

Rows from block attributes (``source`` = ``attributes``)
    Every INSERT (MINSERT included) carrying an attribute with a value, in modelspace and every paperspace
    layout, and every attributed INSERT nested inside the block definitions they reference, at
    any depth. Constant ATTDEFs of the block count as its attributes (see
    :class:`extractors.block_attributes.AttributeReader`). Title blocks
    (:mod:`extractors.title_block` decides which) are left out, with everything nested in them.

    One row per (layout, block path, attribute tag/value pairs): the block path is the chain of
    block names from the layout down to the attributed insert (``ASSY/BOLT``), so identical
    references are counted in one row rather than listed one by one, and the same part nested
    in two different assemblies gives two rows. ``handle`` is that of the first such INSERT
    (for nested ones: the INSERT inside the block definition).

    ``insert_count`` is how many block references the row stands for, multiplied through the
    nesting: a block inserted 3 times that holds 2 inserts of a part counts 6; a MINSERT counts
    rows x columns. ``qty`` is that count as a float, unless a QTY attribute states one: then the
    stated quantity wins, as the quantity *per occurrence of the block holding the insert* (a
    top-level item with QTY 4 is 4 however often it is drawn; a nested insert with QTY 2 in an
    assembly drawn 3 times is 6). A QTY that is not a number (``AR``, ``see note``) gives None;
    the raw value stays in ``attributes``. See :func:`parse_quantity` for what parses; a unit
    written with the quantity (``2 pcs``) fills ``unit`` when no UNIT attribute does.

Symbols (:attr:`BomExtract.symbols`, not rows)
    An attributed INSERT whose attributes are all empty (a P&ID valve or instrument symbol not
    tagged yet, a bubble left blank) names no item: it is counted as a symbol instead, per
    (layout, block path), multiplied through the nesting like a row: layout (str), block_name,
    block_path (str), level (int), insert_count (int), handle (str|None, the first such INSERT).

P&ID and instrument tags
    The default tag map fills ``tag`` (``TAG``, ``#(TargetObject.Tag)`` ...), ``type``
    (``TYPE``, function letters such as ``FT``), ``loop_number`` (``LOOPNUMBER``), ``service`` and
    ``size``. An item with no tag but a type and a loop number gets its tag composed by
    `tag_format` (default ``{type}-{loop_number}``: ``FT`` and ``101`` give ``FT-101``; any BOM
    column may be named; empty: never composed). Each tagged item is its own row, since its
    attributes differ from every other item's.

Rows from ACAD_TABLE entities (``source`` = ``table``)
    A table in a layout is a parts list when one of its rows is a header naming at least two
    BOM columns (through the same tag map), one of them ``item_no``, ``part_number`` or
    ``description``. Every non-empty row below the header is a row; when no non-empty row
    follows the header (parts lists drawn upwards from a title block) the rows above it are
    taken, nearest first. ``qty`` is None without a quantity column. ``handle`` is the table's,
    ``block_name``/``block_path``/``insert_count`` are None, ``level`` is 0. Tables that are not
    parts lists give no rows. ezdxf reads table content from the ACAD_TABLE entity itself (the
    R2007+ and R2004 cell layouts); the cell text is taken without MTEXT formatting codes.

Columns (every value a plain scalar; every row has the same keys, in this order)
    item_no, part_number, description (str|None), qty (float|None), unit, material (str|None),
    mass (float|None, see :func:`parse_mass`), revision, vendor, tag, type, loop_number, service,
    size (str|None), then any further
    columns a custom tag map names (str|None), block_name (str|None, a dynamic block's own name),
    block_path (str|None), layout (str), handle (str|None), level (int: 0 for inserts placed in
    a layout, 1+ for nested ones), insert_count (int|None), source (str),
    attributes (str): JSON object of every raw tag -> value as stored (or header -> cell text),
    empty values included; a tag repeated in one insert gets ``#2``, ``#3`` ... appended.
    Text columns hold the plain text (``%%c`` -> diameter sign), stripped; empty -> None.
    Text is never escaped: ``<script>`` stays ``<script>`` (escape where it is rendered).
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ezdxf.document import Drawing
from ezdxf.entities import DXFTagStorage, read_acad_table_content

from documents.dxf_text import plain_mtext_text
from extractors.block_attributes import DEFAULT_TAG_MAP, Attribute, AttributeReader, TagLookup, insert_count
from extractors.title_block import DEFAULT_TITLE_BLOCK_PATTERNS, DEFAULT_TITLE_TAG_MAP, TitleBlockRules

__all__ = [
    "DEFAULT_TAG_MAP",
    "DEFAULT_TAG_FORMAT",
    "BOM_VALUE_COLUMNS",
    "SYMBOL_COLUMNS",
    "BomExtract",
    "bom_extract",
    "bom_rows",
    "parse_quantity",
    "parse_mass",
]

# Canonical BOM columns, in row order; a custom tag map may add more after them.
BOM_VALUE_COLUMNS = (
    "item_no",
    "part_number",
    "description",
    "qty",
    "unit",
    "material",
    "mass",
    "revision",
    "vendor",
    "tag",
    "type",
    "loop_number",
    "service",
    "size",
)
SYMBOL_COLUMNS = ("layout", "block_name", "block_path", "level", "insert_count", "handle")
DEFAULT_TAG_FORMAT = "{type}-{loop_number}"
_TAIL_COLUMNS = ("block_name", "block_path", "layout", "handle", "level", "insert_count", "source", "attributes")
_IDENTITY_COLUMNS = frozenset(("item_no", "part_number", "description"))

_NUMBER = r"\d+(?:[.,']\d+)*|[.,]\d+"
_QUANTITY = re.compile(
    rf"""^(?:[x×]\s*)?                    # "x2"
    (?P<number>{_NUMBER})
    (?:\s*/\s*(?P<denominator>\d+))?     # "1/2"
    \s*(?:[x×](?![^\W\d_]))?            # "2x", but not the x of a unit
    \s*(?P<unit>[^\W\d_][^\d]*)?$        # "pcs", "Stk.", "m²"
    """,
    re.VERBOSE,
)
_KG_PER_UNIT = {
    "g": 0.001,
    "gr": 0.001,
    "kg": 1.0,
    "t": 1000.0,
    "lb": 0.45359237,
    "lbs": 0.45359237,
    "oz": 0.028349523125,
}


@dataclass(frozen=True)
class BomExtract:
    """What a drawing's bill of materials yields: its rows, and the untagged symbols counted."""

    rows: list[dict[str, Any]]
    symbols: list[dict[str, Any]]

    @property
    def symbol_count(self) -> int:
        return sum(s["insert_count"] for s in self.symbols)


def bom_extract(
    doc: Drawing,
    tag_map: Mapping[str, Iterable[str]] = DEFAULT_TAG_MAP,
    title_block_patterns: Iterable[str] = DEFAULT_TITLE_BLOCK_PATTERNS,
    title_tag_map: Mapping[str, Iterable[str]] = DEFAULT_TITLE_TAG_MAP,
    tag_format: str = DEFAULT_TAG_FORMAT,
) -> BomExtract:
    """BOM rows of `doc` (see module doc): attribute rows, then table rows, layouts in tab order;
    and the symbols (attributed inserts with nothing in their attributes)."""
    lookup = TagLookup.from_map(tag_map)
    rules = TitleBlockRules.build(title_block_patterns, title_tag_map, tag_map)
    columns = list(BOM_VALUE_COLUMNS) + [c for c in lookup.columns if c not in BOM_VALUE_COLUMNS]
    compose = _TagComposer(tag_format)
    walker = _Walker(doc, rules, AttributeReader())
    layouts = [doc.layouts.get(name) for name in doc.layouts.names_in_taborder()]
    rows, symbols = [], []
    for layout in layouts:
        for item in walker.items(layout).values():
            if item.symbol:
                symbols.append(_symbol_row(item, layout.name))
            else:
                rows.append(_attribute_row(item, layout.name, lookup, columns, compose))
    for layout in layouts:
        rows += _table_rows(layout, lookup, columns, compose)
    return BomExtract(rows, symbols)


def bom_rows(
    doc: Drawing,
    tag_map: Mapping[str, Iterable[str]] = DEFAULT_TAG_MAP,
    title_block_patterns: Iterable[str] = DEFAULT_TITLE_BLOCK_PATTERNS,
    title_tag_map: Mapping[str, Iterable[str]] = DEFAULT_TITLE_TAG_MAP,
    tag_format: str = DEFAULT_TAG_FORMAT,
) -> list[dict[str, Any]]:
    """The rows of :func:`bom_extract`."""
    return bom_extract(doc, tag_map, title_block_patterns, title_tag_map, tag_format).rows


def tag_format_fields(tag_format: str) -> list[str]:
    """The column names a tag format uses; ValueError when it is not a plain format string."""
    fields = []
    for _, name, spec, conversion in string.Formatter().parse(tag_format):
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise ValueError(f"{{{name}}} must be a plain column name such as {{type}}")
        fields.append(name)
    return fields


@dataclass(frozen=True)
class _TagComposer:
    """Fills ``tag`` from other columns (type and loop number) when no attribute states one."""

    tag_format: str

    def __call__(self, values: dict[str, Any]) -> None:
        if not self.tag_format or values.get("tag"):
            return
        fields = tag_format_fields(self.tag_format)
        if fields and all(values.get(name) for name in fields):
            values["tag"] = self.tag_format.format(**{name: values[name] for name in fields})


def parse_quantity(text: str | None) -> tuple[float | None, str | None]:
    """(number, unit) of a quantity as people type it; (None, None) when it is not one.

    ``4`` -> (4.0, None), ``2 pcs`` -> (2.0, 'pcs'), ``1,5 m`` -> (1.5, 'm'), ``2x``/``x2`` ->
    2.0, ``1/2`` -> 0.5, ``1.234,5`` and ``1,234.5`` -> 1234.5. A lone comma is a decimal comma
    (``1,500`` is 1.5, as most of Europe writes it). ``AR``, ``ca. 3``, ``-1``, ``2-4`` -> None.
    """
    if text is None:
        return None, None
    match = _QUANTITY.match(text.strip())
    if match is None:
        return None, None
    numerator = _to_float(match["number"])
    number: float | None = numerator
    if match["denominator"] is not None:
        denominator = int(match["denominator"])
        number = numerator / denominator if denominator else None
    unit = (match["unit"] or "").strip().rstrip(".").strip() or None
    return number, unit


def parse_mass(text: str | None) -> float | None:
    """A mass attribute as a float: in kg when it names a unit (g, kg, t, lb, lbs, oz), as
    written when it names none, None when it is no number or names another unit."""
    number, unit = parse_quantity(text)
    if number is None or unit is None:
        return number
    factor = _KG_PER_UNIT.get(unit.casefold())
    return number * factor if factor is not None else None


def _to_float(number: str) -> float:
    number = number.replace("'", "")  # 1'000: Swiss thousands
    if "," in number and "." in number:  # the later one is the decimal mark
        thousands = "," if number.rfind(".") > number.rfind(",") else "."
        number = number.replace(thousands, "")
    if number.count(",") > 1 or number.count(".") > 1:
        number = number.replace(",", "").replace(".", "")
    return float(number.replace(",", "."))


@dataclass
class _Item:
    """Attributed inserts with the same path and attributes, counted per occurrence of a space."""

    path: tuple[str, ...]  # block names from the space (layout or block) down to the insert
    attributes: list[Attribute]
    handle: str | None
    count: int = 0  # block references it stands for
    # Occurrences of the block (or layout) that directly holds the insert; an explicit QTY is
    # per such occurrence, so identical siblings share it instead of adding up.
    holders: int = 0
    symbol: bool = False  # attributes all empty: counted, not a BOM row


_Key = tuple[tuple[str, ...], tuple[tuple[str, str], ...]]


@dataclass
class _Walker:
    """Flattens INSERT nesting once per block definition (a drawing may insert one block
    thousands of times)."""

    doc: Drawing
    rules: TitleBlockRules
    reader: AttributeReader
    _blocks: dict[str, dict[_Key, _Item]] = field(default_factory=dict)
    _visiting: set[str] = field(default_factory=set)

    def items(self, space: Iterable[Any]) -> dict[_Key, _Item]:
        items: dict[_Key, _Item] = {}
        for insert in space:
            if insert.dxftype() != "INSERT":
                continue
            name = self.reader.block_name(insert)
            attributes = self.reader.attributes(insert)
            if self.rules.tier(name, attributes) is not None:
                continue  # a title block, and whatever it holds, is not a part
            count = insert_count(insert)
            if attributes:
                symbol = not any(a.text.strip() for a in attributes)
                # Symbols of one path are one count, whichever empty tags they carry.
                key: _Key = ((name,), () if symbol else tuple((a.tag, a.value) for a in attributes))
                handle = insert.dxf.get("handle")
                item = items.setdefault(key, _Item((name,), attributes, handle, holders=1, symbol=symbol))
                item.count += count
            for (path, values), child in self._block_items(insert.dxf.get("name", "")).items():
                key = ((name, *path), values)
                item = items.setdefault(key, _Item((name, *path), child.attributes, child.handle, symbol=child.symbol))
                item.count += count * child.count
                item.holders += count * child.holders
        return items

    def _block_items(self, name: str) -> dict[_Key, _Item]:
        if name in self._blocks:
            return self._blocks[name]
        block = self.doc.blocks.get(name)
        if block is None or name in self._visiting:  # missing definition, or a block holding itself
            return {}
        self._visiting.add(name)
        try:
            self._blocks[name] = self.items(block)
        finally:
            self._visiting.discard(name)
        return self._blocks[name]


def _symbol_row(item: _Item, layout: str) -> dict[str, Any]:
    return {
        "layout": layout,
        "block_name": item.path[-1],
        "block_path": "/".join(item.path),
        "level": len(item.path) - 1,
        "insert_count": item.count,
        "handle": item.handle,
    }


def _attribute_row(
    item: _Item, layout: str, lookup: TagLookup, columns: list[str], compose: _TagComposer
) -> dict[str, Any]:
    values: dict[str, Any] = lookup.values(item.attributes)
    compose(values)
    if "qty" in values:
        stated, unit = parse_quantity(values["qty"])
        values["qty"] = stated * item.holders if stated is not None else None
        values.setdefault("unit", unit)
    else:
        values["qty"] = float(item.count)
    return _row(
        values,
        columns,
        block_name=item.path[-1],
        block_path="/".join(item.path),
        layout=layout,
        handle=item.handle,
        level=len(item.path) - 1,
        insert_count=item.count,
        source="attributes",
        attributes=_json((a.tag, a.value) for a in item.attributes),
    )


def _table_rows(layout: Any, lookup: TagLookup, columns: list[str], compose: _TagComposer) -> list[dict[str, Any]]:
    rows = []
    for table in layout.query("ACAD_TABLE"):
        # Only ezdxf's tag-storing ACAD_TABLE keeps the table data; a table without its AcDbTable
        # subclass has no content to read.
        if not isinstance(table, DXFTagStorage) or not table.xtags.has_subclass("AcDbTable"):
            continue
        cells = [[plain_mtext_text(cell).strip() for cell in row] for row in read_acad_table_content(table)]
        header = _header_index(cells, lookup)
        if header is None:
            continue
        headings = cells[header]
        body = [row for row in cells[header + 1 :] if any(row)]
        if not body:  # header at the bottom: the list grows upwards
            body = [row for row in reversed(cells[:header]) if any(row)]
        for row in body:
            if row == headings:
                continue
            pairs = [(heading or f"COLUMN_{i + 1}", cell) for i, (heading, cell) in enumerate(zip(headings, row))]
            values: dict[str, Any] = lookup.values(Attribute(tag, cell, cell) for tag, cell in pairs)
            compose(values)
            if "qty" in values:
                values["qty"], unit = parse_quantity(values["qty"])
                values.setdefault("unit", unit)
            rows.append(
                _row(
                    values,
                    columns,
                    block_name=None,
                    block_path=None,
                    layout=layout.name,
                    handle=table.dxf.get("handle"),
                    level=0,
                    insert_count=None,
                    source="table",
                    attributes=_json(pairs),
                )
            )
    return rows


def _header_index(cells: list[list[str]], lookup: TagLookup) -> int | None:
    for index, row in enumerate(cells):
        named = {column for cell in row if cell and (column := lookup.column(cell)) is not None}
        if len(named) >= 2 and named & _IDENTITY_COLUMNS:
            return index
    return None


def _row(values: dict[str, Any], columns: list[str], **tail: Any) -> dict[str, Any]:
    row: dict[str, Any] = {column: values.get(column) for column in columns}
    row["mass"] = parse_mass(values.get("mass"))
    row.update((column, tail[column]) for column in _TAIL_COLUMNS)
    return row


def _json(pairs: Iterator[tuple[str, str]] | list[tuple[str, str]]) -> str:
    found: dict[str, str] = {}
    for tag, value in pairs:
        key, n = tag, 1
        while key in found:
            n += 1
            key = f"{tag}#{n}"
        found[key] = value
    return json.dumps(found, ensure_ascii=False)
