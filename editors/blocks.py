"""Block operations: ``redefine_block`` from a library drawing, and purging unused blocks.

Redefining copies the library block into the drawing with ezdxf's ``xref.Loader`` (which also
brings the layers, text styles, linetypes and nested blocks it uses; the drawing's own
definitions of the same names are kept). Existing block references keep their attribute values.
Whether a block already equals the library block is decided by a fingerprint of its content
(every entity's DXF tags without handles and pointers, which differ between copies), so applying
the same redefinition again changes nothing.
"""

from __future__ import annotations

import hashlib
import uuid

from ezdxf import xref
from ezdxf.blkrefs import find_unreferenced_blocks
from ezdxf.document import Drawing
from ezdxf.layouts import BlockLayout
from ezdxf.lldxf.tagwriter import TagCollector
from ezdxf.lldxf.types import HANDLE_CODES, POINTER_CODES
from ezdxf.sections.blocks import is_special_block

from documents.errors import InputError
from editors.changes import Change, EditContext
from editors.recipe import RedefineBlock
from editors.source_blocks import SourceBlock, SourceBlockError, load_source_block

_IDENTITY_CODES = HANDLE_CODES | POINTER_CODES
MODEL_SPACE = "*Model_Space"


def source_block_for(spec: RedefineBlock) -> SourceBlock:
    try:
        source = load_source_block(spec.source, spec.source_block)
    except SourceBlockError as exc:
        raise InputError(str(exc)) from exc
    if source.sha256 != spec.source_sha256:
        raise InputError(f"library drawing {spec.source.name} changed after the recipe was loaded")
    return source


def block_fingerprint(block: BlockLayout) -> str:
    digest = hashlib.sha256(repr(tuple(block.base_point)).encode())
    for entity in block:
        collector = TagCollector(dxfversion=block.doc.dxfversion)
        entity.export_dxf(collector)
        for tag in collector.tags:
            if tag.code in _IDENTITY_CODES:
                continue
            value = tag.value
            if tag.code == 2 and isinstance(value, str) and value.startswith("*"):
                value = "*"  # an anonymous block's number differs between copies
            digest.update(repr((tag.code, value)).encode())
    return digest.hexdigest()


def redefine_block(doc: Drawing, spec: RedefineBlock, context: EditContext) -> list[Change]:
    """Replace the content of block `spec.block` with the library block; a drawing without that
    block is left alone (a redefinition, not an insertion)."""
    target = doc.blocks.get(spec.block)
    if target is None:
        return []
    source = source_block_for(spec)
    scratch = doc.blocks.new(f"CADPIPE_REDEFINE_{uuid.uuid4().hex[:12]}", base_point=source.block.base_point)
    loader = xref.Loader(source.doc, doc, conflict_policy=xref.ConflictPolicy.KEEP)
    if source.block.name.casefold() == MODEL_SPACE.casefold():
        loader.load_modelspace(target_layout=scratch)
    else:
        loader.load_block_layout_into(source.block, scratch)
    loader.execute()
    before, after = block_fingerprint(target), block_fingerprint(scratch)
    if before == after:
        doc.blocks.delete_block(scratch.name, safe=False)
        return []
    count_before = len(target)
    target.delete_all_entities()
    for entity in list(scratch):
        scratch.move_to_layout(entity, target)
    target.base_point = scratch.base_point
    doc.blocks.delete_block(scratch.name, safe=False)
    return [
        Change(
            spec.op,
            f"block {target.name}",
            f"{count_before} entities (content {before[:8]})",
            f"{len(target)} entities (content {after[:8]}) from {spec.source.name}",
        )
    ]


def purge_blocks(doc: Drawing) -> list[Change]:
    """Delete named block definitions nothing refers to, repeatedly (a purged block may have been
    the only user of a nested one). Anonymous blocks, arrow blocks, external references and
    their dependent blocks are kept: they are referenced in ways an INSERT count does not see."""
    changes: list[Change] = []
    while True:
        unused = sorted(name for name in find_unreferenced_blocks(doc) if _purgeable(doc, name))
        if not unused:
            return changes
        for name in unused:
            doc.blocks.delete_block(name, safe=False)
            changes.append(Change("purge", f"block {name}", name, None))


def _purgeable(doc: Drawing, name: str) -> bool:
    if name.startswith("*") or "|" in name or is_special_block(name):
        return False
    block = doc.blocks.get(name)
    return block is not None and not block.block_record.is_xref
