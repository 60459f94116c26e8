"""Attribute tags of block references: reading them, and matching their spellings to columns.

Shared by :mod:`extractors.dxf_bom` and :mod:`extractors.title_block`. A *tag map* maps a canonical
column to the tag spellings that fill it. Spellings are compared after :func:`normalize_tag`:
case-insensitive, ``#`` read as ``NO``, and every character that is not a letter or digit
dropped, so ``Part-No``, ``PART NO.``, ``part_no`` and ``PART#`` are all ``PARTNO`` and ``p/n`` is
``PN``. A field expression as P&ID programs name their attributes (``#(TargetObject.Tag)``,
``#(TargetObject.LoopNumber)``) is read as the property it names: ``TAG``, ``LOOPNUMBER``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ezdxf.dynblkhelper import get_dynamic_block_definition
from ezdxf.entities import Insert

from documents.dxf_text import readable

# Canonical BOM columns -> accepted attribute tag spellings (normalized before comparing).
DEFAULT_TAG_MAP: dict[str, list[str]] = {
    "item_no": ["ITEM", "ITEM_NO", "ITEM_NUMBER", "ITEM_NUM", "POS", "POS_NO", "POSITION", "FIND_NO"],
    "part_number": [
        "PART_NO",
        "PARTNO",
        "PART_NUMBER",
        "PART_NUM",
        "P/N",
        "PN",
        "PART",
        "ARTICLE_NO",
        "ART_NO",
        "SKU",
        "SACHNUMMER",
        "TEILENUMMER",
        "ARTIKELNUMMER",
        "ARTIKEL_NR",
    ],
    "description": ["DESC", "DESCRIPTION", "DESCR", "PART_NAME", "DESIGNATION", "BENENNUNG", "BEZEICHNUNG"],
    "qty": ["QTY", "QUANTITY", "QTY_REQD", "QUAN", "COUNT", "MENGE", "ANZAHL", "QTE"],
    "unit": ["UNIT", "UOM", "UNITS", "EINHEIT"],
    "material": ["MATERIAL", "MAT", "MATL", "WERKSTOFF", "MATIERE"],
    "mass": ["MASS", "WEIGHT", "WT", "GEWICHT", "MASSE", "POIDS"],
    "revision": ["REV", "REVISION", "REV_NO"],
    "vendor": ["VENDOR", "SUPPLIER", "MANUFACTURER", "MFR", "MFG", "LIEFERANT", "HERSTELLER"],
    # P&ID and instrument symbols (ISA-5.1 style): the item's tag, or its type (function letters
    # such as FT, or a valve type) and loop number, from which the tag is composed when no tag
    # attribute is given (see dxf_bom: [bom] tag_format); the line's service and size.
    "tag": [
        "TAG",
        "TAG_NO",
        "TAG_NUMBER",
        "TAGNAME",
        "TAG_NAME",
        "TAG_ID",
        "EQUIPMENT_TAG",
        "INSTRUMENT_TAG",
        "VALVE_TAG",
        "EQUIPMENT_NO",
        "INSTRUMENT_NO",
        "VALVE_NO",
    ],
    "type": ["TYPE", "INSTRUMENT_TYPE", "INST_TYPE", "VALVE_TYPE", "EQUIPMENT_TYPE", "FUNCTION", "TYP"],
    "loop_number": ["LOOPNUMBER", "LOOP_NUMBER", "LOOP_NO", "LOOPNO", "LOOP", "LOOP_NUM"],
    "service": ["SERVICE", "SERVICE_DESCRIPTION", "SERVICE_DESC", "FLUID", "FLUID_SERVICE", "MEDIUM", "MEDIA"],
    "size": [
        "SIZE",
        "NOMINAL_SIZE",
        "NOMINAL_DIAMETER",
        "NPS",
        "DN",
        "LINE_SIZE",
        "PIPE_SIZE",
        "VALVE_SIZE",
        "CONNECTION_SIZE",
    ],
}

_NOT_ALNUM = re.compile(r"[\W_]+")
# AutoCAD P&ID / Plant 3D annotation fields: #(TargetObject.Tag), #(Project.General.Number).
_FIELD_EXPRESSION = re.compile(r"^\s*#\((?:[^().]*\.)*([^().]+)\)\s*$")


def normalize_tag(tag: str) -> str:
    """The spelling-independent form of an attribute tag or table header: ``Part-No`` -> ``PARTNO``,
    ``#(TargetObject.LoopNumber)`` -> ``LOOPNUMBER``."""
    field = _FIELD_EXPRESSION.match(tag)
    if field is not None:
        tag = field.group(1)
    return _NOT_ALNUM.sub("", tag.replace("#", "NO")).upper()


@dataclass(frozen=True)
class TagLookup:
    """A tag map compiled for lookups: normalized spelling -> canonical column."""

    columns: tuple[str, ...]
    by_spelling: Mapping[str, str]

    @classmethod
    def from_map(cls, tag_map: Mapping[str, Iterable[str]]) -> TagLookup:
        by_spelling: dict[str, str] = {}
        for column, spellings in tag_map.items():
            # The column name itself is always accepted ("drawing_number" as a tag, say).
            for spelling in (column, *spellings):
                # First column wins a spelling listed twice: the map's order states priority.
                by_spelling.setdefault(normalize_tag(spelling), column)
        return cls(tuple(tag_map), by_spelling)

    def column(self, tag: str) -> str | None:
        return self.by_spelling.get(normalize_tag(tag))

    def values(self, attributes: Iterable[Attribute]) -> dict[str, str]:
        """Canonical column -> the first non-empty plain text among the attributes that fill it."""
        found: dict[str, str] = {}
        for attribute in attributes:
            column = self.column(attribute.tag)
            if column is not None and column not in found and attribute.text.strip():
                found[column] = attribute.text.strip()
        return found

    def matched(self, attributes: Iterable[Attribute]) -> set[str]:
        """Canonical columns that at least one attribute's tag fills (empty values included)."""
        return {column for a in attributes if (column := self.column(a.tag)) is not None}


@dataclass(frozen=True)
class Attribute:
    """One tag/value pair of a block reference."""

    tag: str
    value: str  # as stored in the DXF (formatting codes included)
    text: str  # plain text: %%d -> degree sign, MTEXT codes removed


class AttributeReader:
    """Reads block references' attributes and names, caching what is per block definition."""

    def __init__(self) -> None:
        self._constants: dict[str, list[Attribute]] = {}  # block name -> constant ATTDEFs
        self._names: dict[str, str] = {}  # stored block name -> name the user knows

    def attributes(self, insert: Insert) -> list[Attribute]:
        """The ATTRIBs attached to `insert`, then the constant ATTDEFs of its block.

        Constant attributes are never attached as ATTRIBs (their value is fixed in the block
        definition), yet a BOM may keep its part number there; empty ones are skipped. An
        attached ATTRIB with the same tag wins. ATTRIBs without a tag (a structure error) are skipped.
        """
        found = []
        for attrib in insert.attribs:
            tag = attrib.dxf.get("tag", "")
            if not tag:
                continue
            if attrib.has_embedded_mtext_entity:  # multi-line attribute (R2018)
                value, text = attrib.virtual_mtext_entity().text, attrib.plain_mtext(fast=False)
            else:
                value, text = attrib.dxf.get("text", ""), attrib.plain_text()
            found.append(Attribute(tag, value, readable(text)))
        constants = self._constant_attdefs(insert)
        if constants:
            seen = {a.tag.upper() for a in found}
            found += [a for a in constants if a.tag.upper() not in seen]
        return found

    def block_name(self, insert: Insert) -> str:
        """The name a user knows the block by: a dynamic block's own name, not its ``*U`` copy's."""
        name = insert.dxf.get("name", "")
        if not name.startswith("*") or insert.doc is None:
            return name
        if name not in self._names:
            definition = get_dynamic_block_definition(insert)
            self._names[name] = definition.name if definition is not None else name
        return self._names[name]

    def _constant_attdefs(self, insert: Insert) -> list[Attribute]:
        name = insert.dxf.get("name", "")
        if name not in self._constants:
            block = insert.block()
            self._constants[name] = [
                Attribute(attdef.dxf.tag, attdef.dxf.get("text", ""), readable(attdef.plain_text()))
                for attdef in (block.attdefs() if block is not None else ())
                # An empty constant carries nothing; keeping it would turn every plain insert
                # of such a block into a BOM row.
                if attdef.is_const and attdef.dxf.get("tag", "") and attdef.dxf.get("text", "").strip()
            ]
        return self._constants[name]


def insert_count(insert: Insert) -> int:
    """How many block references one INSERT stands for: rows x columns of a MINSERT, else 1.

    The stored counts are taken as they are, even with zero spacing (the copies then overlap
    but exist all the same).
    """
    rows = insert.dxf.get("row_count", 1) or 1
    columns = insert.dxf.get("column_count", 1) or 1
    return max(1, int(rows)) * max(1, int(columns))


def name_matcher(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One case-insensitive regex for a list of fnmatch globs; None for an empty list."""
    globs = [fnmatch.translate(p) for p in patterns]
    return re.compile("|".join(f"(?:{g})" for g in globs), re.IGNORECASE) if globs else None
