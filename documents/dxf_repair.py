"""Audit a loaded drawing without losing what a CAD program would draw.

ezdxf's auditor repairs real problems (missing layers, invalid owners, broken table links) but also
deletes entities it judges invalid: a SPLINE whose knot count does not match, a DIMENSION whose
geometry block is missing, an entity whose owner handle points nowhere, a POLYLINE listed in a
block with the wrong owner. CAD programs draw most of those. :func:`audit_keeping_content` runs
the same audit, but:

- an entity it would *trash* is repaired instead where that is possible (the owner set to the
  layout or block it is listed in; a SPLINE's knots, weights or degree made consistent; a HATCH's
  invalid boundary paths dropped, keeping the valid ones; an ATTRIB without a tag given an empty
  tag; a DIMENSION without a geometry block kept and its block regenerated);
- an entity it *unlinks* from the layout or block it is listed in (owner mismatch) is put back
  where the file listed it;
- whatever is still removed (nothing to draw: an ELLIPSE with a null axis, a LEADER with one
  vertex, an INSERT of a block that does not exist ...) is counted per type and reason.

:func:`repair_for_drawing` then fixes what ezdxf's renderer and extents code trip on although CAD
programs do not: a block reference with a zero Z scale (common in 2D files, it divides by zero
when transformed) gets Z scale 1, which changes nothing in the drawing's plane.

Counts compare every graphical entity listed in a layout or block definition (``entities_read``,
before the audit) with the same after it (``entities_kept``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ezdxf.audit import AuditError, Auditor
from ezdxf.document import Drawing
from ezdxf.entities import DXFEntity, DXFGraphic, is_graphic_entity
from ezdxf.math import open_uniform_knot_vector, required_control_points, required_knot_values

_MAX_NAMED = 8


@dataclass
class RepairReport:
    """What loading a drawing changed in its content: counted, so that nothing is silent."""

    entities_read: int = 0  # graphical entities listed in layouts and blocks, as loaded
    entities_kept: int = 0  # the same after the audit and the repairs
    removed: Counter[tuple[str, str]] = field(default_factory=Counter)  # (dxftype, why) -> count
    repaired: Counter[tuple[str, str]] = field(default_factory=Counter)  # (dxftype, what) -> count

    @property
    def entities_removed(self) -> int:
        return max(self.entities_read - self.entities_kept, 0)

    def warnings(self) -> list[str]:
        """One sentence for what was removed, one for what was repaired and kept."""
        sentences = []
        if self.removed:
            n = sum(self.removed.values())
            what = "entity that cannot" if n == 1 else "entities that cannot"
            sentences.append(f"removed {n} {what} be drawn: {_listing(self.removed)}")
        if self.repaired:
            n = sum(self.repaired.values())
            sentences.append(f"repaired and kept {n} {'entity' if n == 1 else 'entities'}: {_listing(self.repaired)}")
        return sentences


def _listing(counts: Counter[tuple[str, str]]) -> str:
    items = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    text = ", ".join(f"{n} {dxftype} ({why})" for (dxftype, why), n in items[:_MAX_NAMED])
    if len(items) > _MAX_NAMED:
        text += f" and {sum(n for _, n in items[_MAX_NAMED:])} more"
    return text


@dataclass
class _Listed:
    """Where the file lists a graphical entity: kept across the audit by reference."""

    entity: DXFEntity
    dxftype: str
    handle: str
    record_handle: str


def snapshot(doc: Drawing) -> list[_Listed]:
    """Every graphical entity listed in a layout or block definition, in file order."""
    listed = []
    for record in doc.block_records:
        space = getattr(record, "entity_space", None)
        if space is None:
            continue
        record_handle = record.dxf.handle
        for entity in space:
            listed.append(_Listed(entity, entity.dxftype(), str(entity.dxf.get("handle", "") or ""), record_handle))
    return listed


def audit_keeping_content(doc: Drawing, auditor: Auditor | None = None) -> tuple[Auditor, RepairReport]:
    """Run ezdxf's audit on `doc` (or the prepared `auditor`) keeping drawable content.

    `auditor` lets a caller pass one that already holds the recovery's own findings."""
    listed = snapshot(doc)
    report = RepairReport(entities_read=len(listed))
    auditor = auditor if auditor is not None else Auditor(doc)
    space_of = {id(item.entity): item.record_handle for item in listed}
    keeper = _Keeper(auditor, space_of, report)
    auditor.trash = keeper.trash  # type: ignore[method-assign]  # the one hook ezdxf offers
    try:
        auditor.run()
    finally:
        del auditor.trash  # back to the class's method
    _relink(doc, listed, report)
    report.entities_kept = len(snapshot(doc))
    _count_removed(listed, auditor, report)
    return auditor, report


class _Keeper:
    """Stands in for ``Auditor.trash``: repairs what can be drawn, trashes the rest."""

    def __init__(self, auditor: Auditor, space_of: dict[int, str], report: RepairReport) -> None:
        self.auditor = auditor
        self.space_of = space_of
        self.report = report
        self.trash_for_real = Auditor.trash.__get__(auditor)

    def trash(self, entity: DXFEntity | None) -> None:
        if entity is None or not entity.is_alive:
            return
        listed_in = self.space_of.get(id(entity))
        if listed_in is None or not is_graphic_entity(entity):  # not drawn anyway: as ezdxf does
            self.trash_for_real(entity)
            return
        what = self._repair(entity, listed_in)
        if what is None:
            self.trash_for_real(entity)  # counted by _count_removed, with the audit's reason
        else:
            self.report.repaired[(entity.dxftype(), what)] += 1

    def _repair(self, entity: DXFEntity, listed_in: str) -> str | None:
        doc = self.auditor.doc
        owner = entity.dxf.get("owner")
        if owner not in doc.entitydb:  # the owner points nowhere: it belongs where it is listed
            entity.dxf.owner = listed_in
            return "invalid owner handle"
        repair = _REPAIRS.get(entity.dxftype())
        return repair(entity, self.auditor) if repair is not None else None


def _repair_spline(spline: Any, auditor: Auditor) -> str | None:
    """Make the SPLINE's definition consistent, as CAD programs do when they draw it."""
    n_control = len(spline.control_points)
    if n_control == 0:
        return "fit points kept" if len(spline.fit_points) >= 2 else None
    if n_control < 2:
        return None
    order = spline.dxf.degree + 1
    fixed = []
    if spline.dxf.degree < 1 or n_control < required_control_points(order):
        spline.dxf.degree = max(1, min(3, n_control - 1))
        order = spline.dxf.degree + 1
        fixed.append("degree lowered to fit its control points")
    if len(spline.knots) != required_knot_values(n_control, order):
        spline.knots = open_uniform_knot_vector(n_control, order, normalize=True)
        fixed.append("knots regenerated")
    if len(spline.weights) and len(spline.weights) != n_control:
        spline.weights = []
        fixed.append("weights dropped")
    return ", ".join(fixed) or "kept as drawn"


def _repair_dimension(dimension: Any, auditor: Auditor) -> str | None:
    # The measurement is in the entity itself; ezdxf can draw the block again from it.
    auditor.add_post_audit_job(lambda: _regenerate_dimension(dimension))
    return "geometry block regenerated"


def _regenerate_dimension(dimension: Any) -> None:
    try:
        dimension.override().render()
    except Exception:  # ezdxf cannot render this kind: it stays, drawn without its block
        pass


def _repair_polygon(polygon: Any, auditor: Auditor) -> str | None:
    valid = [path for path in polygon.paths if path.is_valid()]
    if not valid:
        return None
    polygon.paths.paths = valid
    return "invalid boundary paths dropped"


def _repair_attrib(attrib: Any, auditor: Auditor) -> str | None:
    if attrib.dxf.hasattr("tag"):
        return None
    attrib.dxf.tag = ""
    return "missing tag set empty"


_REPAIRS: dict[str, Callable[[Any, Auditor], str | None]] = {
    "SPLINE": _repair_spline,
    "DIMENSION": _repair_dimension,
    "ARC_DIMENSION": _repair_dimension,
    "LARGE_RADIAL_DIMENSION": _repair_dimension,
    "HATCH": _repair_polygon,
    "MPOLYGON": _repair_polygon,
    "ATTRIB": _repair_attrib,
    "ATTDEF": _repair_attrib,
}


def _relink(doc: Drawing, listed: list[_Listed], report: RepairReport) -> None:
    """Put back entities the audit unlinked from the layout or block the file lists them in."""
    by_record: dict[str, list[_Listed]] = {}
    for item in listed:
        by_record.setdefault(item.record_handle, []).append(item)
    for record in doc.block_records:
        items = by_record.get(record.dxf.handle)
        space = getattr(record, "entity_space", None)
        if not items or space is None:
            continue
        present = {id(entity) for entity in space}
        missing = [
            item
            for item in items
            if id(item.entity) not in present and item.entity.is_alive and item.handle in doc.entitydb
        ]
        if not missing:
            continue
        for item in missing:
            item.entity.dxf.owner = record.dxf.handle
            report.repaired[(item.dxftype, "listed in a block with another owner")] += 1
        wanted = {id(item.entity) for item in items}
        order = [item.entity for item in items if item.entity.is_alive]
        order += [entity for entity in space if id(entity) not in wanted]  # added by the audit
        space.entities = order


def _count_removed(listed: list[_Listed], auditor: Auditor, report: RepairReport) -> None:
    kept = {id(item.entity) for item in snapshot(auditor.doc)}
    reasons = _reasons_by_handle(auditor)
    for item in listed:
        if id(item.entity) not in kept:
            report.removed[(item.dxftype, reasons.get(item.handle, "removed by ezdxf's audit"))] += 1


def _reasons_by_handle(auditor: Auditor) -> dict[str, str]:
    """Handle -> the audit's reason, read from its fix entries (``... SPLINE(#2D) ...``)."""
    reasons: dict[str, str] = {}
    for entry in auditor.fixes:
        message = entry.message or ""
        start = message.find("(#")
        while start != -1:
            end = message.find(")", start)
            if end == -1:
                break
            reasons.setdefault(message[start + 2 : end], _reason(entry.code))
            start = message.find("(#", end)
    return reasons


def _reason(code: int) -> str:
    try:
        return AuditError(code).name.lower().replace("_", " ")
    except ValueError:
        return f"audit code {code}"


def repair_for_drawing(doc: Drawing) -> Counter[tuple[str, str]]:
    """Fix, in place, what ezdxf's renderer and extents trip on but CAD programs draw."""
    repaired: Counter[tuple[str, str]] = Counter()
    for entity in doc.entitydb.values():
        if not isinstance(entity, DXFGraphic) or not entity.is_alive:
            continue
        if entity.dxftype() == "INSERT" and entity.dxf.get("zscale", 1.0) == 0:
            entity.dxf.zscale = 1.0  # divides by zero when transformed; 2D content is unchanged
            repaired[("INSERT", "zero Z scale drawn as 1")] += 1
    return repaired
