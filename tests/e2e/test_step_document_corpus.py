"""Loading real corpus STEP, IGES and STL files: look-alikes, external references, comment lines,
empty and closed meshes, wireframes, representation pieces (generated models:
tests/unit/test_step_document.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from documents.errors import InputError
from documents.step_document import open_iges, open_model, open_step, open_stl
from extractors.step_bom import step_bom_rows
from extractors.step_metadata import extract_step_metadata
from tests.unit.test_step_document import DENSITIES

EXT_REF_PREFIX = "files/occt-import-js/test__testfiles__cax-if__s1-c5-214__"


def test_iges_content_named_stp_is_refused_by_open_step_and_read_by_open_model(corpus_copy):
    folder = corpus_copy("files/occt-import-js/test__testfiles__cube-10x10mm__Cube_10x10.igs")
    renamed = folder / "cube.stp"
    (folder / "test__testfiles__cube-10x10mm__Cube_10x10.igs").rename(renamed)
    with pytest.raises(InputError, match=r"cube\.stp: not a STEP file \(content is iges\)"):
        open_step(renamed)
    loaded = open_model(renamed)
    assert loaded.format == "iges"
    assert loaded.header.originating_system == "Autodesk Inventor 2019"
    meta = extract_step_metadata(loaded, DENSITIES, "steel")
    assert meta["volume_mm3"] == pytest.approx(1000.0, rel=1e-6)


def test_missing_external_reference_names_the_file(corpus_copy):
    folder = corpus_copy(EXT_REF_PREFIX + "s1-c5-214.stp")
    with pytest.raises(InputError) as info:
        open_step(folder / "test__testfiles__cax-if__s1-c5-214__s1-c5-214.stp")
    message = str(info.value)
    for name in ("HEAD.stp", "TAIL.stp", "MAINBODY.stp", "FOOT.stp"):
        assert f"'{name}'" in message
    assert "external reference" in message


def test_external_references_resolve_relative_to_the_file(corpus_dir, manifest, tmp_path):
    # The corpus flattens paths; give each file of the set back its original name.
    for row in manifest:
        if row["path"].startswith(EXT_REF_PREFIX):
            shutil.copy2(corpus_dir / row["path"], tmp_path / Path(row["source_path"]).name)
    loaded = open_step(tmp_path / "s1-c5-214.stp")
    assert sorted(p.name for p in loaded.external_files) == ["FOOT.stp", "HEAD.stp", "MAINBODY.stp", "TAIL.stp"]
    meta = extract_step_metadata(loaded, DENSITIES, "steel")
    # Eight part files; the turbine is used twice in TAIL and FOOT twice in the master.
    assert meta["n_solids"] == 11
    assert meta["volume_mm3"] > 0
    qty = {row["part_number"]: row["qty"] for row in step_bom_rows(loaded)}
    assert qty["TAIL_TURBINE"] == 2 and qty["FOOT"] == 2 and qty["FOOT_FRONT_000"] == 2 and qty["HEAD_BACK"] == 1


def test_stl_with_comment_lines_loads(corpus_copy):
    folder = corpus_copy("files/online3dviewer/test__testfiles__stl__single_triangle_with_comments.stl")
    loaded = open_stl(folder / "test__testfiles__stl__single_triangle_with_comments.stl")
    meta = extract_step_metadata(loaded, DENSITIES, "steel")
    assert meta["area_mm2"] == pytest.approx(0.5)
    assert meta["mesh_only"] is True
    assert meta["volume_mm3"] is None  # one triangle encloses nothing


@pytest.mark.parametrize(
    "name, reason",
    [
        ("files/trimesh/models__empty.stl", "no triangles"),
        ("files/trimesh/models__emptyIO__stl_empty_bin.stl", "no triangles"),
    ],
)
def test_empty_stl_is_an_input_error(corpus_copy, name, reason):
    folder = corpus_copy(name)
    with pytest.raises(InputError, match=reason):
        open_model(folder / Path(name).name)


def test_closed_stl_mesh_gets_volume_and_mass(corpus_copy):
    folder = corpus_copy("files/build123d/examples__low_poly_benchy.stl")
    meta = extract_step_metadata(open_model(folder / "examples__low_poly_benchy.stl"), DENSITIES, "steel")
    assert meta["closed_mesh"] is True
    assert meta["volume_mm3"] > 0
    assert meta["mass_kg"] == pytest.approx(meta["volume_mm3"] * 1e-9 * 7850)
    assert meta["is_valid"] is None
    assert "no unit" in meta["warnings"]


def test_iges_is_read_with_open_iges(corpus_copy):
    folder = corpus_copy("files/occt/data__iges__bug22566_test_Bad.igs")  # IGES, though listed as STL
    loaded = open_iges(folder / "data__iges__bug22566_test_Bad.igs")
    assert loaded.header.originating_system == "SolidWorks 2010"
    assert loaded.file_length_unit == "millimetre"


def test_unbounded_wireframe_gets_no_bounding_box(corpus_copy):
    folder = corpus_copy("files/occt/data__step__bug27333_simple.stp")  # one infinite LINE
    meta = extract_step_metadata(open_step(folder / "data__step__bug27333_simple.stp"), DENSITIES, "steel")
    assert meta["bbox_xmin"] is None and meta["size_x"] is None
    assert meta["n_faces"] == 0 and meta["n_edges"] == 1
    assert meta["volume_mm3"] is None and meta["mass_kg"] is None
    assert "unbounded" in meta["warnings"]


def test_representation_pieces_are_not_bom_parts(corpus_copy):
    # Pro/E AP203: OCCT shows each part's SOLID and COMPOUND as components; they are not parts.
    folder = corpus_copy("files/online3dviewer/website__assets__models__as1_pe_203.stp")
    loaded = open_step(folder / "website__assets__models__as1_pe_203.stp")
    rows = step_bom_rows(loaded)
    names = [r["part_number"] for r in rows]
    assert "SOLID" not in names and "COMPOUND" not in names
    totals: dict[str, float] = {}
    for r in rows:
        totals[r["part_number"]] = totals.get(r["part_number"], 0) + r["qty"]
    assert totals["BOLT"] == 6 and totals["NUT"] == 8 and totals["L-BRACKET"] == 2
    assert extract_step_metadata(loaded, DENSITIES, "steel")["n_part_instances"] == 18
