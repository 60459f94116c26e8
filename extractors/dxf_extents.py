"""The extents of a layout's entities as ``ezdxf.bbox.extents(fast=False)`` measures them, faster.

ezdxf measures each entity through a general pipeline (decompose, wrap in a primitive, measure),
and a block reference by copying every entity of its block, transforming the copies and
measuring those; its ``bbox.Cache`` caches by handle, and the copies have none, so a block
inserted a thousand times is copied and measured a thousand times. Most of the metadata step of
large drawings went there (10,000 LINEs: 95 us each, nearly all of it the pipeline around a
two-point box; a drawing of 29 block references: 0.7 s).

Here, with the same values:

- an entity that is neither a block reference nor built of virtual entities is measured by the
  same primitive ezdxf would make for it, without the pipeline around it;
- a block definition is measured once, in its own coordinates, and a block reference's box is
  that box moved, where that is exact: the reference's matrix scales x and y alike (z too, unless
  everything in the block lies in xy planes) without shear, and it is a signed permutation
  (rotations by multiples of 90 degrees, mirroring: the box of the transformed geometry is the
  transformed box for lines, arcs, polylines, splines, hatches ...), or it turns about z by any
  angle and the block holds only straight geometry (lines, straight polylines, solids, points,
  text boxes: the box of the turned vertices). ezdxf does not transform text geometrically in
  every case: a mirrored TEXT is turned, not mirrored, and an MTEXT keeps its stored box size
  when scaled; a block holding text is moved so only without mirroring (and for MTEXT, without
  scaling). A DIMENSION is its geometry block as it stands (or moved), the same way.
- everything else (other rotations, non-uniform scaling, MINSERT, blocks holding other types,
  LEADER, MULTILEADER, tables, any entity whose fast measuring raises) is measured by ezdxf itself.

Floats can differ from ezdxf's in the last bits (the box is transformed instead of each point,
and a 90-degree rotation matrix holds 6e-17 where 0 belongs); nothing else differs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from ezdxf import bbox
from ezdxf.disassemble import LinePrimitive, PointPrimitive, Primitive, make_primitive
from ezdxf.entities import Dimension, DXFEntity, Insert
from ezdxf.layouts import BaseLayout
from ezdxf.math import Z_AXIS, Bezier3P, Bezier4P, BoundingBox, Matrix44, Vec3
from ezdxf.math.curvetools import quadratic_to_cubic_bezier
from ezdxf.path import Command, Path
from ezdxf.protocols import SupportsVirtualEntities

# Types whose ezdxf transform is the geometric image of the entity (under the transforms taken
# here) and whose box is its primitive's box.
_GEOMETRIC = frozenset(
    (
        "LINE",
        "POINT",
        "ARC",
        "CIRCLE",
        "ELLIPSE",
        "SPLINE",
        "LWPOLYLINE",
        "POLYLINE",
        "SOLID",
        "TRACE",
        "3DFACE",
        "HATCH",
    )
)
_TEXT = frozenset(("TEXT", "ATTRIB"))
# A matrix entry counts as zero below this share of the scale (a 90-degree rotation leaves 6e-17
# there), and the axes' scales as one within it.
_ZERO = 1e-12


@dataclass(frozen=True)
class _Block:
    """A block definition measured in its own coordinates, and what limits moving that box."""

    box: BoundingBox
    points: list[Vec3] | None  # all content is straight: the box of these points is its box
    text: bool  # holds TEXT or ATTRIB (of a nested reference): no mirroring
    mtext: bool  # holds MTEXT: no mirroring, no scaling
    flat: bool  # every entity's plane is the xy plane: z may be scaled on its own
    attdef: bool  # holds ATTDEF: a block reference leaves them out, a DIMENSION would not


class Extents:
    """Measures entities; block definitions are measured once per instance (one drawing)."""

    def __init__(self) -> None:
        self._blocks: dict[int, _Block | None] = {}  # id(block layout) -> measured, None: ezdxf's way
        self._plain: dict[type, bool] = {}
        self._cache = bbox.Cache()  # what ezdxf's own measuring gets, as before
        self.fallbacks = 0  # entities measured by ezdxf itself
        self.moved = 0  # block boxes moved instead of measuring the block's entities again

    @property
    def blocks_measured(self) -> int:
        """Block definitions whose entities were measured (each once)."""
        return len(self._blocks)

    def entity(self, entity: DXFEntity) -> BoundingBox:
        """``ezdxf.bbox.extents((entity,), fast=False)``; raises where that raises."""
        if self._is_plain(entity):
            return _primitive_box(make_primitive(entity))
        box = None
        try:
            if isinstance(entity, Insert):
                box = self._insert(entity)
            elif isinstance(entity, Dimension):
                box = self._dimension(entity)
        except MemoryError:
            raise
        except Exception:  # ezdxf decides below, and raises its own error if it fails too
            box = None
        if box is None:
            self.fallbacks += 1
            box = bbox.extents((entity,), fast=False, cache=self._cache)
        else:
            self.moved += 1
        return box

    def _is_plain(self, entity: DXFEntity) -> bool:
        """Not decomposed by ezdxf: measured as its own primitive (what ezdxf checks per entity)."""
        cls = type(entity)
        plain = self._plain.get(cls)
        if plain is None:
            plain = not isinstance(entity, Insert) and not isinstance(entity, SupportsVirtualEntities)
            self._plain[cls] = plain
        return plain

    def _insert(self, insert: Insert) -> BoundingBox | None:
        if insert.mcount > 1:
            return None
        layout = insert.block()
        block = self._block(layout) if layout is not None else None
        if block is None:
            return None
        box = _moved(block, insert.matrix44())
        if box is None:
            return None
        for attrib in insert.attribs:
            _extend(box, _primitive_box(make_primitive(attrib)))
        return box

    def _dimension(self, dimension: Dimension) -> BoundingBox | None:
        # ezdxf: copies of the geometry block's entities, moved to the insert point, if any;
        # other extrusions convert between coordinate systems: ezdxf's way then.
        if dimension.is_virtual or dimension.virtual_block_content or dimension.ocs().transform:
            return None
        layout = dimension.get_geometry_block()
        block = self._block(layout) if layout is not None else None
        if block is None or block.attdef:
            return None
        insert = dimension.dxf.get("insert", None)
        if not insert:
            return block.box
        return _moved(block, Matrix44.translate(insert.x, insert.y, insert.z))

    def _block(self, layout: BaseLayout) -> _Block | None:
        key = id(layout)
        if key not in self._blocks:
            self._blocks[key] = None  # a block that (wrongly) holds itself is not measured here
            self._blocks[key] = self._measure_block(layout)
        return self._blocks[key]

    def _measure_block(self, layout: BaseLayout) -> _Block | None:
        box = BoundingBox()
        points: list[Vec3] | None = []
        text = mtext = attdef = False
        flat = True
        for entity in layout:
            dxftype = entity.dxftype()
            if dxftype == "ATTDEF":
                attdef = True
                continue
            if dxftype in _GEOMETRIC or dxftype in _TEXT or dxftype == "MTEXT":
                if not self._is_plain(entity):
                    return None
                if dxftype == "MTEXT" and not Z_AXIS.isclose(entity.dxf.extrusion, abs_tol=0.0):
                    return None  # ezdxf measures it in a different plane once it is moved
                text |= dxftype in _TEXT
                mtext |= dxftype == "MTEXT"
                flat = flat and _flat(entity)
                points = _add_plain(entity, box, points)
            elif dxftype == "INSERT" and isinstance(entity, Insert):
                nested_layout = entity.block() if entity.mcount <= 1 else None
                nested = self._block(nested_layout) if nested_layout is not None else None
                if nested is None:
                    return None
                m = entity.matrix44()
                moved = _moved(nested, m)
                if moved is None:
                    return None
                _extend(box, moved)
                if points is not None and nested.points is not None:
                    points += m.transform_vertices(nested.points)
                else:
                    points = None
                flat = flat and nested.flat and _turns_about_z(m)
                for attrib in entity.attribs:
                    text = True
                    flat = flat and _flat(attrib)
                    points = _add_plain(attrib, box, points)
                text |= nested.text
                mtext |= nested.mtext
            else:
                return None
        return _Block(box, points, text, mtext, flat, attdef)


def _add_plain(entity: DXFEntity, box: BoundingBox, points: list[Vec3] | None) -> list[Vec3] | None:
    """Extend `box` by a plain entity's primitive; the block's straight points with the entity's,
    or None once anything in the block is curved."""
    primitive = make_primitive(entity)
    part = _primitive_box(primitive)
    _extend(box, part)
    if points is None:
        return None
    straight = _straight_points(primitive, part)
    return points + straight if straight is not None else None


def _primitive_box(primitive: Primitive) -> BoundingBox:
    """What ezdxf's pipeline yields for an entity it does not decompose: ``primitive.bbox()``,
    with ezdxf's ``precise_bbox`` of a path computed as one box of all its candidate points
    instead of a NumPy box per curve (the same points, so the same minima and maxima)."""
    if primitive.is_empty:
        return BoundingBox()
    if type(primitive).bbox is not Primitive.bbox:  # LINE, POINT: their own
        return primitive.bbox(fast=False)
    if primitive.mesh:
        return BoundingBox(primitive.vertices())
    path = primitive.path
    if path:
        return _precise_bbox(path)
    return BoundingBox()


def _precise_bbox(path: Path) -> BoundingBox:
    """``ezdxf.path.precise_bbox``: the start, every line and move end, and for each curve its
    ends and the points where it turns in x, y or z (``ezdxf.math.cubic_bezier_bbox``)."""
    if len(path) == 0:
        return BoundingBox()
    start = path.start
    points: list[Vec3] = [start]
    for cmd in path.commands():
        if cmd.type == Command.LINE_TO or cmd.type == Command.MOVE_TO:
            points.append(cmd.end)
        elif cmd.type == Command.CURVE4_TO:
            _cubic_points(Bezier4P((start, cmd.ctrl1, cmd.ctrl2, cmd.end)), points)  # type: ignore[union-attr]
        elif cmd.type == Command.CURVE3_TO:
            _cubic_points(quadratic_to_cubic_bezier(Bezier3P((start, cmd.ctrl, cmd.end))), points)  # type: ignore[union-attr]
        start = cmd.end
    return BoundingBox(points)


def _cubic_points(curve: Bezier4P, points: list[Vec3], abs_tol: float = 1e-12) -> None:
    """The points ``ezdxf.math.cubic_bezier_bbox`` takes the box of, in its arithmetic."""
    cp = curve.control_points
    points += (cp[0], cp[3])
    for p1, p2, p3, p4 in zip(*cp):
        a = 3.0 * (-p1 + 3.0 * p2 - 3.0 * p3 + p4)
        b = 6.0 * (p1 - 2.0 * p2 + p3)
        c = 3.0 * (p2 - p1)
        if abs(a) < abs_tol:
            t = -c if abs(b) < abs_tol else -c / b
            if 0.0 < t < 1.0:
                points.append(curve.point(t))
            continue
        try:
            sqrt_bb4ac = math.sqrt(b * b - 4.0 * a * c)
        except ValueError:  # domain error
            continue
        aa = 2.0 * a
        t = (-b + sqrt_bb4ac) / aa
        if 0.0 < t < 1.0:
            points.append(curve.point(t))
        t = (-b - sqrt_bb4ac) / aa
        if 0.0 < t < 1.0:
            points.append(curve.point(t))


def _straight_points(primitive: Primitive, box: BoundingBox) -> list[Vec3] | None:
    """Points whose box is the primitive's box under every transform: its vertices, when all of
    it is straight lines (polygons: lines, straight polylines, solids, text boxes); else None."""
    if not box.has_data:
        return []
    if isinstance(primitive, LinePrimitive):
        return [Vec3(primitive.entity.dxf.start), Vec3(primitive.entity.dxf.end)]
    if isinstance(primitive, PointPrimitive):
        return [Vec3(primitive.entity.dxf.location)]
    if primitive.mesh is not None:
        return None  # e.g. a polyline's width: ezdxf builds it anew after the transform
    path = primitive.path
    if path is None or path.has_curves:
        return None
    return path.control_vertices()


def _flat(entity: DXFEntity) -> bool:
    extrusion = entity.dxf.get("extrusion", Z_AXIS)
    return extrusion.x == 0 and extrusion.y == 0 and extrusion.z != 0


def _turns_about_z(m: Matrix44) -> bool:
    (_, _, az), (_, _, bz), (cx, cy, cz) = (m.get_row(i)[:3] for i in range(3))
    return max(abs(az), abs(bz), abs(cx), abs(cy)) <= _ZERO * abs(cz)


def _extend(box: BoundingBox, part: BoundingBox) -> None:
    if part.has_data:
        box.extend((part.extmin, part.extmax))


def _moved(block: _Block, m: Matrix44) -> BoundingBox | None:
    """The box of `block`'s content transformed by `m`, as ezdxf measures the transformed
    content, or None where moving the measured content would not give that."""
    rows = [m.get_row(i)[:3] for i in range(3)]
    (ax, ay, az), (bx, by, bz), (cx, cy, cz) = rows
    scale = math.hypot(ax, ay, az)
    if not (scale > 0 and math.isfinite(scale)) or not all(math.isfinite(v) for v in (*m.get_row(3), cx, cy, cz)):
        return None
    zero = _ZERO * scale
    if abs(math.hypot(bx, by, bz) - scale) > zero or abs(ax * bx + ay * by + az * bz) > zero * scale:
        return None  # x and y scaled differently, or sheared: ezdxf rebuilds curves and text
    in_plane = max(abs(az), abs(bz), abs(cx), abs(cy)) <= zero  # a turn about z (any angle)
    if in_plane and block.flat:
        if abs(cz) <= zero:
            return None  # flattened to nothing along z: ezdxf's way
    elif abs(math.hypot(cx, cy, cz) - scale) > zero or abs(ax * cx + ay * cy + az * cz) > zero * scale:
        return None
    if block.text or block.mtext:
        if m.determinant() <= 0:
            return None  # mirroring: ezdxf turns text instead
        if block.mtext and abs(scale - 1.0) > _ZERO:
            return None  # ezdxf keeps an MTEXT's stored box size when scaling it
    if not block.box.has_data:
        return BoundingBox()
    big = [[abs(value) > zero for value in row] for row in rows]
    if all(sum(row) == 1 for row in big) and all(sum(column) == 1 for column in zip(*big)):
        # A signed permutation (rotations by multiples of 90 degrees, mirroring): boxes to boxes.
        return BoundingBox(m.transform_vertices(block.box.cube_vertices()))
    if block.points is not None and in_plane:
        return BoundingBox(m.transform_vertices(block.points))
    return None


def measure(entities: Iterable[DXFEntity]) -> BoundingBox:
    """The extents of all `entities` (one shared block measuring)."""
    extents = Extents()
    box = BoundingBox()
    for entity in entities:
        _extend(box, extents.entity(entity))
    return box
