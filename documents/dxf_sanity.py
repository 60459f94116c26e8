"""Entities whose coordinates are not numbers: NaN and infinity, which a DXF may hold as text.

ezdxf loads `10\\nnan` as a float NaN without complaint; drawing such an entity writes `nan` into
the SVG path (MuPDF then drops the path, or the whole page) and measuring it makes the extents NaN.
They cannot be drawn or measured, so they are removed from the loaded document (the file is never
changed) and named in the drawing's warnings.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

from ezdxf.document import Drawing
from ezdxf.entities import DXFGraphic, LWPolyline, Mesh, Polyline, Spline


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (tuple, list)) or hasattr(value, "__iter__") and hasattr(value, "x"):
        return all(_finite(v) for v in value)
    return True


def _points(entity: DXFGraphic) -> Iterable[Any]:
    """Coordinates an entity keeps outside its DXF attributes."""
    if isinstance(entity, LWPolyline):
        yield from entity.get_points("xyseb")
    elif isinstance(entity, Polyline):  # POLYFACE and POLYMESH too: each is a POLYLINE in DXF
        for vertex in entity.vertices:
            yield from vertex.dxfattribs().values()
    elif isinstance(entity, Spline) and entity.dxftype() == "SPLINE":  # a HELIX is a Spline subclass
        yield from entity.control_points
        yield from entity.fit_points
        yield from entity.knots
    elif isinstance(entity, Mesh):
        yield from entity.vertices


def has_non_finite(entity: DXFGraphic) -> bool:
    try:
        values = list(entity.dxfattribs().values()) + list(_points(entity))
    except Exception:
        return False
    return not all(_finite(v) for v in values)


def remove_non_finite(doc: Drawing) -> list[str]:
    """Remove, from every layout and block, the entities with a NaN or infinite coordinate or
    size; return the warning naming them (empty when there were none)."""
    removed: Counter[str] = Counter()
    for block in doc.blocks:  # layouts are blocks too (*Model_Space, *Paper_Space...)
        for entity in [e for e in block if has_non_finite(e)]:
            removed[entity.dxftype()] += 1
            block.delete_entity(entity)
    if not removed:
        return []
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(removed.items()))
    total = sum(removed.values())
    return [f"{total} entities with NaN or infinite coordinates cannot be drawn or measured and are left out: {kinds}"]
