"""Line drawing of a 3D model for the datasheet: top, isometric, front and right views on one page.

Third-angle arrangement on a 2x2 grid (top above front, right beside front, isometric top
right), one ISO scale (1:2, 5:1 ...) for all four views, so the orthographic views line up.
One SVG is written (page in mm); the PNG is derived from it with MuPDF.

How lines are found (no OCCT hidden-line removal: ``HLRBRep_Algo`` takes minutes or crashes on
some corpus files, and neither it nor ``HLRBRep_PolyAlgo`` handles mesh-only models):

- The model is meshed (:func:`converters.step_mesh.mesh_model`; an existing mesh is reused
  when small enough). Lines are the model's edges, discretized from their curves (seams of
  closed surfaces left out); for faces without an exact surface (STL, tessellated STEP), the
  mesh's face borders and edges sharper than ``feature_angle_deg``; and, per view, the
  silhouette of curved surfaces: mesh edges between a triangle facing the viewer and one facing
  away.
- Visibility: every triangle is splatted into a depth buffer per view (numpy, about
  ``raster_px`` pixels across the view) and every line is sampled at half-pixel steps. A sample
  is hidden when the surface around its pixel is nearer than the sample by more than that
  surface's own depth variation there, so lines lying on a surface at a grazing angle stay
  visible. Lines may end up to about a pixel early or late at an occluding contour.

Errors: ``InputError`` when the model has no face to draw; ``TransientError`` when writing
fails. Files are written atomically.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
from OCP.BRep import BRep_Tool
from OCP.BRepAdaptor import BRepAdaptor_Curve
from OCP.GCPnts import GCPnts_TangentialDeflection
from OCP.TopAbs import TopAbs_EDGE, TopAbs_FACE
from OCP.TopExp import TopExp_Explorer
from OCP.TopoDS import TopoDS, TopoDS_Shape
from OCP.TopTools import TopTools_IndexedMapOfShape

from converters.dxf_render import THUMBNAIL, svg_thumbnail, svg_to_png
from converters.step_mesh import atomic_target, current_mesh, mesh_model, shape_diagonal
from documents.errors import InputError
from documents.step_document import LoadedStep, triangle_arrays

__all__ = ["DrawingOptions", "VIEWS", "render_views", "iso_scale"]

FORMATS = ("svg", "png")


@dataclass(frozen=True)
class DrawingOptions:
    page_width_mm: float = 297.0  # A4 landscape
    page_height_mm: float = 210.0
    margin_mm: float = 10.0
    png_dpi: int = 150
    png_max_pixels: int = 16_000_000
    raster_px: int = 800  # depth-buffer resolution across a view's longest side
    max_triangles: int = 400_000  # mesh used for drawing (a finer existing one is re-meshed)
    feature_angle_deg: float = 30.0  # mesh-only models: sharper mesh edges are drawn
    line_width_mm: float = 0.35
    hidden_line_width_mm: float = 0.18

    def __post_init__(self) -> None:
        inner_w = self.page_width_mm - 2 * self.margin_mm
        inner_h = self.page_height_mm - 2 * self.margin_mm
        if inner_w <= 20 or inner_h <= 20:
            raise ValueError(f"page {self.page_width_mm} x {self.page_height_mm} mm leaves no room inside the margins")
        if self.raster_px < 50 or self.max_triangles < 1:
            raise ValueError("raster_px must be >= 50 and max_triangles >= 1")


@dataclass(frozen=True)
class View:
    name: str
    label: str
    toward_viewer: tuple[float, float, float]  # from the model to the eye
    right: tuple[float, float, float]  # screen x
    column: int  # grid cell
    row: int  # 0 = upper row

    def basis(self) -> np.ndarray:
        """Rows: screen right, screen up, toward the viewer (unit vectors, right-handed)."""
        n = np.array(self.toward_viewer, dtype=float)
        n /= np.linalg.norm(n)
        x = np.array(self.right, dtype=float)
        x /= np.linalg.norm(x)
        return np.array([x, np.cross(n, x), n])


VIEWS = (
    View("top", "Top", (0, 0, 1), (1, 0, 0), column=0, row=0),
    View("isometric", "Isometric", (1, -1, 1), (1, 1, 0), column=1, row=0),
    View("front", "Front", (0, -1, 0), (1, 0, 0), column=0, row=1),
    View("right", "Right", (1, 0, 0), (0, 1, 0), column=1, row=1),
)


def render_views(
    loaded: LoadedStep,
    out_dir: Path,
    hidden_lines: bool = False,
    formats: Sequence[str] = FORMATS,
    options: DrawingOptions = DrawingOptions(),
    stem: str = "views",
) -> dict[str, Any]:
    """Draw the four views of `loaded` into ``out_dir/<stem>.svg`` (and ``.png``), with a
    thumbnail of the same page in ``<stem>.thumb.png``.

    Returns ``files`` (format -> path), ``scale`` ("1:2"), ``scale_factor`` (paper mm per
    model mm), ``png_size`` and ``png_dpi`` (None without PNG), ``visible_segments``,
    ``hidden_segments`` (drawn only with `hidden_lines`), ``mesh_triangles`` and ``warnings``
    (edges OCCT could not discretize, so missing from the drawing).
    """
    unknown = set(formats) - set(FORMATS)
    if unknown or not formats:
        raise ValueError(f"formats must be a non-empty subset of {FORMATS}, got {list(formats)}")
    warnings: list[str] = []
    geometry = _Geometry.build(loaded, options, warnings)
    drawn = [_draw_view(geometry, view, options) for view in VIEWS]
    svg, scale = _compose_svg(drawn, loaded.path.name, options, hidden_lines)

    out_dir = Path(out_dir)
    files: dict[str, Path] = {}
    png_size = png_dpi = None
    if "svg" in formats:
        files["svg"] = _write(out_dir / f"{stem}.svg", svg.encode("utf-8"))
    if "png" in formats:
        data, png_size, png_dpi = svg_to_png(svg, options.png_dpi, options.png_max_pixels)
        files["png"] = _write(out_dir / f"{stem}.png", data)
    files[THUMBNAIL] = _write(out_dir / f"{stem}.thumb.png", svg_thumbnail(svg))
    return {
        "files": files,
        "scale": _scale_label(scale),
        "scale_factor": scale,
        "png_size": png_size,
        "png_dpi": png_dpi,
        "visible_segments": sum(len(d.visible) for d in drawn),
        "hidden_segments": sum(len(d.hidden) for d in drawn) if hidden_lines else 0,
        "mesh_triangles": len(geometry.triangles),
        "warnings": warnings,
    }


def iso_scale(fit: float) -> float:
    """The largest ISO 5455 scale (1, 2 or 5 times a power of ten) not above `fit`."""
    if not (fit > 0 and math.isfinite(fit)):
        raise ValueError(f"scale must be positive, got {fit}")
    exponent = math.floor(math.log10(fit))
    for mantissa in (5, 2, 1):
        candidate = mantissa * 10.0**exponent
        if candidate <= fit * (1 + 1e-9):
            return candidate
    return 10.0 ** (exponent - 1) * 5


# --- geometry ---------------------------------------------------------------------------------


@dataclass
class _Geometry:
    points: np.ndarray  # (N, 3) welded mesh nodes
    triangles: np.ndarray  # (M, 3)
    normals: np.ndarray  # (M, 3) unit, outward
    lines: np.ndarray  # (L, 2, 3) segments always drawn (edges, mesh features)
    silhouette_edges: np.ndarray  # (E, 2) node indices of edges that may be silhouettes
    silhouette_sides: np.ndarray  # (E, 2) the two triangles along each of them

    @classmethod
    def build(cls, loaded: LoadedStep, options: DrawingOptions, warnings: list[str]) -> _Geometry:
        shape = loaded.shape
        existing = current_mesh(loaded)
        if existing is None or existing.triangles > options.max_triangles:
            diagonal = shape_diagonal(shape)
            mesh_model(loaded, max(diagonal / 2000, 1e-6), 0.3, options.max_triangles)
        arrays = triangle_arrays(shape)
        if len(arrays.triangles) == 0:
            raise InputError(f"{loaded.path.name}: nothing to draw (no meshed face)")
        diagonal = float(np.linalg.norm(arrays.points.max(axis=0) - arrays.points.min(axis=0)))
        tolerance = max(diagonal * 1e-7, 1e-9)
        keys = np.round(arrays.points / tolerance).astype(np.int64)
        _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        points = arrays.points[first]
        triangles = inverse.reshape(-1)[arrays.triangles]
        normals = _unit_normals(points, triangles)

        mesh_only_faces = _faces_without_surface(shape)
        edges = _MeshEdges(triangles)
        face = arrays.face_of_triangle
        feature_cos = math.cos(math.radians(options.feature_angle_deg))
        t1, t2 = edges.pair_triangles[:, 0], edges.pair_triangles[:, 1]
        on_mesh_only = np.isin(face[t1], mesh_only_faces) | np.isin(face[t2], mesh_only_faces)
        same_face = face[t1] == face[t2]
        crease = np.einsum("ij,ij->i", normals[t1], normals[t2]) < feature_cos
        # Lines of mesh-only faces come from the mesh (face borders, creases); those of exact
        # faces from their edge curves. Inside a face, a mesh edge may be a silhouette.
        mesh_lines = np.concatenate(
            [
                edges.pair_nodes[on_mesh_only & (~same_face | crease)],
                edges.single_nodes[np.isin(face[edges.single_triangles], mesh_only_faces)],
                edges.multi_nodes,
            ]
        )
        curve_lines = _edge_segments(shape, diagonal / 2000, warnings)
        lines = np.concatenate([points[mesh_lines], curve_lines])
        candidates = same_face & ~(on_mesh_only & crease)
        return cls(points, triangles, normals, lines, edges.pair_nodes[candidates], edges.pair_triangles[candidates])


class _MeshEdges:
    """Undirected edges of a welded triangle mesh, by how many triangles share them."""

    def __init__(self, triangles: np.ndarray) -> None:
        m = len(triangles)
        directed = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
        owner = np.tile(np.arange(m), 3)
        undirected = np.sort(directed, axis=1)
        _, inverse, counts = np.unique(undirected, axis=0, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        order = np.argsort(inverse, kind="stable")
        per_edge = counts[inverse[order]]
        nodes = undirected[order]
        owners = owner[order]
        pairs = per_edge == 2
        self.pair_nodes = nodes[pairs][::2]
        self.pair_triangles = owners[pairs].reshape(-1, 2)
        singles = per_edge == 1
        self.single_nodes = nodes[singles]
        self.single_triangles = owners[singles]
        multi = per_edge > 2  # non-manifold: always drawn
        self.multi_nodes = np.unique(nodes[multi], axis=0) if multi.any() else np.zeros((0, 2), dtype=np.int64)


def _unit_normals(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    a, b, c = (points[triangles[:, i]] for i in range(3))
    normals = np.cross(b - a, c - a)
    lengths = np.linalg.norm(normals, axis=1, keepdims=True)
    return np.divide(normals, lengths, out=np.zeros_like(normals), where=lengths > 0)


def _faces_without_surface(shape: TopoDS_Shape) -> np.ndarray:
    indices = []
    explorer = TopExp_Explorer(shape, TopAbs_FACE)
    index = 0
    while explorer.More():  # same order as triangle_arrays numbers the faces
        if BRep_Tool.Surface_s(TopoDS.Face_s(explorer.Current())) is None:
            indices.append(index)
        index += 1
        explorer.Next()
    return np.array(indices, dtype=np.int64)


def _edge_segments(shape: TopoDS_Shape, deflection: float, warnings: list[str]) -> np.ndarray:
    """Segments along every edge of the faces with an exact surface, seams left out."""
    seen = TopTools_IndexedMapOfShape()
    polylines: list[np.ndarray] = []
    failures: list[str] = []
    faces = TopExp_Explorer(shape, TopAbs_FACE)
    while faces.More():
        face = TopoDS.Face_s(faces.Current())
        if BRep_Tool.Surface_s(face) is not None:
            edges = TopExp_Explorer(face, TopAbs_EDGE)
            while edges.More():
                edge = TopoDS.Edge_s(edges.Current())
                before = seen.Extent()
                if (
                    seen.Add(edge) > before
                    and not BRep_Tool.Degenerated_s(edge)
                    and not BRep_Tool.IsClosed_s(edge, face)
                ):
                    try:
                        polyline = _discretize(edge, deflection)
                    except Exception as exc:  # OCCT refuses a broken curve: one edge is missing
                        failures.append(f"{type(exc).__name__}: {exc}")
                    else:
                        if len(polyline) >= 2:
                            polylines.append(np.stack([polyline[:-1], polyline[1:]], axis=1))
                edges.Next()
        faces.Next()
    if failures:
        warnings.append(f"{len(failures)} edges could not be drawn (first: {failures[0]})")
    return np.concatenate(polylines) if polylines else np.zeros((0, 2, 3))


def _discretize(edge, deflection: float) -> np.ndarray:
    points = GCPnts_TangentialDeflection(BRepAdaptor_Curve(edge), 0.1, max(deflection, 1e-7), 2)
    return np.array([points.Value(i).Coord() for i in range(1, points.NbPoints() + 1)]).reshape(-1, 3)


# --- one view ---------------------------------------------------------------------------------


@dataclass
class _DrawnView:
    view: View
    bounds: tuple[float, float, float, float]  # umin, vmin, umax, vmax in model mm
    visible: np.ndarray  # (K, 2, 2) segments in view coordinates (u right, v up), model mm
    hidden: np.ndarray = field(default_factory=lambda: np.zeros((0, 2, 2)))


# Lattice subdivisions per edge, in steps of about 1.5 (grids are built once per pair used); the
# largest covers an edge across a whole view at 2 samples per pixel.
_SUBDIVISIONS = np.unique(np.round(1.5 ** np.arange(0, 22)).astype(np.int64))
_EDGE_ON_COSINE = 0.02  # |normal . view| below this: the triangle is seen edge-on (within ~1 degree)
_SAMPLE_BUDGET = 2_000_000  # depth samples per numpy batch (memory)
_SAMPLES_PER_PIXEL = 2.0  # lattice spacing <= 1/2 px along both edges: no pixel inside is missed


def _draw_view(geometry: _Geometry, view: View, options: DrawingOptions) -> _DrawnView:
    basis = view.basis()
    projected = geometry.points @ basis.T  # u, v, depth (larger = nearer)
    lines = geometry.lines @ basis.T if len(geometry.lines) else np.zeros((0, 2, 3))
    silhouettes = _silhouettes(geometry, basis[2])
    segments = np.concatenate([lines, projected[silhouettes]]) if len(silhouettes) else lines

    umin, vmin = projected[:, :2].min(axis=0)
    umax, vmax = projected[:, :2].max(axis=0)
    extent = max(umax - umin, vmax - vmin, 1e-9)
    pixel = extent / options.raster_px
    origin = (umin - 2 * pixel, vmin - 2 * pixel)
    width = int(math.ceil((umax - umin) / pixel)) + 5
    height = int(math.ceil((vmax - vmin) / pixel)) + 5
    # Triangles seen edge-on cover no area, only a line, but would cost the most samples.
    broadside = np.abs(geometry.normals @ basis[2]) > _EDGE_ON_COSINE
    depth = _depth_buffer(projected[geometry.triangles[broadside]], origin, pixel, (height, width))
    visible, hidden = _split_by_visibility(segments, depth, origin, pixel, projected[:, 2])
    return _DrawnView(view, (umin, vmin, umax, vmax), visible, hidden)


def _silhouettes(geometry: _Geometry, toward_viewer: np.ndarray) -> np.ndarray:
    if len(geometry.silhouette_edges) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    facing = geometry.normals @ toward_viewer > 0
    sides = geometry.silhouette_sides
    return geometry.silhouette_edges[facing[sides[:, 0]] != facing[sides[:, 1]]]


def _depth_buffer(
    triangles: np.ndarray, origin: tuple[float, float], pixel: float, size: tuple[int, int]
) -> np.ndarray:
    """Nearest depth per pixel, from samples finer than a pixel over every triangle.

    Each triangle is sampled on a lattice spanned by the two edges at its widest angle, with
    its own spacing along each edge, so a long thin triangle costs samples in proportion to its
    area, not to the square of its length; the opposite edge is sampled on its own.
    """
    height, width = size
    buffer = np.full(height * width, -np.inf)
    if len(triangles) == 0:
        return buffer.reshape(height, width)
    uv = triangles[:, :, :2] / pixel
    opposite = np.linalg.norm(np.roll(uv, -1, axis=1) - np.roll(uv, -2, axis=1), axis=2)  # edge facing each vertex
    apex = np.argmax(opposite, axis=1)
    order = (apex[:, None] + np.arange(3)) % 3
    triangles = np.take_along_axis(triangles, order[:, :, None], axis=1)
    uv = np.take_along_axis(uv, order[:, :, None], axis=1)
    along = [np.linalg.norm(uv[:, k] - uv[:, 0], axis=1) for k in (1, 2)]
    levels = [
        _SUBDIVISIONS[
            np.minimum(np.searchsorted(_SUBDIVISIONS, np.ceil(a * _SAMPLES_PER_PIXEL)), len(_SUBDIVISIONS) - 1)
        ]
        for a in along
    ]

    def splat(u: np.ndarray, v: np.ndarray, depth: np.ndarray) -> None:
        x = np.clip(((u - origin[0]) / pixel).astype(np.int64), 0, width - 1)
        y = np.clip(((v - origin[1]) / pixel).astype(np.int64), 0, height - 1)
        np.maximum.at(buffer, y * width + x, depth)

    pairs, which = np.unique(np.stack(levels, axis=1), axis=0, return_inverse=True)
    which = which.reshape(-1)
    corners_by_coordinate = triangles.transpose(0, 2, 1)  # (T, coordinate, corner)
    for index, (ns, nt) in enumerate(pairs.tolist()):
        weights = _lattice(ns, nt)  # (corner, sample)
        chosen = np.flatnonzero(which == index)
        batch = max(1, _SAMPLE_BUDGET // weights.shape[1])
        for start in range(0, len(chosen), batch):
            samples = corners_by_coordinate[chosen[start : start + batch]] @ weights  # (T, coordinate, sample)
            splat(samples[:, 0].ravel(), samples[:, 1].ravel(), samples[:, 2].ravel())
    edge_points = _sample_segments(triangles[:, 1:], pixel / _SAMPLES_PER_PIXEL)[0]
    splat(edge_points[:, 0], edge_points[:, 1], edge_points[:, 2])
    return buffer.reshape(height, width)


def _lattice(ns: int, nt: int) -> np.ndarray:
    """Barycentric weights (3, S) of the points apex + i/ns * edge1 + j/nt * edge2 in the triangle."""
    i, j = np.meshgrid(np.arange(ns + 1) / ns, np.arange(nt + 1) / nt, indexing="ij")
    keep = i + j <= 1 + 1e-9
    s, t = i[keep], j[keep]
    return np.stack([1 - s - t, s, t])


def _sample_segments(segments: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points every `spacing` (or closer) along segments (K, 2, 3), both ends included.

    Returns the points, the segment each belongs to, and its parameter t in [0, 1].
    """
    length = np.linalg.norm(segments[:, 1, :2] - segments[:, 0, :2], axis=1)
    counts = np.maximum(np.ceil(length / spacing).astype(np.int64), 1) + 1
    owner = np.repeat(np.arange(len(segments)), counts)
    starts = np.cumsum(counts) - counts
    t = (np.arange(counts.sum()) - starts[owner]) / (counts[owner] - 1)
    points = segments[owner, 0] + t[:, None] * (segments[owner, 1] - segments[owner, 0])
    return points, owner, t


def _split_by_visibility(
    segments: np.ndarray, depth: np.ndarray, origin: tuple[float, float], pixel: float, all_depths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Cut segments (u, v, depth endpoints) into visible and hidden pieces (u, v endpoints)."""
    if len(segments) == 0:
        return np.zeros((0, 2, 2)), np.zeros((0, 2, 2))
    nearest, farthest = _neighbourhood(depth)
    tolerance = 1e-4 * (all_depths.max() - all_depths.min()) + 0.25 * pixel

    points, owner, t = _sample_segments(segments, pixel / 2)  # half-pixel steps
    counts = np.bincount(owner, minlength=len(segments))
    starts = np.cumsum(counts) - counts
    height, width = depth.shape
    x = np.clip(((points[:, 0] - origin[0]) / pixel).astype(np.int64), 0, width - 1)
    y = np.clip(((points[:, 1] - origin[1]) / pixel).astype(np.int64), 0, height - 1)
    near, far = nearest[y, x], farthest[y, x]
    # Hidden: the surface around is nearer than the sample by more than its own depth spread.
    with np.errstate(invalid="ignore"):
        visible = ~(points[:, 2] < far - (near - far) - tolerance)

    # Runs of equal visibility within one segment; cut between samples (half a step either side).
    change = np.ones(len(t), dtype=bool)
    change[1:] = (owner[1:] != owner[:-1]) | (visible[1:] != visible[:-1])
    run_start = np.flatnonzero(change)
    run_end = np.append(run_start[1:], len(t)) - 1
    step = 1.0 / (counts[owner] - 1)
    t0 = np.where(t[run_start] == 0, 0.0, t[run_start] - step[run_start] / 2)
    t1 = np.where(run_end == starts[owner[run_end]] + counts[owner[run_end]] - 1, 1.0, t[run_end] + step[run_end] / 2)
    seg = owner[run_start]
    a, b = segments[seg, 0, :2], segments[seg, 1, :2]
    pieces = np.stack([a + t0[:, None] * (b - a), a + t1[:, None] * (b - a)], axis=1)
    shown = visible[run_start]
    return pieces[shown], pieces[~shown]


def _neighbourhood(depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the nearest and the farthest depth in its 3x3 neighbourhood."""
    padded = np.pad(depth, 1, constant_values=-np.inf)
    h, w = depth.shape
    shifted = [padded[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)]
    return np.max(shifted, axis=0), np.min(shifted, axis=0)


# --- page -------------------------------------------------------------------------------------


_LABEL_MM = 3.5
_TITLE_MM = 3.0
_GAP_MM = 6.0  # between a view and its neighbours / label


def _compose_svg(
    drawn: list[_DrawnView], file_name: str, options: DrawingOptions, hidden_lines: bool
) -> tuple[str, float]:
    inner_w = options.page_width_mm - 2 * options.margin_mm
    inner_h = options.page_height_mm - 2 * options.margin_mm - _TITLE_MM - _GAP_MM
    cell_w, cell_h = inner_w / 2, inner_h / 2
    room_w, room_h = cell_w - _GAP_MM, cell_h - _GAP_MM - _LABEL_MM
    fits = []
    for d in drawn:
        umin, vmin, umax, vmax = d.bounds
        fits.append(min(room_w / max(umax - umin, 1e-9), room_h / max(vmax - vmin, 1e-9)))
    scale = iso_scale(min(fits))

    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{options.page_width_mm:g}mm" '
        f'height="{options.page_height_mm:g}mm" viewBox="0 0 {options.page_width_mm:g} {options.page_height_mm:g}">',
        f'<rect x="0" y="0" width="{options.page_width_mm:g}" height="{options.page_height_mm:g}" fill="#ffffff"/>',
    ]
    for d in drawn:
        umin, vmin, umax, vmax = d.bounds
        left = options.margin_mm + d.view.column * cell_w
        top = options.margin_mm + d.view.row * cell_h
        # Center each view in its cell; equal cells and one scale keep the views aligned.
        cx, cy = left + cell_w / 2, top + (cell_h - _LABEL_MM) / 2
        offset_x = cx - scale * (umin + umax) / 2
        offset_y = cy + scale * (vmin + vmax) / 2
        parts.append(f'<g id="view-{d.view.name}" fill="none" stroke-linecap="round" stroke-linejoin="round">')
        if hidden_lines and len(d.hidden):
            parts.append(
                f'<path stroke="#707070" stroke-width="{options.hidden_line_width_mm:g}" '
                f'stroke-dasharray="1.2 0.8" d="{_path_data(d.hidden, scale, offset_x, offset_y)}"/>'
            )
        if len(d.visible):
            parts.append(
                f'<path stroke="#000000" stroke-width="{options.line_width_mm:g}" '
                f'd="{_path_data(d.visible, scale, offset_x, offset_y)}"/>'
            )
        parts.append(
            f'<text x="{cx:.2f}" y="{top + cell_h - 1:.2f}" font-family="Helvetica, Arial, sans-serif" '
            f'font-size="{_LABEL_MM:g}" text-anchor="middle" fill="#000000" stroke="none">{escape(d.view.label)}</text>'
        )
        parts.append("</g>")
    title = f"{file_name}    scale {_scale_label(scale)}    dimensions in mm"
    parts.append(
        f'<text x="{options.margin_mm:g}" y="{options.page_height_mm - options.margin_mm:.2f}" '
        f'font-family="Helvetica, Arial, sans-serif" font-size="{_TITLE_MM:g}" fill="#000000">{escape(title)}</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n", scale


def _path_data(segments: np.ndarray, scale: float, offset_x: float, offset_y: float) -> str:
    """SVG path data of segments; a segment starting where the previous ended continues it."""
    x = np.round(offset_x + scale * segments[:, :, 0], 2)
    y = np.round(offset_y - scale * segments[:, :, 1], 2)  # SVG y points down
    out: list[str] = []
    last: tuple[float, float] | None = None
    for (x0, x1), (y0, y1) in zip(x.tolist(), y.tolist()):
        if last != (x0, y0):
            out.append(f"M{x0:g} {y0:g}")
        out.append(f"L{x1:g} {y1:g}")
        last = (x1, y1)
    return "".join(out)


def _scale_label(scale: float) -> str:
    if scale >= 1:
        return f"{scale:g}:1"
    return f"1:{1 / scale:g}"


def _write(path: Path, data: bytes) -> Path:
    with atomic_target(path) as tmp:
        tmp.write_bytes(data)
    return path
