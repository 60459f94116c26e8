"""Text values of TEXT, MTEXT and ATTRIB entities, and the ``replace_text`` operation."""

from __future__ import annotations

from collections.abc import Iterator

from ezdxf.document import Drawing
from ezdxf.entities import DXFGraphic, Insert, MText
from ezdxf.entities.attrib import BaseAttrib
from ezdxf.layouts import BlockLayout

from editors.changes import Change, EditContext
from editors.recipe import ReplaceText


def text_value(entity: DXFGraphic) -> str:
    """The stored value: MTEXT and multi-line attributes with their formatting codes."""
    if isinstance(entity, MText):
        return entity.text
    if isinstance(entity, BaseAttrib) and entity.has_embedded_mtext_entity:  # ATTRIB or ATTDEF
        return entity.virtual_mtext_entity().text
    return entity.dxf.get("text", "")


def set_text_value(entity: DXFGraphic, value: str) -> None:
    if isinstance(entity, MText):
        entity.text = value
    elif isinstance(entity, BaseAttrib) and entity.has_embedded_mtext_entity:  # ATTRIB or ATTDEF
        mtext = entity.virtual_mtext_entity()
        mtext.text = value
        entity.set_mtext(mtext, graphic_properties=False)
        # the single-line value CAD programs without multi-line support show: the first line
        lines = mtext.plain_text(split=True)
        entity.dxf.text = lines[0] if lines else ""
    else:
        entity.dxf.text = value


def space_labels(doc: Drawing) -> dict[str, str]:
    """Block record handle -> the layout name users see (``Model``, ``Layout1`` ...)."""
    return {layout.layout_key: layout.name for layout in doc.layouts}


def entity_spaces(doc: Drawing) -> Iterator[tuple[str, BlockLayout]]:
    """Every layout and block definition with a label, except blocks generated from their owner
    entity (``*D`` dimension and ``*T`` table graphics): a CAD program rebuilds those."""
    labels = space_labels(doc)
    for block in doc.blocks:
        if block.name.upper().startswith(("*D", "*T")):
            continue
        yield labels.get(block.block_record_handle) or f"block {block.name}", block


def replace_text(doc: Drawing, spec: ReplaceText, context: EditContext) -> list[Change]:
    regex = spec.compiled()
    changes: list[Change] = []

    def replace(entity: DXFGraphic, target: str) -> None:
        before = text_value(entity)
        after = regex.sub(spec.replacement, before)
        if after != before:
            set_text_value(entity, after)
            changes.append(Change(spec.op, target, before, after))

    for label, space in entity_spaces(doc):
        for entity in space:
            kind = entity.dxftype()
            if kind in ("TEXT", "MTEXT") and kind in spec.entities:
                replace(entity, f"{label}: {kind} #{entity.dxf.handle}")
            elif isinstance(entity, Insert) and "ATTRIB" in spec.entities:
                for attrib in entity.attribs:
                    tag = attrib.dxf.get("tag", "")
                    replace(attrib, f"{label}: {entity.dxf.name} #{attrib.dxf.handle} ATTRIB {tag}")
    return changes
