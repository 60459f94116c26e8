"""Binary STL and GLB from loaded models: sizes, tolerances, the size guard, GLB units and names."""

from __future__ import annotations

import struct
from pathlib import Path

import cadquery as cq
import numpy as np
import pytest

from converters.step_mesh import mesh_model, read_glb_json, stl_bytes, write_glb, write_stl
from documents.errors import InputError, TransientError
from documents.step_document import open_step


def export_step(obj, path: Path) -> Path:
    if isinstance(obj, cq.Assembly):
        obj.export(str(path), "STEP")
    else:
        cq.exporters.export(obj, str(path), "STEP")
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("mesh_models")
    box = cq.Workplane().box(100, 50, 20)
    assembly = (
        cq.Assembly(name="pair")
        .add(box, name="red-box", color=cq.Color(1, 0, 0))
        .add(cq.Workplane().sphere(10), name="blue-ball", color=cq.Color(0, 0, 1), loc=cq.Location((0, 0, 40)))
    )
    return {
        "box": export_step(box, folder / "box.step"),
        "sphere": export_step(cq.Workplane().sphere(50), folder / "sphere.step"),
        "pair": export_step(assembly, folder / "pair.step"),
    }


def read_binary_stl(path: Path) -> np.ndarray:
    data = path.read_bytes()
    (count,) = struct.unpack_from("<I", data, 80)
    assert len(data) == 84 + 50 * count
    records = np.frombuffer(data[84:], dtype=np.dtype([("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")]))
    return records["v"]


def test_box_stl_is_binary_with_twelve_triangles(models, tmp_path):
    result = write_stl(open_step(models["box"]), tmp_path / "box.stl", 0.1, 0.5, 10_000_000)
    assert result["triangles"] == 12
    assert result["bytes"] == stl_bytes(12) == (tmp_path / "box.stl").stat().st_size
    assert result["adapted"] is False and result["linear_tolerance"] == 0.1
    vertices = read_binary_stl(tmp_path / "box.stl").reshape(-1, 3)
    assert vertices.max(axis=0) - vertices.min(axis=0) == pytest.approx([100, 50, 20])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["box.stl"]  # no temporary file left


def test_size_guard_coarsens_tolerance_until_the_stl_fits(models, tmp_path):
    loaded = open_step(models["sphere"])
    fine = mesh_model(loaded, 0.01, 0.1)
    cap = stl_bytes(fine.triangles // 20)
    result = write_stl(loaded, tmp_path / "sphere.stl", 0.01, 0.1, cap)
    assert result["adapted"] is True
    assert result["bytes"] <= cap
    assert result["bytes"] == stl_bytes(result["triangles"])
    assert result["linear_tolerance"] > 0.01
    # The guard keeps what the cap allows rather than collapsing to a handful of triangles.
    assert result["triangles"] > fine.triangles // 200


def test_size_guard_reaches_the_cap_without_meshing_the_blow_up(models):
    # 0.00001 mm on a 100 mm sphere would be tens of millions of triangles: never meshed in full.
    info = mesh_model(open_step(models["sphere"]), 1e-5, 0.05, max_triangles=20_000)
    assert info.adapted is True and 0 < info.triangles <= 20_000


def test_cap_below_the_coarsest_mesh_is_an_input_error(models, tmp_path):
    with pytest.raises(InputError, match="over the cap"):
        write_stl(open_step(models["box"]), tmp_path / "box.stl", 0.1, 0.5, stl_bytes(5))
    assert not (tmp_path / "box.stl").exists()


def test_unwritable_folder_is_transient(models, tmp_path):
    with pytest.raises(TransientError):
        write_stl(open_step(models["box"]), tmp_path / "missing" / "box.stl", 0.1, 0.5, 10**6)


def _position_bounds(gltf: dict) -> tuple[np.ndarray, np.ndarray]:
    positions = [gltf["accessors"][p["attributes"]["POSITION"]] for m in gltf["meshes"] for p in m["primitives"]]
    return np.min([a["min"] for a in positions], axis=0), np.max([a["max"] for a in positions], axis=0)


def test_glb_of_100_mm_box_is_0_1_m(models, tmp_path):
    result = write_glb(open_step(models["box"]), tmp_path / "box.glb", 0.1, 0.5, 10_000_000)
    gltf = read_glb_json(tmp_path / "box.glb")
    low, high = _position_bounds(gltf)
    # glTF is Y up: model X, Y, Z (100, 50, 20 mm) -> glTF x, -z, y in metres.
    assert high - low == pytest.approx([0.1, 0.02, 0.05], abs=1e-6)
    assert result["scale_check"] == pytest.approx(1.0, abs=1e-3)
    assert result["bytes"] == (tmp_path / "box.glb").stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["box.glb"]


def test_glb_keeps_names_colors_and_placement(models, tmp_path):
    write_glb(open_step(models["pair"]), tmp_path / "pair.glb", 0.1, 0.5, 10_000_000)
    gltf = read_glb_json(tmp_path / "pair.glb")
    names = {node.get("name") for node in gltf["nodes"]}
    assert {"pair", "red-box", "blue-ball"} <= names
    colors = {tuple(round(c, 3) for c in m["pbrMetallicRoughness"]["baseColorFactor"][:3]) for m in gltf["materials"]}
    assert {(1.0, 0.0, 0.0), (0.0, 0.0, 1.0)} <= colors
    ball = next(n for n in gltf["nodes"] if n.get("name") == "blue-ball")
    assert ball["translation"] == pytest.approx([0, 0.04, 0], abs=1e-9)  # 40 mm up = +y in metres


def test_glb_size_cap_adapts_the_mesh(models, tmp_path):
    loaded = open_step(models["sphere"])
    roomy = write_glb(loaded, tmp_path / "fine.glb", 0.01, 0.1, 50_000_000)
    cap = roomy["bytes"] // 10
    result = write_glb(loaded, tmp_path / "capped.glb", 0.01, 0.1, cap)
    assert result["adapted"] is True and result["bytes"] <= cap
    assert result["linear_tolerance"] > 0.01


def test_stl_and_glb_share_one_mesh(models, tmp_path):
    loaded = open_step(models["sphere"])
    stl = write_stl(loaded, tmp_path / "s.stl", 0.05, 0.3, 10**8)
    glb = write_glb(loaded, tmp_path / "s.glb", 0.05, 0.3, 10**8)
    assert glb["triangles"] == stl["triangles"]
    assert glb["linear_tolerance"] == stl["linear_tolerance"] == 0.05
