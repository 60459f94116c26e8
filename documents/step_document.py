"""Load a STEP (AP203/AP214/AP242), IGES or STL file into an OCCT XCAF document.

The XCAF document keeps what the file says beyond the geometry: the assembly tree (shared
parts stay shared), product names, colors and layers. Everything downstream (metadata, BOM,
meshes, drawings) reads the :class:`LoadedStep` this module returns.

- Geometry is in **millimetres** whatever unit the file declares: the document's length unit is
  set to mm before the transfer, so OCCT scales inch or metre files on the way in.
  ``LoadedStep.file_length_unit`` keeps the unit the file itself declares.
- The content decides the reader (:mod:`documents.file_kind`): an IGES file named ``.stp`` is
  read as IGES by :func:`open_model`, and refused by :func:`open_step`.
- External references (multi-file assemblies, ``DOCUMENT_FILE`` entities) are resolved relative
  to the folder of the file, as OCCT does; a reference whose file does not exist is a failure
  naming it, not a silently empty part. OCCT resolves them from the directory part of the path
  it gets, and only an absolute path works (a relative ``dir/file.stp`` loses every reference),
  so the readers always get the absolute path.
- STL is a mesh, not a model: one face carrying the triangulation, named after the file.

Errors (``documents.errors``): ``InputError`` when the file is missing, is not of the expected
format, cannot be parsed, has no root to transfer, references a missing file, or holds no
geometry at all (no face, no edge); ``TransientError`` for other ``OSError`` while reading.
OpenCASCADE can also crash or hang on a bad file: callers isolate it in a worker process.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import numpy as np
from OCP.APIHeaderSection import APIHeaderSection_MakeHeader
from OCP.BRep import BRep_Builder, BRep_Tool
from OCP.IFSelect import IFSelect_ReturnStatus
from OCP.IGESCAFControl import IGESCAFControl_Reader
from OCP.RWStl import RWStl
from OCP.STEPCAFControl import STEPCAFControl_Reader
from OCP.STEPConstruct import STEPConstruct_ExternRefs
from OCP.TCollection import TCollection_AsciiString, TCollection_ExtendedString
from OCP.TColStd import TColStd_SequenceOfAsciiString
from OCP.TDataStd import TDataStd_Name, TDataStd_NamedData
from OCP.TDF import TDF_Label, TDF_LabelSequence, TDF_Tool
from OCP.TDocStd import TDocStd_Document
from OCP.TopAbs import TopAbs_EDGE, TopAbs_FACE, TopAbs_REVERSED, TopAbs_ShapeEnum
from OCP.TopExp import TopExp, TopExp_Explorer
from OCP.TopLoc import TopLoc_Location
from OCP.TopoDS import TopoDS, TopoDS_Compound, TopoDS_Face, TopoDS_Shape
from OCP.TopTools import TopTools_IndexedMapOfShape
from OCP.XCAFDoc import XCAFDoc_DocumentTool, XCAFDoc_ShapeTool

from documents.errors import InputError, TransientError
from documents.file_access import may_read
from documents.file_kind import sniff_format

__all__ = [
    "LoadedStep",
    "ModelHeader",
    "open_model",
    "open_step",
    "open_iges",
    "open_stl",
    "label_name",
    "label_entry",
    "label_strings",
    "components",
    "product_components",
    "count_shapes",
    "MeshArrays",
    "triangle_arrays",
]

_MM = 0.001  # document length unit, in metres
_T = TypeVar("_T")


@dataclass
class ModelHeader:
    """What the file says about itself (STEP HEADER section, IGES global section)."""

    schema: str | None = None  # STEP FILE_SCHEMA, e.g. "AUTOMOTIVE_DESIGN { 1 0 10303 214 1 1 1 1 }"
    application_protocol: str | None = None  # "AP203", "AP214", "AP242", "AP209" when recognised
    file_name: str | None = None  # the name the exporter gave the file
    time_stamp: str | None = None
    originating_system: str | None = None  # the CAD system the data came from
    preprocessor_version: str | None = None  # the exporter
    authors: list[str] = field(default_factory=list)
    organizations: list[str] = field(default_factory=list)
    description: str | None = None


@dataclass
class LoadedStep:
    """A loaded model: the XCAF document and what loading it found out."""

    path: Path
    format: str  # "step", "iges" or "stl"
    doc: TDocStd_Document
    roots: list[TDF_Label]  # free shapes: top-level assemblies or parts
    header: ModelHeader
    file_length_unit: str | None  # as the file declares it ("millimetre", "inch", "metre"); geometry is mm
    external_files: list[Path] = field(default_factory=list)  # resolved external references
    warnings: list[str] = field(default_factory=list)
    # (requested linear, requested angular tolerance, MeshInfo) of the triangulation now on the
    # shapes; kept by converters.step_mesh so that STL, GLB and drawings mesh once.
    mesh_state: Any = field(default=None, repr=False, compare=False)

    @property
    def shape_tool(self) -> XCAFDoc_ShapeTool:
        return XCAFDoc_DocumentTool.ShapeTool_s(self.doc.Main())

    @property
    def shape(self) -> TopoDS_Shape:
        """All roots in one compound, placed, in millimetres."""
        builder = BRep_Builder()
        compound = TopoDS_Compound()
        builder.MakeCompound(compound)
        for label in self.roots:
            builder.Add(compound, XCAFDoc_ShapeTool.GetShape_s(label))
        return compound

    @property
    def mesh_only(self) -> bool:
        """True when there are faces and none has an exact surface (STL, tessellated-only STEP)."""
        explorer = TopExp_Explorer(self.shape, TopAbs_FACE)
        if not explorer.More():
            return False  # no faces at all: a wireframe, not a mesh
        while explorer.More():
            if BRep_Tool.Surface_s(TopoDS.Face_s(explorer.Current())) is not None:
                return False
            explorer.Next()
        return True


def open_model(path: Path) -> LoadedStep:
    """Load `path` with the reader its content calls for (STEP, IGES or STL)."""
    path = Path(path)
    kind = _sniff(path)
    openers: dict[str | None, Callable[[Path], LoadedStep]] = {"step": open_step, "iges": open_iges, "stl": open_stl}
    if kind not in openers:
        raise InputError(f"{path.name}: not a STEP, IGES or STL file ({_describe_kind(kind)})")
    return openers[kind](path)


def open_step(path: Path) -> LoadedStep:
    """Load a STEP file with names, colors, layers and product metadata; see the module doc."""
    path = Path(path).absolute()
    _expect(path, "step")
    reader = STEPCAFControl_Reader()
    reader.SetNameMode(True)
    reader.SetColorMode(True)
    reader.SetLayerMode(True)
    reader.SetPropsMode(True)
    reader.SetProductMetaMode(True)  # ProductID / ProductName on each part label
    status = _occt(path, "cannot parse STEP", reader.ReadFile, str(path))
    if status != IFSelect_ReturnStatus.IFSelect_RetDone:
        hint = "; the file is truncated (no END-ISO-10303-21; at its end)" if _step_truncated(path) else ""
        raise InputError(f"{path.name}: cannot parse STEP ({_status_text(status)}){hint}")
    step_reader = reader.Reader()
    if step_reader.NbRootsForTransfer() == 0:
        raise InputError(f"{path.name}: STEP file has no shape to transfer (no root product or representation)")
    header = _step_header(step_reader.StepModel())
    external = _external_references(path, reader)
    doc = _new_document()
    if not _occt(path, "STEP transfer failed", reader.Transfer, doc):
        raise InputError(f"{path.name}: STEP transfer failed: OCCT could not translate the roots into shapes")
    loaded = LoadedStep(path, "step", doc, _free_shapes(doc), header, _step_length_unit(step_reader), external)
    return _checked(loaded)


def open_iges(path: Path) -> LoadedStep:
    """Load an IGES file with names, colors and layers."""
    path = Path(path).absolute()
    _expect(path, "iges")
    reader = IGESCAFControl_Reader()
    reader.SetNameMode(True)
    reader.SetColorMode(True)
    reader.SetLayerMode(True)
    status = _occt(path, "cannot parse IGES", reader.ReadFile, str(path))
    if status != IFSelect_ReturnStatus.IFSelect_RetDone:
        raise InputError(f"{path.name}: cannot parse IGES ({_status_text(status)})")
    if reader.NbRootsForTransfer() == 0:
        raise InputError(f"{path.name}: IGES file has no entity to transfer")
    section = reader.IGESModel().GlobalSection()
    header = ModelHeader(
        schema=f"IGES {section.IGESVersion()}",
        file_name=_text(section.FileName()),
        time_stamp=_text(section.Date()),
        originating_system=_text(section.SystemId()),
        preprocessor_version=_text(section.InterfaceVersion()),
        authors=_texts([section.AuthorName()]),
        organizations=_texts([section.CompanyName()]),
        description=_text(section.SendName()),
    )
    doc = _new_document()
    if not _occt(path, "IGES transfer failed", reader.Transfer, doc):
        raise InputError(f"{path.name}: IGES transfer failed: OCCT could not translate the entities into shapes")
    unit = _iges_unit(_text(section.UnitName()))
    return _checked(LoadedStep(path, "iges", doc, _free_shapes(doc), header, unit))


def open_stl(path: Path) -> LoadedStep:
    """Load an ASCII or binary STL as one mesh face (STL has no unit: millimetres are assumed)."""
    path = Path(path).absolute()
    _expect(path, "stl")
    triangulation = _read_stl(path)
    if triangulation is None or triangulation.NbTriangles() == 0:
        raise InputError(f"{path.name}: {_why_no_triangles(path)}")
    face = TopoDS_Face()
    BRep_Builder().MakeFace(face, triangulation)
    doc = _new_document()
    label = XCAFDoc_DocumentTool.ShapeTool_s(doc.Main()).AddShape(face, False, False)
    TDataStd_Name.Set_s(label, TCollection_ExtendedString(path.stem))
    loaded = LoadedStep(path, "stl", doc, [label], ModelHeader(file_name=path.name), None)
    loaded.warnings.append("STL carries no unit: millimetres assumed")
    return loaded


# --- labels -----------------------------------------------------------------------------------


def label_name(label: TDF_Label) -> str | None:
    """The TDataStd_Name of a label (a product or instance name), or None."""
    name = TDataStd_Name()
    if label.FindAttribute(TDataStd_Name.GetID_s(), name):
        return name.Get().ToExtString().strip() or None
    return None


def label_entry(label: TDF_Label) -> str:
    """The label's entry, e.g. ``0:1:1:3``: stable for one document."""
    entry = TCollection_AsciiString()
    TDF_Tool.Entry_s(label, entry)
    return entry.ToCString()


def label_strings(label: TDF_Label, keys: tuple[str, ...] = ("ProductID", "ProductName")) -> dict[str, str]:
    """Named string attributes OCCT stores on part labels (product metadata mode)."""
    data = TDataStd_NamedData()
    if not label.FindAttribute(TDataStd_NamedData.GetID_s(), data):
        return {}
    data.LoadDeferredData()
    found = {}
    for key in keys:
        ext_key = TCollection_ExtendedString(key)
        if data.HasString(ext_key):
            value = data.GetString(ext_key).ToExtString().strip()
            if value:
                found[key] = value
    return found


def components(label: TDF_Label) -> Iterator[tuple[TDF_Label, TDF_Label]]:
    """(instance label, referred part label) for every direct component of an assembly label."""
    sequence = TDF_LabelSequence()
    XCAFDoc_ShapeTool.GetComponents_s(label, sequence, False)
    for i in range(1, sequence.Length() + 1):
        instance = sequence.Value(i)
        referred = TDF_Label()
        if XCAFDoc_ShapeTool.GetReferredShape_s(instance, referred):
            yield instance, referred


def product_components(loaded: LoadedStep, label: TDF_Label) -> list[tuple[TDF_Label, TDF_Label]]:
    """Components of `label` that are products (parts or sub-assemblies), in document order.

    OCCT also exposes the pieces of one part's shape representation as components (a Pro/E part
    becomes an "assembly" of a ``SOLID`` and a ``COMPOUND``). In a STEP document every product
    carries product metadata (ProductID/ProductName) and those pieces do not, which tells them
    apart; IGES and STL have no products, so every component counts there.
    """
    found = list(components(label))
    if loaded.format != "step":
        return found
    return [(instance, part) for instance, part in found if label_strings(part)]


def count_shapes(shape: TopoDS_Shape, kind: TopAbs_ShapeEnum) -> int:
    """Distinct sub-shapes of a kind; each placed instance of a shared part counts once."""
    shapes = TopTools_IndexedMapOfShape()
    TopExp.MapShapes_s(shape, kind, shapes)
    return shapes.Extent()


@dataclass
class MeshArrays:
    """The triangles of a meshed shape as arrays, every face placed where its instance is."""

    points: np.ndarray  # (N, 3) float, mm
    triangles: np.ndarray  # (M, 3) int indices into points, counter-clockwise seen from outside
    face_of_triangle: np.ndarray  # (M,) int: which face (in exploration order) a triangle belongs to
    faces_without_mesh: int  # faces that carry no triangulation (not meshed yet, or degenerate)

    def welded(self, tolerance: float) -> np.ndarray:
        """Triangles re-indexed so that points closer than ~`tolerance` share one index."""
        if len(self.points) == 0:
            return self.triangles
        keys = np.round(self.points / tolerance).astype(np.int64)
        _, inverse = np.unique(keys, axis=0, return_inverse=True)
        return inverse.reshape(-1)[self.triangles]

    def is_closed(self, tolerance: float) -> bool:
        """True when every edge is shared by exactly two triangles (a watertight mesh)."""
        if len(self.triangles) == 0 or self.faces_without_mesh:
            return False
        tris = self.welded(tolerance)
        edges = np.sort(np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), axis=1)
        _, counts = np.unique(edges, axis=0, return_counts=True)
        return bool(np.all(counts == 2))


def triangle_arrays(shape: TopoDS_Shape) -> MeshArrays:
    """Collect the face triangulations of `shape` (mesh it first, or it must carry a mesh)."""
    points: list[np.ndarray] = []
    triangles: list[np.ndarray] = []
    owners: list[np.ndarray] = []
    offset = missing = 0
    explorer = TopExp_Explorer(shape, TopAbs_FACE)
    face_index = 0
    while explorer.More():
        face = TopoDS.Face_s(explorer.Current())
        location = TopLoc_Location()
        mesh = BRep_Tool.Triangulation_s(face, location)
        if mesh is None or mesh.NbTriangles() == 0:
            missing += 1
        else:
            nodes = np.array([mesh.Node(i).Coord() for i in range(1, mesh.NbNodes() + 1)], dtype=float)
            if not location.IsIdentity():
                trsf = location.Transformation()
                matrix = np.array([[trsf.Value(r, c) for c in range(1, 5)] for r in range(1, 4)])
                nodes = nodes @ matrix[:, :3].T + matrix[:, 3]
                mirrored = np.linalg.det(matrix[:, :3]) < 0
            else:
                mirrored = False
            tris = np.array([mesh.Triangle(i).Get() for i in range(1, mesh.NbTriangles() + 1)], dtype=np.int64) - 1
            if (face.Orientation() == TopAbs_REVERSED) != mirrored:
                tris = tris[:, [0, 2, 1]]  # keep normals pointing out of the material
            points.append(nodes)
            triangles.append(tris + offset)
            owners.append(np.full(len(tris), face_index))
            offset += len(nodes)
        face_index += 1
        explorer.Next()
    if not points:
        return MeshArrays(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64), np.zeros(0, dtype=np.int64), missing)
    return MeshArrays(np.concatenate(points), np.concatenate(triangles), np.concatenate(owners), missing)


# --- internals --------------------------------------------------------------------------------


def _sniff(path: Path) -> str | None:
    try:
        return sniff_format(path)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        # Permanent on purpose: the batch found the file moments ago, so the work item is obsolete.
        raise InputError(f"{path.name}: file does not exist or is not a regular file ({exc.strerror})") from exc
    except OSError as exc:
        raise TransientError(f"{path.name}: cannot read: {exc}") from exc


def _expect(path: Path, kind: str) -> None:
    found = _sniff(path)
    if found != kind:
        raise InputError(f"{path.name}: not a {kind.upper()} file ({_describe_kind(found)})")


def _describe_kind(kind: str | None) -> str:
    return "unrecognised content" if kind is None else f"content is {kind}"


def _occt(path: Path, what: str, call: Callable[..., _T], *args: object) -> _T:
    """Run an OCCT call; its exceptions (Standard_Failure and kin) mean the file is bad."""
    try:
        return call(*args)
    except MemoryError:
        raise
    except Exception as exc:
        raise InputError(f"{path.name}: {what}: {type(exc).__name__}: {exc}") from exc


def _status_text(status: IFSelect_ReturnStatus) -> str:
    reasons = {
        IFSelect_ReturnStatus.IFSelect_RetVoid: "empty or unreadable file",
        IFSelect_ReturnStatus.IFSelect_RetError: "syntax error",
        IFSelect_ReturnStatus.IFSelect_RetFail: "reader failure",
        IFSelect_ReturnStatus.IFSelect_RetStop: "reader stopped",
    }
    return reasons.get(status, str(status))


def _new_document() -> TDocStd_Document:
    doc = TDocStd_Document(TCollection_ExtendedString("XmlXCAF"))
    XCAFDoc_DocumentTool.SetLengthUnit_s(doc, _MM)  # readers scale into the document's unit
    return doc


def _free_shapes(doc: TDocStd_Document) -> list[TDF_Label]:
    sequence = TDF_LabelSequence()
    XCAFDoc_DocumentTool.ShapeTool_s(doc.Main()).GetFreeShapes(sequence)
    return [sequence.Value(i) for i in range(1, sequence.Length() + 1)]


def _checked(loaded: LoadedStep) -> LoadedStep:
    if not loaded.roots:
        raise InputError(f"{loaded.path.name}: nothing was transferred (no free shape in the document)")
    shape = loaded.shape
    if count_shapes(shape, TopAbs_FACE) == 0 and count_shapes(shape, TopAbs_EDGE) == 0:
        raise InputError(f"{loaded.path.name}: the model holds no geometry (no face and no edge)")
    return loaded


def _step_truncated(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(path.stat().st_size - 4096, 0))
            tail = fh.read()
    except OSError as exc:
        _raise_io(path, exc)
    return b"END-ISO-10303-21" not in tail.upper()


def _external_references(path: Path, reader: STEPCAFControl_Reader) -> list[Path]:
    refs = STEPConstruct_ExternRefs(reader.Reader().WS())
    refs.LoadExternRefs()
    resolved, missing = [], []
    for i in range(1, refs.NbExternRefs() + 1):
        name = refs.FileName(i)
        if not name:
            continue
        target = path.parent / name  # an absolute name stays absolute
        if may_read(target):  # outside the source (documents/file_access.py): not even looked up
            resolved.append(target)
        else:
            missing.append(name)
    if missing:
        shown = ", ".join(repr(name) for name in missing)
        raise InputError(
            f"{path.name}: external reference{'s' if len(missing) > 1 else ''} not found: {shown} "
            f"(looked in {path.parent})"
        )
    return resolved


def _step_header(model) -> ModelHeader:
    header = APIHeaderSection_MakeHeader(model)
    if not header.IsDone():
        return ModelHeader()
    schema = _text(header.SchemaIdentifiersValue(1)) if header.NbSchemaIdentifiers() else None
    return ModelHeader(
        schema=schema,
        application_protocol=_application_protocol(schema),
        file_name=_text(header.Name()),
        time_stamp=_text(header.TimeStamp()),
        originating_system=_text(header.OriginatingSystem()),
        preprocessor_version=_text(header.PreprocessorVersion()),
        authors=_texts(header.AuthorValue(i) for i in range(1, header.NbAuthor() + 1)),
        organizations=_texts(header.OrganizationValue(i) for i in range(1, header.NbOrganization() + 1)),
        description=_joined(header.DescriptionValue(i) for i in range(1, header.NbDescription() + 1)),
    )


# Schema names -> application protocol, for schemas that carry no object identifier.
_SCHEMA_AP = {
    "CONFIG_CONTROL_DESIGN": "AP203",
    "AP203_CONFIGURATION_CONTROLLED_3D_DESIGN_OF_MECHANICAL_PARTS_AND_ASSEMBLIES_MIM_LF": "AP203",
    "CCD_CLA_GVP_AST": "AP203",
    "CCD_CLA_GVP_AST_ASD": "AP203",
    "AUTOMOTIVE_DESIGN": "AP214",
    "AUTOMOTIVE_DESIGN_CC1": "AP214",
    "AUTOMOTIVE_DESIGN_CC2": "AP214",
    "AP242_MANAGED_MODEL_BASED_3D_ENGINEERING_MIM_LF": "AP242",
    "STRUCTURAL_ANALYSIS_DESIGN": "AP209",
}
_SCHEMA_OID = re.compile(r"\{\s*1\s+\d+\s+10303\s+(\d+)")  # ISO object identifier: {1 0 10303 <part> ...}


def _application_protocol(schema: str | None) -> str | None:
    if not schema:
        return None
    match = _SCHEMA_OID.search(schema)
    if match:
        part = int(match.group(1))
        return f"AP{242 if part == 442 else part}"  # AP242's schema identifier is part 442
    return _SCHEMA_AP.get(schema.split("{")[0].strip().upper())


def _step_length_unit(step_reader) -> str | None:
    lengths, angles, solid_angles = (TColStd_SequenceOfAsciiString() for _ in range(3))
    step_reader.FileUnits(lengths, angles, solid_angles)
    units = sorted({lengths.Value(i).ToCString().lower() for i in range(1, lengths.Length() + 1)})
    return ", ".join(units) or None


_IGES_UNITS = {"MM": "millimetre", "IN": "inch", "INCH": "inch", "M": "metre", "FT": "foot", "CM": "centimetre"}


def _iges_unit(name: str | None) -> str | None:
    return _IGES_UNITS.get((name or "").upper(), name)


def _text(value) -> str | None:
    if value is None:
        return None
    text = value.ToCString().strip()
    return text or None


def _texts(values: Iterable) -> list[str]:
    """The values given, as text: empty ones and exporters' placeholder "none" left out."""
    return [text for text in (_text(v) for v in values) if text and text.lower() != "none"]


def _joined(values: Iterable) -> str | None:
    return "; ".join(_texts(values)) or None


def _read_stl(path: Path):
    triangulation = _occt(path, "cannot read STL", RWStl.ReadFile_s, str(path))
    if triangulation is not None:
        return triangulation
    # Some exporters put '#' comment lines in ASCII STL; OCCT's reader stops at them.
    try:
        text = path.read_bytes().decode("latin-1")
    except OSError as exc:
        _raise_io(path, exc)
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    cleaned = "\n".join(line for line in lines if line)
    if "#" not in text or not cleaned.lstrip().lower().startswith("solid"):
        return None
    fd, tmp = tempfile.mkstemp(suffix=".stl")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(cleaned.encode("latin-1"))
        return _occt(path, "cannot read STL", RWStl.ReadFile_s, tmp)
    finally:
        os.unlink(tmp)


def _why_no_triangles(path: Path) -> str:
    try:
        head = path.read_bytes()[:4096]
    except OSError as exc:
        _raise_io(path, exc)
    binary_count = int.from_bytes(head[80:84], "little") if len(head) >= 84 else None
    if binary_count == 0 and path.stat().st_size == 84:
        return "STL holds no triangles (binary STL with a triangle count of 0)"
    if head.lstrip().lower().startswith(b"solid") and b"facet" not in head.lower():
        return "STL holds no triangles (ASCII STL without a facet)"
    return "cannot read STL (OCCT's reader rejects the content)"


def _raise_io(path: Path, exc: OSError) -> NoReturn:
    raise TransientError(f"{path.name}: cannot read: {exc}") from exc
