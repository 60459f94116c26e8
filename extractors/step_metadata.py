"""Catalog metadata of a loaded STEP/IGES/STL model: one flat dict of plain scalars.

Lengths are millimetres (the document unit, see :mod:`documents.step_document`), whatever unit
the file declares; ``file_length_unit`` records the declared one.

Keys
    format, schema, application_protocol, originating_system, preprocessor_version,
    header_file_name, time_stamp (str|None), authors, organizations (list of str|None: None when
    the file names none): from the file header.
    file_length_unit (str|None), units ("mm").
    bbox_xmin/ymin/zmin/xmax/ymax/zmax, size_x/y/z (float|None): tight box around the geometry;
    None when it is unbounded (an infinite line) or empty.
    volume_mm3 (float|None): of the solids, every instance counted; for a mesh-only model
    (STL, tessellated STEP) of its triangles, when they close a volume; else None.
    area_mm2 (float): of every face (mesh-only: of the triangles).
    center_x/y/z (float|None): center of mass of that volume (uniform density) or, without a
    volume, the centroid of the area.
    n_solids, n_shells, n_faces, n_edges, n_vertices (int): distinct sub-shapes, each placed
    instance of a shared part counted (a bolt used 6 times gives 6 solids).
    n_roots (int), n_products (int: distinct part/assembly definitions),
    n_part_instances (int: leaf parts with all assembly levels multiplied out).
    is_valid (bool|None): ``BRepCheck_Analyzer`` on the whole model; None for mesh-only models.
    mesh_only (bool), closed_mesh (bool|None: only for mesh-only models).
    product_names (list of str|None): distinct product names, tree order (None: no names).
    n_external_files (int).
    material (str|None), density_kg_m3 (float|None), mass_kg (float|None): mass of the volume
    with the density of `default_material` from the density table (kg/m^3); None without a
    volume. Materials stated inside the file are not read (none of our inputs carry them).
    warnings (str|None): what loading and measuring noticed, joined with "; ".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from OCP.Bnd import Bnd_Box
from OCP.BRep import BRep_Builder
from OCP.BRepBndLib import BRepBndLib
from OCP.BRepCheck import BRepCheck_Analyzer
from OCP.BRepGProp import BRepGProp
from OCP.GProp import GProp_GProps
from OCP.TDF import TDF_Label
from OCP.TopAbs import TopAbs_EDGE, TopAbs_FACE, TopAbs_SHELL, TopAbs_SOLID, TopAbs_VERTEX
from OCP.TopExp import TopExp_Explorer
from OCP.TopoDS import TopoDS_Compound, TopoDS_Shape

from documents.step_document import (
    LoadedStep,
    count_shapes,
    label_entry,
    label_name,
    product_components,
    triangle_arrays,
)

__all__ = ["extract_step_metadata", "density_for"]

_MM3_TO_M3 = 1e-9


def extract_step_metadata(loaded: LoadedStep, densities: Mapping[str, float], default_material: str) -> dict[str, Any]:
    """Metadata of `loaded` (see module doc). `densities` maps material names to kg/m^3."""
    density = density_for(default_material, densities)
    shape = loaded.shape
    header = loaded.header
    mesh_only = loaded.mesh_only
    warnings = list(loaded.warnings)

    meta: dict[str, Any] = {
        "format": loaded.format,
        "schema": header.schema,
        "application_protocol": header.application_protocol,
        "originating_system": header.originating_system,
        "preprocessor_version": header.preprocessor_version,
        "header_file_name": header.file_name,
        "time_stamp": header.time_stamp,
        "authors": list(header.authors) or None,
        "organizations": list(header.organizations) or None,
        "file_length_unit": loaded.file_length_unit,
        "units": "mm",
    }
    meta.update(_bounding_box(shape, warnings))

    closed_mesh = None
    if mesh_only:
        arrays = triangle_arrays(shape)
        closed_mesh = arrays.is_closed(tolerance=_weld_tolerance(meta))
        volume, volume_center = _volume(shape, use_triangulation=True) if closed_mesh else (None, None)
    else:
        volume, volume_center = _volume(_solids(shape), use_triangulation=False)
    area, area_center = _area(shape, use_triangulation=mesh_only)
    center = volume_center if volume else area_center
    meta.update(
        volume_mm3=volume,
        area_mm2=area,
        center_x=center[0] if center else None,
        center_y=center[1] if center else None,
        center_z=center[2] if center else None,
    )

    tree = _ProductTree(loaded)
    meta.update(
        n_solids=count_shapes(shape, TopAbs_SOLID),
        n_shells=count_shapes(shape, TopAbs_SHELL),
        n_faces=count_shapes(shape, TopAbs_FACE),
        n_edges=count_shapes(shape, TopAbs_EDGE),
        n_vertices=count_shapes(shape, TopAbs_VERTEX),
        n_roots=len(loaded.roots),
        n_products=len(tree.names_by_entry),
        n_part_instances=tree.leaf_instances,
        is_valid=None if mesh_only else bool(BRepCheck_Analyzer(shape).IsValid()),
        mesh_only=mesh_only,
        closed_mesh=closed_mesh,
        product_names=list(dict.fromkeys(n for n in tree.names_by_entry.values() if n)) or None,
        n_external_files=len(loaded.external_files),
        material=default_material if volume else None,
        density_kg_m3=density if volume else None,
        mass_kg=volume * _MM3_TO_M3 * density if volume else None,
    )
    if mesh_only and not closed_mesh:
        warnings.append("mesh is not closed: no volume")
    meta["warnings"] = "; ".join(warnings) or None
    return meta


def density_for(material: str, densities: Mapping[str, float]) -> float:
    """Density (kg/m^3) of `material`, names compared case-insensitively.

    ValueError when it is missing or not positive: that is a configuration fault, not the file's.
    """
    table = {name.strip().lower(): value for name, value in densities.items()}
    density = table.get(material.strip().lower())
    if density is None:
        raise ValueError(f"material {material!r} is not in the density table ({', '.join(densities) or 'empty'})")
    if not (isinstance(density, (int, float)) and math.isfinite(density) and density > 0):
        raise ValueError(f"density of {material!r} must be a positive number of kg/m^3, got {density!r}")
    return float(density)


def _bounding_box(shape: TopoDS_Shape, warnings: list[str]) -> dict[str, float | None]:
    box = Bnd_Box()
    BRepBndLib.AddOptimal_s(shape, box, True, False)
    keys = ("bbox_xmin", "bbox_ymin", "bbox_zmin", "bbox_xmax", "bbox_ymax", "bbox_zmax")
    unbounded = box.IsOpenXmin() or box.IsOpenXmax() or box.IsOpenYmin() or box.IsOpenYmax()
    unbounded = unbounded or box.IsOpenZmin() or box.IsOpenZmax()
    values = box.Get() if not box.IsVoid() else None
    # An infinite curve gives an "open" box or one stretched to OCCT's infinity (1e100).
    if values is None or unbounded or max(abs(v) for v in values) >= 1e50:
        warnings.append("geometry is unbounded or empty: no bounding box")
        result: dict[str, float | None] = dict.fromkeys(keys)
        result.update(size_x=None, size_y=None, size_z=None)
        return result
    result = dict(zip(keys, values))
    result.update(size_x=values[3] - values[0], size_y=values[4] - values[1], size_z=values[5] - values[2])
    return result


def _weld_tolerance(meta: Mapping[str, Any]) -> float:
    sizes = [meta.get(k) for k in ("size_x", "size_y", "size_z")]
    diagonal = math.sqrt(sum(s * s for s in sizes if s)) if all(s is not None for s in sizes) else 0.0
    return max(diagonal * 1e-7, 1e-9)


def _solids(shape: TopoDS_Shape) -> TopoDS_Compound:
    builder = BRep_Builder()
    compound = TopoDS_Compound()
    builder.MakeCompound(compound)
    explorer = TopExp_Explorer(shape, TopAbs_SOLID)
    while explorer.More():
        builder.Add(compound, explorer.Current())
        explorer.Next()
    return compound


def _volume(shape: TopoDS_Shape, use_triangulation: bool) -> tuple[float | None, tuple[float, float, float] | None]:
    props = GProp_GProps()
    BRepGProp.VolumeProperties_s(shape, props, False, False, use_triangulation)
    volume = props.Mass()
    if not volume or not math.isfinite(volume):
        return None, None
    # A solid stored inside out has a negative volume; its size is what the catalog wants.
    return abs(volume), props.CentreOfMass().Coord()


def _area(shape: TopoDS_Shape, use_triangulation: bool) -> tuple[float, tuple[float, float, float] | None]:
    props = GProp_GProps()
    BRepGProp.SurfaceProperties_s(shape, props, False, use_triangulation)
    area = props.Mass()
    if not area or not math.isfinite(area):
        return 0.0, None
    return area, props.CentreOfMass().Coord()


class _ProductTree:
    """Distinct product definitions below the roots, and the flattened count of leaf parts."""

    def __init__(self, loaded: LoadedStep) -> None:
        self._loaded = loaded
        self.names_by_entry: dict[str, str | None] = {}
        self.leaf_instances = 0
        for root in loaded.roots:
            self._visit(root, 1)

    def _visit(self, label: TDF_Label, multiplicity: int) -> None:
        self.names_by_entry.setdefault(label_entry(label), label_name(label))
        counts: dict[str, tuple[TDF_Label, int]] = {}
        for _, part in product_components(self._loaded, label):
            entry = label_entry(part)
            counts[entry] = (part, counts.get(entry, (part, 0))[1] + 1)
        if not counts:
            self.leaf_instances += multiplicity
        for part, count in counts.values():
            self._visit(part, multiplicity * count)
