"""Bill of materials of a 3D model's assembly tree, in the rows of the 2D ``bom`` table.

An indented BOM: one row per product (part or sub-assembly) per path from a root, depth
first, children in document order. Identical components under one parent collapse into one row:
an assembly holding 3 instances of ``BOLT`` gives one ``BOLT`` row with ``qty_per_parent`` 3 in
``attributes``. ``qty``/``insert_count`` are *flattened*: the instances in the whole model along
that path, multiplied through every level (a sub-assembly used twice that holds 3 bolts gives a
bolt row with qty 6). A part used under different parents gives one row per parent path; its
total is the sum of those rows' ``qty``. Every root (free shape) is a level-0 row with qty 1, so
a single part gives one row.

Columns (the 2D BOM columns of :mod:`extractors.dxf_bom`, plus ``parent``)
    item_no (None), part_number (str|None: the STEP PRODUCT id, else the label name),
    description (str|None: the product name when it differs from the part number),
    qty (float), unit ("pcs"), material (None), mass (float|None: kg of one piece, from the
    solids' volume and `density_kg_m3` when given), revision (None: OCCT does not expose the
    product version), vendor (None), block_name (None), block_path (str: part numbers from the
    root down, joined with "/"), layout (None), handle (str: XCAF label entries from the root
    down, joined with "/"), level (int, 0 = root), parent (str|None: the parent row's part
    number), insert_count (int, = qty), source ("3d"),
    attributes (str: JSON with product_id, product_name, entry, qty_per_parent and up to
    ``MAX_INSTANCE_NAMES`` instance names).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from OCP.BRep import BRep_Builder
from OCP.BRepGProp import BRepGProp
from OCP.GProp import GProp_GProps
from OCP.TDF import TDF_Label
from OCP.TopAbs import TopAbs_SOLID
from OCP.TopExp import TopExp_Explorer
from OCP.TopoDS import TopoDS_Compound
from OCP.XCAFDoc import XCAFDoc_ShapeTool

from documents.step_document import LoadedStep, label_entry, label_name, label_strings, product_components

__all__ = ["BOM_COLUMNS", "MAX_INSTANCE_NAMES", "step_bom_rows"]

BOM_COLUMNS = (
    "item_no",
    "part_number",
    "description",
    "qty",
    "unit",
    "material",
    "mass",
    "revision",
    "vendor",
    "block_name",
    "block_path",
    "layout",
    "handle",
    "level",
    "parent",
    "insert_count",
    "source",
    "attributes",
)
MAX_INSTANCE_NAMES = 10
# OCCT names an unnamed instance after the label it refers to: "=>[0:1:1:2]". Not a name.
_PLACEHOLDER = re.compile(r"^=>\[[\d:]+\]$")
_MM3_TO_M3 = 1e-9


def step_bom_rows(loaded: LoadedStep, density_kg_m3: float | None = None) -> list[dict[str, Any]]:
    """Indented, flattened BOM rows of `loaded` (see module doc)."""
    walker = _Walker(loaded, density_kg_m3)
    for root in loaded.roots:
        walker.visit(_Node(root, count=1, per_parent=1, instance_names=[]), level=0, parent=None, path=())
    return walker.rows


@dataclass
class _Node:
    part: TDF_Label
    count: int  # flattened instances along the path
    per_parent: int
    instance_names: list[str]


class _Walker:
    def __init__(self, loaded: LoadedStep, density_kg_m3: float | None) -> None:
        self._loaded = loaded
        self._density = density_kg_m3
        self._masses: dict[str, float | None] = {}
        self.rows: list[dict[str, Any]] = []

    def visit(self, node: _Node, level: int, parent: str | None, path: tuple[tuple[str, str], ...]) -> None:
        entry = label_entry(node.part)
        if any(seen == entry for seen, _ in path):
            return  # a malformed file can make an assembly contain itself; stop rather than recurse forever
        meta = label_strings(node.part)
        name = label_name(node.part)
        part_number = meta.get("ProductID") or name or entry
        product_name = meta.get("ProductName") or name
        path = path + ((entry, part_number),)
        self.rows.append(
            {
                "item_no": None,
                "part_number": part_number,
                "description": product_name if product_name != part_number else None,
                "qty": float(node.count),
                "unit": "pcs",
                "material": None,
                "mass": self._mass(node.part, entry),
                "revision": None,
                "vendor": None,
                "block_name": None,
                "block_path": "/".join(number for _, number in path),
                "layout": None,
                "handle": "/".join(e for e, _ in path),
                "level": level,
                "parent": parent,
                "insert_count": node.count,
                "source": "3d",
                "attributes": json.dumps(
                    {
                        "product_id": meta.get("ProductID"),
                        "product_name": meta.get("ProductName"),
                        "entry": entry,
                        "qty_per_parent": node.per_parent,
                        "instance_names": node.instance_names[:MAX_INSTANCE_NAMES],
                    },
                    ensure_ascii=False,
                ),
            }
        )
        for child in self._children(node):
            self.visit(child, level + 1, part_number, path)

    def _children(self, node: _Node) -> list[_Node]:
        grouped: dict[str, _Node] = {}
        for instance, part in product_components(self._loaded, node.part):
            child = grouped.setdefault(label_entry(part), _Node(part, 0, 0, []))
            child.per_parent += 1
            child.count += node.count
            instance_name = label_name(instance)
            if (
                instance_name
                and not _PLACEHOLDER.match(instance_name)
                and len(child.instance_names) < MAX_INSTANCE_NAMES
            ):
                child.instance_names.append(instance_name)
        return list(grouped.values())

    def _mass(self, part: TDF_Label, entry: str) -> float | None:
        if self._density is None:
            return None
        if entry not in self._masses:
            self._masses[entry] = _solid_volume(part)
        volume = self._masses[entry]
        return volume * _MM3_TO_M3 * self._density if volume else None


def _solid_volume(part: TDF_Label) -> float | None:
    """Volume (mm^3) of the solids of one piece of `part`, sub-assembly contents included."""
    builder = BRep_Builder()
    solids = TopoDS_Compound()
    builder.MakeCompound(solids)
    explorer = TopExp_Explorer(XCAFDoc_ShapeTool.GetShape_s(part), TopAbs_SOLID)
    while explorer.More():
        builder.Add(solids, explorer.Current())
        explorer.Next()
    props = GProp_GProps()
    BRepGProp.VolumeProperties_s(solids, props)
    volume = abs(props.Mass())
    return volume if volume and math.isfinite(volume) else None
