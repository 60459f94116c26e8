"""Drawing-level fields (title, number, revision ...) from the title block insert of a DXF drawing.

Which INSERT is the title block (only block references placed directly in modelspace or a
paperspace layout are considered):

- A *name candidate*: its block name (a dynamic block's own name) matches one of the fnmatch
  globs in `patterns`, case-insensitively; unless its attributes look more like a part (more BOM
  columns than title columns matched, e.g. a part block called ``FRAME_RAIL`` with PART_NO,
  DESC and QTY).
- A *tag candidate*: any other INSERT whose attribute tags fill at least 2 title columns and more
  title columns than BOM columns (sheet-size blocks such as ``A3`` or ``11x17`` carry the title
  block without saying so in their name).

The best candidate wins: a name candidate with at least 2 title columns, then a tag candidate,
then a name candidate with fewer (a detail bubble called ``Detail Title`` that only carries
SCALE must not beat a sheet block with SCALE, DATE, DRAWN_BY and SHEET); within a tier the one
filling more title columns, then paperspace before modelspace, then layout tab order and drawing
order. Drawings with one title block per sheet give the first sheet's.

:mod:`extractors.dxf_bom` keeps every candidate (name or tag) out of the bill of materials.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ezdxf.document import Drawing

from extractors.block_attributes import (
    DEFAULT_TAG_MAP,
    Attribute,
    AttributeReader,
    TagLookup,
    name_matcher,
)

DEFAULT_TITLE_BLOCK_PATTERNS: list[str] = [
    "*TITLE*",
    "*TITEL*",
    "*CARTOUCHE*",
    "*CAJETIN*",
    "*SCHRIFTFELD*",
    "*FRAME*",
    "*BORDER*",
    "*RAHMEN*",
    "TB*",
]

# Title columns -> accepted tag spellings (compared as block_attributes.normalize_tag does).
DEFAULT_TITLE_TAG_MAP: dict[str, list[str]] = {
    "title": ["TITLE", "DRAWING_TITLE", "DWG_TITLE", "TITLE_1", "TITEL", "TITRE", "BENENNUNG"],
    "drawing_number": [
        "DWG_NO",
        "DRAWING_NO",
        "DRG_NO",
        "DRAWING_NUMBER",
        "DWG_NUMBER",
        "NUMBER",
        "DOC_NO",
        "DOCUMENT_NO",
        "DOCUMENT_NUMBER",
        "ZEICHNUNGSNUMMER",
        "ZEICHNUNGS_NR",
        "ZEICHNUNG_NR",
        "NUMERO",
    ],
    "revision": ["REV", "REVISION", "REV_NO", "INDEX", "INDICE"],
    "date": ["DATE", "DWG_DATE", "DRAWING_DATE", "DATUM"],
    "drawn_by": [
        "DRAWN",
        "DRAWN_BY",
        "DRAWNBY",
        "DRN",
        "DRN_BY",
        "DRAFTER",
        "DRAFTSMAN",
        "AUTHOR",
        "GEZEICHNET",
        "GEZ",
        "BEARBEITER",
        "DESSINE",
        "DESSINE_PAR",
        "DESSINATEUR",
    ],
    "scale": ["SCALE", "DWG_SCALE", "MASSSTAB", "ECHELLE"],
    "sheet": ["SHEET", "SHEET_NO", "SHT", "SHEET_NUMBER", "BLATT", "FOLIO", "FEUILLE"],
    "material": ["MATERIAL", "MAT", "MATL", "WERKSTOFF", "MATIERE"],
    "project": [
        "PROJECT",
        "PROJECT_NO",
        "PROJECT_NUMBER",
        "PROJECT_NAME",
        "PROJECT_TITLE",
        "PROJ",
        "PROJ_NO",
        "JOB",
        "JOB_NO",
        "JOB_NUMBER",
        "PROJEKT",
        "PROJEKTNUMMER",
        "PROJET",
    ],
}

_NAME_TIER, _TAG_TIER, _WEAK_NAME_TIER = 2, 1, 0


@dataclass(frozen=True)
class TitleBlockRules:
    """Compiled rules that decide whether an INSERT is a title block (see module doc)."""

    names: Any  # re.Pattern[str] | None
    title_tags: TagLookup
    part_tags: TagLookup

    @classmethod
    def build(
        cls,
        patterns: Iterable[str] = DEFAULT_TITLE_BLOCK_PATTERNS,
        tag_map: Mapping[str, Iterable[str]] = DEFAULT_TITLE_TAG_MAP,
        part_tag_map: Mapping[str, Iterable[str]] = DEFAULT_TAG_MAP,
    ) -> TitleBlockRules:
        return cls(name_matcher(patterns), TagLookup.from_map(tag_map), TagLookup.from_map(part_tag_map))

    def tier(self, name: str, attributes: list[Attribute]) -> int | None:
        """Candidate tier (higher is better), or None when the INSERT is not a title block."""
        titles = len(self.title_tags.matched(attributes))
        parts = len(self.part_tags.matched(attributes))
        if self.names is not None and self.names.fullmatch(name):
            if parts > titles:
                return None
            return _NAME_TIER if titles >= 2 else _WEAK_NAME_TIER
        if titles >= 2 and titles > parts:
            return _TAG_TIER
        return None


def title_block(
    doc: Drawing,
    patterns: list[str] = DEFAULT_TITLE_BLOCK_PATTERNS,
    tag_map: dict[str, list[str]] = DEFAULT_TITLE_TAG_MAP,
    part_tag_map: dict[str, list[str]] = DEFAULT_TAG_MAP,
) -> dict[str, str | None]:
    """Title columns of the drawing's title block, for the catalog's ``files`` table.

    Keys: the columns of `tag_map` in its order (by default ``title, drawing_number, revision,
    date, drawn_by, scale, sheet, material, project``), then ``title_block_name`` (block name) and
    ``title_block_layout`` (layout name). Values are the attributes' plain text, stripped; None
    when the drawing has no title block, or its title block has no (or an empty) such attribute.
    `part_tag_map` (the BOM columns) tells part blocks from title blocks.
    """
    rules = TitleBlockRules.build(patterns, tag_map, part_tag_map)
    reader = AttributeReader()
    best: tuple[tuple[int, int, bool, int], str, str, list[Attribute]] | None = None
    order = 0
    for layout in _layouts_in_tab_order(doc):
        for insert in layout.query("INSERT"):
            order += 1
            name = reader.block_name(insert)
            attributes = reader.attributes(insert)
            tier = rules.tier(name, attributes)
            if tier is None:
                continue
            rank = (tier, len(rules.title_tags.matched(attributes)), not layout.is_modelspace, -order)
            if best is None or rank > best[0]:
                best = (rank, name, layout.name, attributes)

    row: dict[str, str | None] = {column: None for column in rules.title_tags.columns}
    row["title_block_name"] = row["title_block_layout"] = None
    if best is not None:
        _, name, layout_name, attributes = best
        row.update(rules.title_tags.values(attributes))
        row["title_block_name"] = name
        row["title_block_layout"] = layout_name
    return row


def _layouts_in_tab_order(doc: Drawing) -> list[Any]:
    return [doc.layouts.get(name) for name in doc.layouts.names_in_taborder()]
