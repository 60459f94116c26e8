"""The ``set_attributes`` operation: attribute values of title blocks (or named blocks)."""

from __future__ import annotations

from ezdxf.document import Drawing
from ezdxf.entities import Insert

from editors.changes import Change, EditContext
from editors.recipe import SetAttributes
from editors.text import set_text_value, text_value
from extractors.block_attributes import AttributeReader, name_matcher, normalize_tag


def set_attributes(doc: Drawing, spec: SetAttributes, context: EditContext) -> list[Change]:
    """Set the ATTRIBs of every matching block reference in every layout (one title block per
    sheet gets the value on each sheet). A tag given in `tags` wins over a title field."""
    by_tag = {normalize_tag(tag): value for tag, value in spec.tags}
    by_field = dict(spec.fields)
    names = name_matcher(spec.blocks) if spec.blocks is not None else None
    rules = context.title_rules
    reader = AttributeReader()
    changes: list[Change] = []
    for layout_name in doc.layouts.names_in_taborder():
        layout = doc.layouts.get(layout_name)
        for insert in layout.query("INSERT"):
            if not isinstance(insert, Insert):  # query() is typed by entity name only
                continue
            name = reader.block_name(insert)
            if names is not None:
                if not names.fullmatch(name):
                    continue
            elif rules.tier(name, reader.attributes(insert)) is None:
                continue
            for attrib in insert.attribs:
                tag = attrib.dxf.get("tag", "")
                value = by_tag.get(normalize_tag(tag)) if tag else None
                if value is None and tag and by_field:
                    column = rules.title_tags.column(tag)
                    value = by_field.get(column) if column else None
                if value is None:
                    continue
                before = text_value(attrib)
                if before != value:
                    set_text_value(attrib, value)
                    changes.append(Change(spec.op, f"{layout_name}: {name} #{attrib.dxf.handle} {tag}", before, value))
    return changes
