"""Triangle meshes of a loaded model: binary STL and GLB (glTF binary, metres, names, colors).

Size guard. A fine tolerance on a large or detailed model explodes (a 22 MB STEP became a
386 MB STL at the default tolerance; the corpus's 200 m motor assembly at 0.1 mm gives 5 million
triangles after 3.5 minutes of meshing). With a cap, :func:`mesh_model` meshes from a coarse
tolerance towards the requested one and stops where the triangle count is predicted to pass the
cap (see :func:`_refine`), so a blow-up is never meshed in full; then, while the real count is
over the cap, it coarsens the tolerances by the excess. The tolerances actually used are
returned (``adapted`` says whether they differ from the request).

Meshing stores the triangulation in the model's shapes (OCCT keeps it on the faces), so STL,
GLB and drawings of one :class:`LoadedStep` share it. Mesh-only models (STL input, tessellated
STEP) are written as they are: their triangles cannot be re-meshed, so a mesh over the cap is
refused.

Errors: ``InputError`` when the model has no face to mesh or cannot fit the cap even at the
coarsest tolerance; ``TransientError`` when writing fails (I/O). Files are written atomically.
"""

from __future__ import annotations

import contextlib
import json
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from OCP.Bnd import Bnd_Box
from OCP.BRep import BRep_Tool
from OCP.BRepBndLib import BRepBndLib
from OCP.BRepMesh import BRepMesh_IncrementalMesh
from OCP.BRepTools import BRepTools
from OCP.Message import Message_ProgressRange
from OCP.RWGltf import RWGltf_CafWriter
from OCP.RWMesh import RWMesh_CoordinateSystem, RWMesh_CoordinateSystemConverter, RWMesh_NameFormat
from OCP.StlAPI import StlAPI
from OCP.TCollection import TCollection_AsciiString
from OCP.TColStd import TColStd_IndexedDataMapOfStringString
from OCP.TopAbs import TopAbs_FACE
from OCP.TopExp import TopExp_Explorer
from OCP.TopLoc import TopLoc_Location
from OCP.TopoDS import TopoDS, TopoDS_Shape
from OCP.TopTools import TopTools_IndexedMapOfShape

from documents.atomic import atomic_path
from documents.errors import InputError, TransientError
from documents.step_document import LoadedStep

__all__ = [
    "MeshInfo",
    "mesh_model",
    "current_mesh",
    "write_stl",
    "write_glb",
    "read_glb_json",
    "atomic_target",
    "stl_bytes",
    "shape_diagonal",
]

STL_HEADER_BYTES = 84
STL_TRIANGLE_BYTES = 50
# GLB bytes per triangle of a distinct part: 12 (uint32 indices) + about one node of 24 (float32
# position and normal); an estimate, checked on the written file.
_GLB_BYTES_PER_TRIANGLE = 36
_GLB_OVERHEAD_BYTES = 16_000  # JSON chunk, headers (measured afterwards anyway)
MAX_ANGULAR_TOLERANCE = 1.0  # radians; coarser makes curved faces unrecognisable
_MAX_ATTEMPTS = 8
_SAFETY = 1.2  # aim below the cap: the count does not scale exactly as predicted
_REFINE_STEP = 3.0


@dataclass
class MeshInfo:
    """How a model was meshed."""

    linear_tolerance: float | None  # mm, used (None: a mesh-only model, written as it is)
    angular_tolerance: float | None  # radians, used
    adapted: bool  # True when the tolerances differ from the requested ones
    triangles: int  # every placed instance counted (what an STL holds)
    unique_triangles: int  # shared parts counted once (what a GLB holds)
    unique_nodes: int
    faces_without_mesh: int  # faces the mesher could not triangulate
    remeshable: bool  # False for mesh-only models

    def as_dict(self) -> dict[str, Any]:
        return {
            "linear_tolerance": self.linear_tolerance,
            "angular_tolerance": self.angular_tolerance,
            "adapted": self.adapted,
            "triangles": self.triangles,
            "faces_without_mesh": self.faces_without_mesh,
        }

    def tolerances(self) -> tuple[float, float]:
        """(linear, angular) of a model meshed here; a mesh-only model has none."""
        if self.linear_tolerance is None or self.angular_tolerance is None:
            raise ValueError("a mesh-only model was not meshed: it has no tolerances")
        return self.linear_tolerance, self.angular_tolerance


def stl_bytes(triangles: int) -> int:
    """Exact size of a binary STL with that many triangles."""
    return STL_HEADER_BYTES + STL_TRIANGLE_BYTES * triangles


def mesh_model(
    model: LoadedStep | TopoDS_Shape,
    linear_tolerance: float,
    angular_tolerance: float,
    max_triangles: int | None = None,
    *,
    count_unique: bool = False,
) -> MeshInfo:
    """Mesh `model` at the requested tolerances, coarsened while over `max_triangles`.

    ``count_unique`` applies the cap to the triangles of distinct parts (GLB) rather than to
    every placed instance (STL).
    """
    if linear_tolerance <= 0 or angular_tolerance <= 0:
        raise ValueError(f"tolerances must be positive, got {linear_tolerance}, {angular_tolerance}")
    shape, name = _shape_and_name(model)
    counts = _count(shape)
    if counts.faces == 0:
        raise InputError(f"{name}: the model has no faces to mesh")
    if counts.faces_with_surface == 0:  # mesh-only: the triangles are the model
        info = _info(shape, None, None, False, remeshable=False)
        _check_cap(name, info, max_triangles, count_unique, "the mesh cannot be coarsened")
        return info
    reused = _reusable(model, linear_tolerance, angular_tolerance, max_triangles, count_unique)
    if reused is not None:
        return reused

    info = _refine(shape, linear_tolerance, angular_tolerance, max_triangles, count_unique)
    linear, angular = info.tolerances()
    for _ in range(_MAX_ATTEMPTS):
        measured = info.unique_triangles if count_unique else info.triangles
        if max_triangles is None or measured <= max_triangles:
            break
        if angular >= MAX_ANGULAR_TOLERANCE and linear >= shape_diagonal(shape):
            break  # as coarse as meshing goes
        factor = _SAFETY * measured / max_triangles
        linear = linear * factor
        angular = min(angular * math.sqrt(factor), MAX_ANGULAR_TOLERANCE)
        info = _mesh_info(shape, linear, angular)
    _check_cap(name, info, max_triangles, count_unique, "even at the coarsest tolerance")
    info.adapted = info.linear_tolerance != linear_tolerance or info.angular_tolerance != angular_tolerance
    if isinstance(model, LoadedStep):
        model.mesh_state = (linear_tolerance, angular_tolerance, info)
    return info


def current_mesh(model: LoadedStep) -> MeshInfo | None:
    """The mesh :func:`mesh_model` last put on `model`, if any."""
    return model.mesh_state[2] if model.mesh_state else None


def _reusable(
    model: LoadedStep | TopoDS_Shape, linear: float, angular: float, max_triangles: int | None, unique: bool
) -> MeshInfo | None:
    """The mesh already on `model` when it was made for the same request and fits this cap.

    Made at the requested tolerances, it is the finest allowed; made coarser under another
    cap, it is reused when it fits, which favours meshing once over a slightly finer mesh.
    """
    if not isinstance(model, LoadedStep) or model.mesh_state is None:
        return None
    requested_linear, requested_angular, info = model.mesh_state
    if (requested_linear, requested_angular) != (linear, angular):
        return None
    measured = info.unique_triangles if unique else info.triangles
    return info if max_triangles is None or measured <= max_triangles else None


def write_stl(
    model: LoadedStep | TopoDS_Shape,
    path: Path,
    linear_tolerance: float,
    angular_tolerance: float,
    max_bytes: int,
) -> dict[str, Any]:
    """Write a binary STL of every placed instance, at most `max_bytes` large.

    Returns ``path``, ``bytes``, ``triangles``, ``linear_tolerance``, ``angular_tolerance``
    (used), ``adapted`` and ``faces_without_mesh``.
    """
    max_triangles = (max_bytes - STL_HEADER_BYTES) // STL_TRIANGLE_BYTES
    if max_triangles < 1:
        raise ValueError(f"max_bytes={max_bytes} leaves no room for a triangle")
    shape, name = _shape_and_name(model)
    info = mesh_model(model, linear_tolerance, angular_tolerance, max_triangles)
    path = Path(path)
    with atomic_target(path) as tmp:
        if not StlAPI.Write_s(shape, str(tmp), False):
            raise TransientError(f"{name}: OCCT could not write the STL to {path}")
        size = tmp.stat().st_size
        if size != stl_bytes(info.triangles):  # StlAPI writes every triangle we counted; else a bug
            raise RuntimeError(f"{name}: STL has {size} bytes, expected {stl_bytes(info.triangles)}")
    return {"path": path, "bytes": size, **info.as_dict()}


def write_glb(
    loaded: LoadedStep,
    path: Path,
    linear_tolerance: float,
    angular_tolerance: float,
    max_bytes: int,
) -> dict[str, Any]:
    """Write a GLB in metres, Y up (glTF's convention), with the document's names and colors.

    The scale is checked on the written file: its scene bounding box (node transforms applied
    to the POSITION accessors' min/max) must match the model's, converted to metres.
    Returns what :func:`write_stl` does plus ``scale_check`` (ratio of the two box diagonals).
    """
    name = loaded.path.name
    path = Path(path)
    budget = (max_bytes - _GLB_OVERHEAD_BYTES) // _GLB_BYTES_PER_TRIANGLE
    if budget < 1:
        raise ValueError(f"max_bytes={max_bytes} leaves no room for a GLB mesh")
    linear, angular = linear_tolerance, angular_tolerance
    for _ in range(_MAX_ATTEMPTS):
        info = mesh_model(loaded, linear, angular, budget, count_unique=True)
        adapted = info.remeshable and (linear_tolerance, angular_tolerance) != (
            info.linear_tolerance,
            info.angular_tolerance,
        )
        with atomic_target(path) as tmp:
            _write_glb_file(loaded, tmp)
            size = tmp.stat().st_size
            fits = size <= max_bytes
            if fits:
                scale = _check_glb_scale(tmp, loaded)
            elif not info.remeshable:
                raise InputError(f"{name}: GLB would be {size} bytes, over the cap of {max_bytes}")
        if fits:
            return {"path": path, "bytes": size, **info.as_dict(), "adapted": adapted, "scale_check": scale}
        # The estimate was short (more nodes per triangle than assumed): shrink the budget.
        budget = max(int(budget * max_bytes / size / _SAFETY), 1)
        linear, angular = info.tolerances()  # remeshable, else raised above
    raise InputError(f"{name}: GLB does not fit the cap of {max_bytes} bytes")


def read_glb_json(path: Path) -> dict[str, Any]:
    """The JSON chunk of a GLB file (glTF 2.0 binary container)."""
    data = Path(path).read_bytes()
    magic, version, _length = struct.unpack_from("<4sII", data, 0)
    if magic != b"glTF" or version != 2:
        raise ValueError(f"{path}: not a glTF 2.0 binary file")
    chunk_length, chunk_type = struct.unpack_from("<I4s", data, 12)
    if chunk_type != b"JSON":
        raise ValueError(f"{path}: first GLB chunk is not JSON")
    return json.loads(data[20 : 20 + chunk_length])


@contextlib.contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """A temporary path beside `path`; renamed onto it when the block succeeds, removed if not.

    For writers that want a file name (OCCT) rather than bytes. OSError -> TransientError.
    """
    try:
        with atomic_path(Path(path)) as tmp:
            yield tmp
    except OSError as exc:
        raise TransientError(f"cannot write {path}: {exc}") from exc


# --- internals --------------------------------------------------------------------------------


@dataclass
class _Counts:
    faces: int
    faces_with_surface: int


def _shape_and_name(model: LoadedStep | TopoDS_Shape) -> tuple[TopoDS_Shape, str]:
    if isinstance(model, LoadedStep):
        return model.shape, model.path.name
    return model, "shape"


def _count(shape: TopoDS_Shape) -> _Counts:
    faces = with_surface = 0
    explorer = TopExp_Explorer(shape, TopAbs_FACE)
    while explorer.More():
        faces += 1
        if BRep_Tool.Surface_s(TopoDS.Face_s(explorer.Current())) is not None:
            with_surface += 1
        explorer.Next()
    return _Counts(faces, with_surface)


def _mesh(shape: TopoDS_Shape, linear: float, angular: float) -> None:
    # A finer mesh already on the faces would be kept as "good enough": remove it first.
    # Clean keeps triangulations that are a face's only geometry (tessellated STEP).
    BRepTools.Clean_s(shape)
    BRepMesh_IncrementalMesh(shape, linear, False, angular, False)


def _info(
    shape: TopoDS_Shape, linear: float | None, angular: float | None, adapted: bool, remeshable: bool
) -> MeshInfo:
    triangles = missing = unique_triangles = unique_nodes = 0
    seen = TopTools_IndexedMapOfShape()
    explorer = TopExp_Explorer(shape, TopAbs_FACE)
    while explorer.More():
        face = TopoDS.Face_s(explorer.Current())
        mesh = BRep_Tool.Triangulation_s(face, TopLoc_Location())
        if mesh is None or mesh.NbTriangles() == 0:
            missing += 1
        else:
            triangles += mesh.NbTriangles()
            before = seen.Extent()
            if seen.Add(face.Located(TopLoc_Location())) > before:  # a face of a part not seen yet
                unique_triangles += mesh.NbTriangles()
                unique_nodes += mesh.NbNodes()
        explorer.Next()
    return MeshInfo(linear, angular, adapted, triangles, unique_triangles, unique_nodes, missing, remeshable)


def _check_cap(name: str, info: MeshInfo, max_triangles: int | None, unique: bool, why: str) -> None:
    measured = info.unique_triangles if unique else info.triangles
    if max_triangles is not None and measured > max_triangles:
        raise InputError(f"{name}: mesh has {measured} triangles, over the cap of {max_triangles} ({why})")
    if measured == 0:
        raise InputError(f"{name}: meshing produced no triangle ({info.faces_without_mesh} faces failed)")


def shape_diagonal(shape: TopoDS_Shape) -> float:
    """Diagonal (mm) of a quick, possibly loose box around `shape`; 0 for an empty shape."""
    box = Bnd_Box()
    BRepBndLib.Add_s(shape, box, False)
    if box.IsVoid():
        return 0.0
    xmin, ymin, zmin, xmax, ymax, zmax = box.Get()
    return math.dist((xmin, ymin, zmin), (xmax, ymax, zmax))


def _mesh_info(shape: TopoDS_Shape, linear: float, angular: float) -> MeshInfo:
    _mesh(shape, linear, angular)
    return _info(shape, linear, angular, False, remeshable=True)


def _refine(shape: TopoDS_Shape, linear: float, angular: float, max_triangles: int | None, unique: bool) -> MeshInfo:
    """Mesh from coarse towards `linear`, stopping where the count is predicted to pass the cap.

    Each step divides the tolerance by ``_REFINE_STEP``; the last two counts fit
    ``triangles ~ c * tolerance^-k`` (k ~ 1 where the chord tolerance governs, ~ 0 where the
    angular one does or faces are flat). Meshing time grows with the triangles, so the steps
    before the last cost a fraction of it, and a blow-up is never meshed in full.
    """
    diagonal = shape_diagonal(shape)
    tolerance = linear if max_triangles is None or diagonal <= 0 else max(linear, diagonal / 100)
    previous: tuple[float, int] | None = None
    while True:
        info = _mesh_info(shape, tolerance, angular)
        measured = max(info.unique_triangles if unique else info.triangles, 1)
        if tolerance <= linear or max_triangles is None or measured > max_triangles:
            return info
        following = max(linear, tolerance / _REFINE_STEP)
        if previous is not None:
            k = min(max(math.log(measured / previous[1]) / math.log(previous[0] / tolerance), 0.0), 2.0)
            if k > 0 and measured * (tolerance / following) ** k > max_triangles:
                fitting = max(linear, tolerance * (_SAFETY * measured / max_triangles) ** (1 / k))
                # Close to the current tolerance: keep the mesh already made.
                return info if fitting * 1.2 > tolerance else _mesh_info(shape, fitting, angular)
        previous = (tolerance, measured)
        tolerance = following


def _write_glb_file(loaded: LoadedStep, target: Path) -> None:
    writer = RWGltf_CafWriter(TCollection_AsciiString(str(target)), True)
    converter = RWMesh_CoordinateSystemConverter()
    # Document geometry is mm, Z up; glTF is metres, Y up. (cadquery's GLTF export leaves mm.)
    converter.SetInputLengthUnit(0.001)
    converter.SetInputCoordinateSystem(RWMesh_CoordinateSystem.RWMesh_CoordinateSystem_Zup)
    converter.SetOutputLengthUnit(1.0)
    converter.SetOutputCoordinateSystem(RWMesh_CoordinateSystem.RWMesh_CoordinateSystem_glTF)
    writer.SetCoordinateSystemConverter(converter)
    writer.SetNodeNameFormat(RWMesh_NameFormat.RWMesh_NameFormat_InstanceOrProduct)
    writer.SetMeshNameFormat(RWMesh_NameFormat.RWMesh_NameFormat_Product)
    if not writer.Perform(loaded.doc, TColStd_IndexedDataMapOfStringString(), Message_ProgressRange()):
        raise TransientError(f"{loaded.path.name}: OCCT could not write the GLB to {target.name}")


def _check_glb_scale(path: Path, loaded: LoadedStep) -> float:
    """Ratio of the GLB scene box diagonal to the model's (metres); ~1 when units are right."""
    gltf = read_glb_json(path)
    corners = _scene_corners(gltf)
    if len(corners) == 0:
        raise RuntimeError(f"{loaded.path.name}: the GLB holds no positioned mesh")
    glb_diagonal = float(np.linalg.norm(corners.max(axis=0) - corners.min(axis=0)))
    model_diagonal = _mesh_diagonal(loaded.shape) / 1000.0
    ratio = glb_diagonal / model_diagonal if model_diagonal > 0 else 1.0
    # Same triangles on both sides; accessor boxes turned by node rotations can only grow (by
    # up to sqrt(3)), float32 rounds a little; a unit mix-up is a factor of 1000 (or 25.4).
    if not 0.99 <= ratio <= 1.8:
        raise RuntimeError(f"{loaded.path.name}: GLB scale check failed: scene diagonal / model diagonal = {ratio:.4g}")
    return ratio


def _mesh_diagonal(shape: TopoDS_Shape) -> float:
    """Diagonal of the box around the triangulation nodes (what a GLB holds), in mm."""
    box = Bnd_Box()
    explorer = TopExp_Explorer(shape, TopAbs_FACE)
    while explorer.More():
        location = TopLoc_Location()
        mesh = BRep_Tool.Triangulation_s(TopoDS.Face_s(explorer.Current()), location)
        if mesh is not None:
            mesh.MinMax(box, location.Transformation(), True)
        explorer.Next()
    if box.IsVoid():
        return 0.0
    xmin, ymin, zmin, xmax, ymax, zmax = box.Get()
    return math.dist((xmin, ymin, zmin), (xmax, ymax, zmax))


def _scene_corners(gltf: dict[str, Any]) -> np.ndarray:
    nodes = gltf.get("nodes", [])
    meshes = gltf.get("meshes", [])
    accessors = gltf.get("accessors", [])
    scene = gltf.get("scenes", [{}])[gltf.get("scene", 0)]
    corners: list[np.ndarray] = []

    def visit(index: int, parent: np.ndarray) -> None:
        node = nodes[index]
        matrix = parent @ _node_matrix(node)
        if "mesh" in node:
            for primitive in meshes[node["mesh"]].get("primitives", []):
                accessor = accessors[primitive["attributes"]["POSITION"]]
                lo, hi = accessor["min"], accessor["max"]
                box = np.array([[x, y, z, 1.0] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
                corners.append((box @ matrix.T)[:, :3])
        for child in node.get("children", []):
            visit(child, matrix)

    for root in scene.get("nodes", []):
        visit(root, np.eye(4))
    return np.concatenate(corners) if corners else np.zeros((0, 3))


def _node_matrix(node: dict[str, Any]) -> np.ndarray:
    if "matrix" in node:
        return np.array(node["matrix"], dtype=float).reshape(4, 4).T  # glTF stores column-major
    x, y, z, w = node.get("rotation", [0.0, 0.0, 0.0, 1.0])
    rotation = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    matrix = np.eye(4)
    matrix[:3, :3] = rotation * np.array(node.get("scale", [1.0, 1.0, 1.0]))
    matrix[:3, 3] = node.get("translation", [0.0, 0.0, 0.0])
    return matrix
