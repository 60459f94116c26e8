"""Loading STEP/IGES/STL, catalog metadata and the assembly BOM, on generated models (corpus models:
tests/e2e/test_step_document_corpus.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cadquery as cq
import pytest
from OCP.gp import gp_Trsf, gp_Vec
from OCP.STEPCAFControl import STEPCAFControl_Writer
from OCP.STEPControl import STEPControl_StepModelType
from OCP.TCollection import TCollection_ExtendedString
from OCP.TDataStd import TDataStd_Name
from OCP.TDocStd import TDocStd_Document
from OCP.TopLoc import TopLoc_Location
from OCP.XCAFDoc import XCAFDoc_DocumentTool

from documents.errors import InputError
from documents.step_document import open_model, open_step
from extractors.step_bom import BOM_COLUMNS, step_bom_rows
from extractors.step_metadata import density_for, extract_step_metadata

DENSITIES = {"steel": 7850.0, "Aluminium": 2700.0}


def export_step(shape_or_assembly, path: Path) -> Path:
    if isinstance(shape_or_assembly, cq.Assembly):
        shape_or_assembly.export(str(path), "STEP")
    else:
        cq.exporters.export(shape_or_assembly, str(path), "STEP")
    return path


def write_shared_assembly(path: Path) -> Path:
    """machine = plate + 2 x bolt-set (one shared definition) ; bolt-set = 3 x bolt."""
    doc = TDocStd_Document(TCollection_ExtendedString("XmlXCAF"))
    tool = XCAFDoc_DocumentTool.ShapeTool_s(doc.Main())

    def named(label, name):
        TDataStd_Name.Set_s(label, TCollection_ExtendedString(name))
        return label

    def at(x, y, z):
        trsf = gp_Trsf()
        trsf.SetTranslation(gp_Vec(x, y, z))
        return TopLoc_Location(trsf)

    bolt = named(tool.AddShape(cq.Solid.makeCylinder(3, 20).wrapped, False), "bolt")
    plate = named(tool.AddShape(cq.Solid.makeBox(100, 50, 5).wrapped, False), "plate")
    bolt_set = named(tool.NewShape(), "bolt-set")
    for i in range(3):
        tool.AddComponent(bolt_set, bolt, at(10 + 20 * i, 10, 5))
    machine = named(tool.NewShape(), "machine")
    tool.AddComponent(machine, plate, at(0, 0, 0))
    tool.AddComponent(machine, bolt_set, at(0, 0, 0))
    tool.AddComponent(machine, bolt_set, at(0, 30, 0))
    tool.UpdateAssemblies()
    writer = STEPCAFControl_Writer()
    writer.SetNameMode(True)
    assert writer.Transfer(doc, STEPControl_StepModelType.STEPControl_AsIs)
    writer.Write(str(path))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("step_models")
    box = cq.Workplane().box(100, 50, 20)
    colored = cq.Assembly(name="box-assembly").add(box, name="red-box", color=cq.Color("red"))
    return {
        "box": export_step(box, folder / "box.step"),
        "colored": export_step(colored, folder / "colored.STP"),
        "shared": write_shared_assembly(folder / "shared.step"),
    }


# --- loading ----------------------------------------------------------------------------------


def test_generated_box_loads_in_millimetres_with_header(models):
    loaded = open_step(models["box"])
    assert loaded.format == "step"
    assert len(loaded.roots) == 1
    assert loaded.file_length_unit == "millimetre"
    assert loaded.header.application_protocol == "AP214"
    assert loaded.header.schema.upper().startswith("AUTOMOTIVE_DESIGN")
    assert loaded.header.originating_system  # cadquery/OCCT write one
    assert loaded.external_files == []
    assert loaded.mesh_only is False


def test_extension_case_does_not_matter(models):
    assert open_model(models["colored"]).format == "step"  # ".STP"


def test_declared_metres_are_converted_to_millimetres(models, tmp_path):
    text = models["box"].read_text()
    assert "SI_UNIT(.MILLI.,.METRE.)" in text
    metres = tmp_path / "metres.step"
    metres.write_text(text.replace("SI_UNIT(.MILLI.,.METRE.)", "SI_UNIT($,.METRE.)"))
    meta = extract_step_metadata(open_step(metres), DENSITIES, "steel")
    assert meta["file_length_unit"] == "metre"
    assert meta["units"] == "mm"
    assert (meta["size_x"], meta["size_y"], meta["size_z"]) == pytest.approx((100_000, 50_000, 20_000))


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "not a STEP file"),
        (b"solid cube\nendsolid cube\n", "not a STEP file"),
        (b"ISO-10303-21;\nHEADER;\nENDSEC;\nDATA;\nENDSEC;\nEND-ISO-10303-21;\n", "no shape to transfer"),
        (b"ISO-10303-21;\nHEADER;\nthis is not part 21 at all (((\n", "cannot parse STEP"),
    ],
)
def test_bad_step_content_is_an_input_error(tmp_path, content, reason):
    path = tmp_path / "bad.step"
    path.write_bytes(content)
    with pytest.raises(InputError, match=reason) as info:
        open_step(path)
    assert "bad.step" in str(info.value)


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        open_model(tmp_path / "gone.step")


# --- metadata ---------------------------------------------------------------------------------


def test_box_metadata_has_known_measures(models):
    meta = extract_step_metadata(open_step(models["box"]), DENSITIES, "steel")
    assert meta["volume_mm3"] == pytest.approx(100_000, rel=1e-9)
    assert meta["area_mm2"] == pytest.approx(16_000, rel=1e-9)
    assert (meta["bbox_xmin"], meta["bbox_ymin"], meta["bbox_zmin"]) == pytest.approx((-50, -25, -10), abs=1e-6)
    assert (meta["bbox_xmax"], meta["bbox_ymax"], meta["bbox_zmax"]) == pytest.approx((50, 25, 10), abs=1e-6)
    assert (meta["center_x"], meta["center_y"], meta["center_z"]) == pytest.approx((0, 0, 0), abs=1e-9)
    assert (meta["n_solids"], meta["n_shells"], meta["n_faces"], meta["n_edges"], meta["n_vertices"]) == (
        1,
        1,
        6,
        12,
        8,
    )
    assert meta["is_valid"] is True
    assert meta["material"] == "steel"
    assert meta["density_kg_m3"] == 7850.0
    assert meta["mass_kg"] == pytest.approx(0.785)  # 1e-4 m^3 of steel
    assert meta["application_protocol"] == "AP214"
    lists = ("authors", "organizations", "product_names")  # list<string> columns of the catalog
    assert all(meta[k] is None or (meta[k] and all(isinstance(v, str) for v in meta[k])) for k in lists)
    assert all(
        value is None or isinstance(value, (str, int, float, bool)) for k, value in meta.items() if k not in lists
    )


def test_material_lookup_ignores_case_and_rejects_unknown(models):
    meta = extract_step_metadata(open_step(models["box"]), DENSITIES, "aluminium")
    assert meta["mass_kg"] == pytest.approx(0.27)
    with pytest.raises(ValueError, match="unobtainium"):
        extract_step_metadata(open_step(models["box"]), DENSITIES, "unobtainium")
    with pytest.raises(ValueError, match="positive"):
        density_for("steel", {"steel": -1.0})


def test_assembly_metadata_counts_instances(models):
    meta = extract_step_metadata(open_step(models["shared"]), DENSITIES, "steel")
    assert meta["n_solids"] == 7  # plate + 2 x 3 bolts, each placed instance counted
    assert meta["n_products"] == 4
    assert meta["n_part_instances"] == 7
    assert meta["product_names"] == ["machine", "plate", "bolt-set", "bolt"]
    assert meta["volume_mm3"] == pytest.approx(100 * 50 * 5 + 6 * math.pi * 9 * 20, rel=1e-6)


# --- BOM --------------------------------------------------------------------------------------


def test_shared_assembly_bom_multiplies_instances(models):
    rows = step_bom_rows(open_step(models["shared"]), density_kg_m3=7850.0)
    assert all(list(row) == list(BOM_COLUMNS) for row in rows)
    summary = [(r["level"], r["part_number"], r["qty"], r["parent"]) for r in rows]
    assert summary == [
        (0, "machine", 1.0, None),
        (1, "plate", 1.0, "machine"),
        (1, "bolt-set", 2.0, "machine"),
        (2, "bolt", 6.0, "bolt-set"),
    ]
    bolt = rows[3]
    assert bolt["insert_count"] == 6
    assert json.loads(bolt["attributes"])["qty_per_parent"] == 3
    assert bolt["block_path"] == "machine/bolt-set/bolt"
    assert bolt["handle"].count("/") == 2
    assert bolt["source"] == "3d" and bolt["unit"] == "pcs"
    assert bolt["mass"] == pytest.approx(math.pi * 9 * 20 * 1e-9 * 7850, rel=1e-6)  # one piece
    assert rows[0]["mass"] == pytest.approx((100 * 50 * 5 + 6 * math.pi * 9 * 20) * 1e-9 * 7850, rel=1e-6)


def test_cadquery_assembly_bom_totals_six_bolts(tmp_path):
    bolt = cq.Workplane().cylinder(20, 3)
    bolt_set = cq.Assembly(name="bolt-set")
    for i in range(3):
        bolt_set.add(bolt, name=f"bolt{i}", loc=cq.Location((i * 10, 0, 0)))
    machine = cq.Assembly(name="machine").add(cq.Workplane().box(50, 30, 5), name="plate")
    machine.add(bolt_set, name="setA", loc=cq.Location((0, 0, 10)))
    machine.add(bolt_set, name="setB", loc=cq.Location((0, 20, 10)))
    rows = step_bom_rows(open_step(export_step(machine, tmp_path / "machine.step")))
    # cadquery writes each sub-assembly as its own product but shares the bolt definition.
    bolt_rows = [r for r in rows if r["level"] == 2]
    assert sum(r["qty"] for r in bolt_rows) == 6
    assert {r["parent"] for r in bolt_rows} == {"setA", "setB"}
    assert rows[0]["mass"] is None  # no density given


def test_single_part_bom_is_one_root_row(models):
    rows = step_bom_rows(open_step(models["box"]))
    assert len(rows) == 1
    assert rows[0]["level"] == 0 and rows[0]["qty"] == 1.0 and rows[0]["parent"] is None
