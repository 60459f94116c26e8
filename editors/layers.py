"""Layer operations: ``rename_layer`` (merging into an existing layer), ``set_layer``, and
purging unused layers.

Layer names are case-insensitive in DXF, as in CAD programs: ``dim`` and ``DIM`` are one layer.
"""

from __future__ import annotations

from ezdxf.document import Drawing
from ezdxf.entities import DXFEntity, Viewport
from ezdxf.tools.standards import ISO_LTYPE_FACTOR, linetypes

from documents.errors import InputError
from editors.changes import Change, EditContext
from editors.recipe import RenameLayer, SetLayer
from extractors.block_attributes import name_matcher

PROTECTED_LAYERS = ("0", "defpoints")  # CAD programs need both; neither can be purged


def _live_entities(doc: Drawing) -> list[DXFEntity]:
    return [e for e in doc.entitydb.values() if e.is_alive]


def rename_layer(doc: Drawing, spec: RenameLayer, context: EditContext) -> list[Change]:
    """Give every reference to layer `old` the name `new`: entities (in layouts and blocks),
    viewport freeze lists and the current layer. When `new` exists already, `old` is merged into
    it (its entities take the properties of `new`) and its table entry is deleted."""
    old_key, new_key = spec.old.casefold(), spec.new.casefold()
    entry = doc.layers.get(spec.old) if doc.layers.has_entry(spec.old) else None
    moved = [e for e in _live_entities(doc) if e.dxf.hasattr("layer") and e.dxf.layer.casefold() == old_key]
    if entry is None and not moved:
        return []
    old_name = entry.dxf.name if entry is not None else moved[0].dxf.layer
    merge = new_key != old_key and doc.layers.has_entry(spec.new)
    new_name = doc.layers.get(spec.new).dxf.name if merge else spec.new  # keep the target's spelling
    for entity in moved:
        entity.dxf.layer = new_name
    for viewport in doc.query("VIEWPORT"):
        if not isinstance(viewport, Viewport):  # query() is typed by entity name only
            continue
        frozen = viewport.frozen_layers
        if any(name.casefold() == old_key for name in frozen):
            renamed = [new_name if name.casefold() == old_key else name for name in frozen]
            viewport.frozen_layers = list(dict.fromkeys(renamed))
    if str(doc.header.get("$CLAYER", "0")).casefold() == old_key:
        doc.header["$CLAYER"] = new_name
    if entry is not None:
        if merge:
            doc.layers.remove(old_name)
        else:
            entry.dxf.name = new_name
            doc.layers.replace(old_name, entry)
    if merge:
        how = f"merged into existing layer, {len(moved)} entities moved"
    elif entry is None:
        how = f"undefined layer, {len(moved)} entities"
    else:
        how = f"{len(moved)} entities"
    return [Change(spec.op, f"layer {old_name} ({how})", old_name, new_name)]


def set_layer(doc: Drawing, spec: SetLayer, context: EditContext) -> list[Change]:
    """Color (ACI; a true color is removed, as CAD programs do) and linetype of matching layers.
    A linetype the drawing lacks is added when it is one of ezdxf's standard linetypes."""
    names = name_matcher(spec.layers)
    changes: list[Change] = []
    if names is None:  # no globs match no layer (a recipe always gives at least one)
        return changes
    for layer in list(doc.layers):
        name = layer.dxf.name
        if not names.fullmatch(name):
            continue
        if spec.color is not None:
            true_color = layer.dxf.get("true_color")
            if layer.color != spec.color or true_color is not None:
                before = str(layer.color) + (f" (true color #{true_color:06x})" if true_color is not None else "")
                layer.color = spec.color  # keeps the on/off state, which DXF stores in the sign
                layer.dxf.discard("true_color")
                changes.append(Change(spec.op, f"layer {name} color", before, str(spec.color)))
        if spec.linetype is not None:
            before = layer.dxf.get("linetype", "Continuous")
            if before.casefold() != spec.linetype.casefold():
                after = _linetype(doc, spec.linetype)
                layer.dxf.linetype = after
                changes.append(Change(spec.op, f"layer {name} linetype", before, after))
    return changes


def _linetype(doc: Drawing, name: str) -> str:
    """The drawing's spelling of linetype `name`, added from ezdxf's standard set if missing."""
    if doc.linetypes.has_entry(name):
        return doc.linetypes.get(name).dxf.name
    # ezdxf's patterns are in inches; metric drawings get them scaled, as ezdxf.new() does
    factor = ISO_LTYPE_FACTOR if doc.header.get("$MEASUREMENT", 1) else 1.0
    for standard, description, pattern in linetypes(scale=factor):
        if standard.casefold() == name.casefold():
            doc.linetypes.new(standard, dxfattribs={"description": description, "pattern": pattern})
            return standard
    raise InputError(f"linetype {name!r} is neither defined in the drawing nor one of ezdxf's standard linetypes")


def purge_layers(doc: Drawing) -> list[Change]:
    """Delete layer table entries nothing refers to: no entity (in layouts or blocks), no viewport
    freeze list, not the current layer; never 0, Defpoints or layers of external references."""
    used = {str(doc.header.get("$CLAYER", "0")).casefold(), *PROTECTED_LAYERS}
    for entity in _live_entities(doc):
        if entity.dxf.hasattr("layer"):
            used.add(entity.dxf.layer.casefold())
        if isinstance(entity, Viewport):
            used.update(name.casefold() for name in entity.frozen_layers)
    changes = []
    for layer in list(doc.layers):
        name = layer.dxf.name
        if name.casefold() not in used and "|" not in name:
            doc.layers.remove(name)
            changes.append(Change("purge", f"layer {name}", name, None))
    return changes
