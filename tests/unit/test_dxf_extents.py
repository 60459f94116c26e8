"""Extents measured with each block definition measured once give ezdxf's own values
(``ezdxf.bbox.extents(fast=False)``), whether the block's box is moved or ezdxf measures."""

from __future__ import annotations

import math
import random

import ezdxf
import pytest
from ezdxf import bbox
from ezdxf.lldxf.const import DXFStructureError
from ezdxf.math import BoundingBox
from ezdxf.path import Path, precise_bbox

from extractors.dxf_extents import Extents, _precise_bbox, measure


def _same(box: BoundingBox, expected: BoundingBox) -> None:
    assert box.has_data == expected.has_data
    if expected.has_data:
        size = max(expected.size.x, expected.size.y, expected.size.z, 1.0)
        for got, want in zip((*box.extmin, *box.extmax), (*expected.extmin, *expected.extmax)):
            assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12 * size), (box, expected)


def _drawing():
    doc = ezdxf.new()
    curved = doc.blocks.new("CURVED", base_point=(1, 2))
    curved.add_line((0, 0), (10, 0))
    curved.add_arc((5, 5), 3, 20, 160)
    curved.add_circle((-4, 2), 1.5)
    curved.add_spline([(0, 0), (3, 7), (6, -2), (9, 4)])
    curved.add_lwpolyline([(0, 0, 0, 0, 0.5), (4, 1, 0, 0, -1), (8, -3)], format="xyseb")
    curved.add_ellipse((2, -6), major_axis=(3, 1), ratio=0.4, start_param=0.3, end_param=2.5)
    hatch = curved.add_hatch()
    hatch.paths.add_polyline_path([(0, 0, 0.3), (5, 0, 0), (5, 5, 0)], is_closed=True)
    straight = doc.blocks.new("STRAIGHT")
    straight.add_line((0, 0), (10, 3))
    straight.add_lwpolyline([(1, 1), (6, -2), (3, 8)], close=True)
    straight.add_solid([(0, 0), (2, 0), (0, 2)])
    straight.add_point((12, -5))
    text = doc.blocks.new("TEXT")
    text.add_line((0, 0), (4, 0))
    text.add_text("Label", height=2.5).set_placement((1, 1))
    text.add_mtext("two\\Plines", dxfattribs={"char_height": 1.2, "insert": (0, -3)})
    text.add_attdef("TAG", (0, -6), dxfattribs={"height": 1.0})
    nested = doc.blocks.new("NESTED")
    nested.add_blockref("CURVED", (20, 0), dxfattribs={"rotation": 90})
    nested.add_blockref("STRAIGHT", (-5, 5), dxfattribs={"rotation": 37})
    nested.add_circle((0, 0), 2)
    return doc


# (block, rotation, x scale, y scale, measured by moving the block's box)
INSERTS = [
    ("CURVED", 0, 1, 1, True),
    ("CURVED", 90, 2, 2, True),
    ("CURVED", 180, -0.5, 0.5, True),  # mirrored
    ("CURVED", 270, 3, -3, True),
    ("CURVED", 30, 1, 1, False),  # a turned arc's box is not the turned box
    ("CURVED", 0, 2, 1, False),  # non-uniform: ezdxf makes ellipses of the arcs
    ("STRAIGHT", 30, 1, 1, True),  # straight content: its points turned
    ("STRAIGHT", 123.4, -2, 2, True),
    ("STRAIGHT", 0, 2, 1, False),
    ("TEXT", 90, 1, 1, True),
    ("TEXT", 37, 1, 1, True),  # text boxes are straight: turned by any angle
    ("TEXT", 0, -1, 1, False),  # ezdxf turns mirrored text, it does not mirror it
    ("TEXT", 0, 2, 2, False),  # ezdxf keeps an MTEXT's box size when scaling it
    ("NESTED", 0, 1, 1, True),
    ("NESTED", 180, 1.5, 1.5, True),
    ("NESTED", 45, 1, 1, False),
]


@pytest.mark.parametrize(("name", "rotation", "sx", "sy", "moved"), INSERTS)
def test_a_block_reference_measures_as_ezdxf_measures_it(name, rotation, sx, sy, moved):
    doc = _drawing()
    insert = doc.modelspace().add_blockref(
        name, (100, -50), dxfattribs={"rotation": rotation, "xscale": sx, "yscale": sy}
    )
    extents = Extents()
    _same(extents.entity(insert), bbox.extents((insert,), fast=False))
    assert (extents.moved, extents.fallbacks) == ((1, 0) if moved else (0, 1))


def test_a_block_inserted_many_times_is_measured_once():
    doc = _drawing()
    msp = doc.modelspace()
    for i in range(40):
        scale = (1 + i % 3) * (-1 if i % 5 == 0 else 1)
        msp.add_blockref(
            "NESTED", (i * 7.5, i), dxfattribs={"rotation": 90 * (i % 4), "xscale": scale, "yscale": abs(scale)}
        )
    extents = Extents()
    box = BoundingBox()
    for entity in msp:
        box.extend(list(extents.entity(entity)))
    _same(box, bbox.extents(msp, fast=False))
    assert extents.moved == 40
    assert extents.blocks_measured == 3  # NESTED, CURVED, STRAIGHT: each once


def test_attributes_and_a_base_point_count_as_in_ezdxf():
    doc = _drawing()
    insert = doc.modelspace().add_blockref("TEXT", (3, 4), dxfattribs={"rotation": 90})
    insert.add_auto_attribs({"TAG": "a long attribute value"})
    extents = Extents()
    _same(extents.entity(insert), bbox.extents((insert,), fast=False))
    assert extents.moved == 1


def test_dimensions_and_plain_entities_measure_as_in_ezdxf():
    doc = _drawing()
    msp = doc.modelspace()
    msp.add_linear_dim(base=(0, 5), p1=(0, 0), p2=(30, 0)).render()
    msp.add_radius_dim(center=(50, 0), radius=8, angle=35).render()
    msp.add_text("plain", height=3).set_placement((-20, -20))
    msp.add_line((1, 1), (-40, 60))
    msp.add_arc((0, 0), 9, 10, 300)
    extents = Extents()
    for entity in msp:
        _same(extents.entity(entity), bbox.extents((entity,), fast=False))
    _same(measure(msp), bbox.extents(msp, fast=False))
    assert extents.fallbacks == 0


def test_a_reference_ezdxf_cannot_measure_fails_as_in_ezdxf():
    doc = _drawing()
    insert = doc.modelspace().add_blockref("UNDEFINED", (0, 0))
    with pytest.raises(DXFStructureError):
        bbox.extents((insert,), fast=False)
    extents = Extents()
    with pytest.raises(DXFStructureError):
        extents.entity(insert)
    assert extents.fallbacks == 1


@pytest.mark.parametrize("seed", range(5))
def test_a_paths_box_is_ezdxfs_precise_box_exactly(seed):
    rng = random.Random(seed)
    path = Path((rng.uniform(-9, 9), rng.uniform(-9, 9), rng.uniform(-1, 1)))
    for _ in range(30):
        point = lambda: (rng.uniform(-9, 9), rng.uniform(-9, 9), rng.uniform(-1, 1))  # noqa: E731
        kind = rng.randrange(4)
        if kind == 0:
            path.line_to(point())
        elif kind == 1:
            path.curve3_to(point(), point())
        elif kind == 2:
            path.curve4_to(point(), point(), point())
        else:
            path.move_to(point())
    path.curve4_to((1, 1, 0), (1, 1, 0), (1, 1, 0))  # degenerate: a point
    got, expected = _precise_bbox(path), precise_bbox(path)
    assert (tuple(got.extmin), tuple(got.extmax)) == (tuple(expected.extmin), tuple(expected.extmax))
    assert not _precise_bbox(Path((3, 4))).has_data
