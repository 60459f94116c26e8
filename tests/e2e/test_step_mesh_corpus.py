"""Meshes of real corpus models: a mesh-only model over the size cap, a wireframe with nothing to mesh
(generated models: tests/unit/test_step_mesh.py)."""

from __future__ import annotations

import pytest

from converters.step_mesh import stl_bytes, write_stl
from documents.errors import InputError
from documents.step_document import open_model, open_step


def test_mesh_only_model_over_the_cap_is_refused(corpus_copy, tmp_path):
    folder = corpus_copy("files/build123d/examples__low_poly_benchy.stl")
    loaded = open_model(folder / "examples__low_poly_benchy.stl")
    result = write_stl(loaded, tmp_path / "benchy.stl", 0.1, 0.5, 10_000_000)
    assert result["triangles"] == 984  # written as it is: a mesh has no tolerance to apply
    assert result["linear_tolerance"] is None and result["adapted"] is False
    with pytest.raises(InputError, match="cannot be coarsened"):
        write_stl(loaded, tmp_path / "small.stl", 0.1, 0.5, stl_bytes(100))


def test_wireframe_only_model_has_nothing_to_mesh(corpus_copy, tmp_path):
    folder = corpus_copy("files/occt/data__step__bug27333_simple.stp")
    with pytest.raises(InputError, match="no faces to mesh"):
        write_stl(open_step(folder / "data__step__bug27333_simple.stp"), tmp_path / "x.stl", 0.1, 0.5, 10**6)
