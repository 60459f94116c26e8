"""The ``convert_version`` operation: the DXF version the drawing is written in."""

from __future__ import annotations

from ezdxf.document import Drawing

from documents.errors import InputError
from editors.changes import Change, EditContext
from editors.recipe import ConvertVersion, version_label


def convert_version(doc: Drawing, spec: ConvertVersion, context: EditContext) -> list[Change]:
    """Upgrade to `spec.to` when the drawing is older. A newer drawing fails rather than losing
    what its version holds: select by ``dxf_version`` to leave such drawings out."""
    stored = context.stored_version
    if stored == spec.to:
        return []
    if stored > spec.to:
        raise InputError(
            f"the drawing is {version_label(stored)}, newer than {version_label(spec.to)}: downgrading is not done"
        )
    doc.dxfversion = spec.to  # ezdxf writes the document in this version when saving
    return [Change(spec.op, "DXF version ($ACADVER)", version_label(stored), version_label(spec.to))]
