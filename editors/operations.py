"""Run a recipe's operations over one drawing, in order, and collect what each changed."""

from __future__ import annotations

from typing import assert_never

from ezdxf.document import Drawing

from documents.errors import InputError
from editors.attributes import set_attributes
from editors.blocks import purge_blocks, redefine_block
from editors.changes import Change, EditContext
from editors.layers import purge_layers, rename_layer, set_layer
from editors.recipe import (
    ConvertVersion,
    Operation,
    Purge,
    RedefineBlock,
    RenameLayer,
    ReplaceText,
    SetAttributes,
    SetLayer,
)
from editors.text import replace_text
from editors.version import convert_version


def purge(doc: Drawing, spec: Purge, context: EditContext) -> list[Change]:
    # Blocks first: entities inside a purged block may have been a layer's only users.
    changes = purge_blocks(doc) if spec.blocks else []
    return changes + (purge_layers(doc) if spec.layers else [])


def apply_operation(doc: Drawing, op: Operation, context: EditContext) -> list[Change]:
    """Dispatch on the operation's type (a match, so that mypy checks each handler's spec type and
    that every operation has one)."""
    match op:
        case SetAttributes():
            return set_attributes(doc, op, context)
        case ReplaceText():
            return replace_text(doc, op, context)
        case RenameLayer():
            return rename_layer(doc, op, context)
        case SetLayer():
            return set_layer(doc, op, context)
        case Purge():
            return purge(doc, op, context)
        case RedefineBlock():
            return redefine_block(doc, op, context)
        case ConvertVersion():
            return convert_version(doc, op, context)
        case _:
            assert_never(op)


def apply_operations(doc: Drawing, operations: tuple[Operation, ...], context: EditContext) -> list[Change]:
    """Every change the operations made, in order; an empty list means the drawing is untouched
    in content (ezdxf may have consumed handles, which is why it is then not written)."""
    changes: list[Change] = []
    for index, op in enumerate(operations):
        try:
            changes += apply_operation(doc, op, context)
        except InputError as exc:
            raise InputError(f"operations[{index}] {op.op}: {exc}") from exc
    return changes
