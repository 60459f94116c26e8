"""BOM exports: a generated nested assembly (placement counts through the nesting) and a
generated P&ID sheet (tagged valves and instruments, untagged symbols), extracted by ezdxf,
catalogued by a real run of the engine and read back from the CSV and XLSX exports."""

from __future__ import annotations

import csv
from pathlib import Path

import ezdxf
import openpyxl
import pytest

from engine.config import ConfigError, load_config
from extractors.block_attributes import DEFAULT_TAG_MAP, normalize_tag
from extractors.dxf_bom import bom_extract
from tests.conftest import catalog_table
from tests.deliverable_library import catalogue


def define(doc, name: str, *tags: str):
    block = doc.blocks.new(name)
    block.add_circle((0, 0), 2)
    for i, tag in enumerate(tags):
        block.add_attdef(tag, (3, -3 * i), dxfattribs={"height": 2})
    return block


def place(space, name: str, values: dict[str, str] | None = None, at=(0, 0)):
    insert = space.add_blockref(name, at)
    return insert.add_auto_attribs(values) if values is not None else insert


def title(doc, number: str, text: str) -> None:
    define(doc, "TITLE_A3", "TITLE", "DWG_NO", "REV", "DATE")
    place(doc.layouts.get("Layout1"), "TITLE_A3", {"TITLE": text, "DWG_NO": number, "REV": "A", "DATE": "2024-05-01"})
    doc.layouts.get("Layout1").add_line((0, 0), (100, 100))


def assembly_drawing(path: Path) -> Path:
    """Pump assembly: 3 x ASSY (2 bolts, a pin with QTY 2 each, a KIT of 4 screws), a MINSERT of
    2 x 3 seals; a bolt on its own."""
    doc = ezdxf.new("R2018")
    define(doc, "BOLT", "PART_NO", "DESC")
    define(doc, "PIN", "PART_NO", "QTY")
    define(doc, "SCREW", "PART_NO")
    define(doc, "SEAL", "PART_NO")
    kit = define(doc, "KIT")
    for x in range(4):
        place(kit, "SCREW", {"PART_NO": "SC-3"}, (x, 0))
    assy = define(doc, "ASSY", "PART_NO", "DESC")
    place(assy, "BOLT", {"PART_NO": "B-M6", "DESC": "Bolt M6x20"}, (5, 0))
    place(assy, "BOLT", {"PART_NO": "B-M6", "DESC": "Bolt M6x20"}, (10, 0))
    place(assy, "PIN", {"PART_NO": "P-4", "QTY": "2"}, (15, 0))
    place(assy, "KIT", at=(20, 0))
    msp = doc.modelspace()
    for y in (0, 50, 100):
        place(msp, "ASSY", {"PART_NO": "A-100", "DESC": "Pump assembly"}, (0, y))
    place(msp, "SEAL", {"PART_NO": "SL-2"}, (80, 0)).grid(size=(2, 3), spacing=(5, 5))
    place(msp, "BOLT", {"PART_NO": "B-M6", "DESC": "Bolt M6x20"}, (90, 0))
    title(doc, "D-100", "Pump assembly")
    doc.saveas(path)
    return path


VALVE_TAGS = ("#(TargetObject.Tag)", "#(TargetObject.Size)", "TYPE", "SERVICE")
INSTRUMENT_TAGS = ("TYPE", "LOOPNUMBER", "SERVICE")


def pid_drawing(path: Path) -> Path:
    """A P&ID sheet: 2 tagged gate valves and a tagged check valve (AutoCAD P&ID field names), 2
    instruments named by TYPE + LOOPNUMBER, one with a TAG of its own; 5 valves and 3 bubbles not
    tagged yet (every attribute empty); 4 reducers without attributes; a title block."""
    doc = ezdxf.new("R2018")
    define(doc, "VALVE_GATE", *VALVE_TAGS)
    define(doc, "VALVE_CHECK", *VALVE_TAGS)
    define(doc, "INSTR_BUBBLE", *INSTRUMENT_TAGS, "TAG")
    define(doc, "REDUCER")
    msp = doc.modelspace()
    valves = [
        ("VALVE_GATE", "HV-101", '2"', "GATE"),
        ("VALVE_GATE", "HV-102", '3"', "GATE"),
        ("VALVE_CHECK", "CV-103", '2"', "CHECK"),
    ]
    for i, (block, tag, size, kind) in enumerate(valves):
        place(msp, block, dict(zip(VALVE_TAGS, (tag, size, kind, "CW"))), (i * 20, 0))
    place(msp, "INSTR_BUBBLE", {"TYPE": "FT", "LOOPNUMBER": "101", "SERVICE": "Cooling water", "TAG": ""}, (0, 40))
    place(msp, "INSTR_BUBBLE", {"TYPE": "PT", "LOOPNUMBER": "102", "SERVICE": "", "TAG": "PT-102A"}, (20, 40))
    for i in range(5):
        place(msp, "VALVE_GATE", dict.fromkeys(VALVE_TAGS, ""), (i * 20, 80))
    for i in range(3):
        place(msp, "INSTR_BUBBLE", dict.fromkeys((*INSTRUMENT_TAGS, "TAG"), ""), (i * 20, 120))
    for i in range(4):
        place(msp, "REDUCER", at=(i * 20, 160))
    title(doc, "P-001", "Cooling water P&ID")
    doc.saveas(path)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("bom")
    lib = root / "library"
    lib.mkdir()
    assembly_drawing(lib / "pump.dxf")
    pid_drawing(lib / "cooling.dxf")
    out = root / "out"
    built = catalogue([lib], out)
    folder = out / "sets" / "library"
    return {"lib": lib, "out": out, "built": built, "folder": folder}


def sheet_rows(path: Path, name: str) -> list[dict]:
    sheet = openpyxl.load_workbook(path)[name]
    header = [c.value for c in sheet[1]]
    return [dict(zip(header, (c.value for c in row))) for row in sheet.iter_rows(min_row=2)]


def test_nested_assembly_export_has_the_placement_counts(exported):
    rows = sheet_rows(exported["folder"] / "bom" / "pump.dxf.xlsx", "BOM")
    counted = sorted((r["block_path"], r["part_number"], r["qty"], r["insert_count"], r["level"]) for r in rows)
    assert counted == [
        ("ASSY", "A-100", 3.0, 3, 0),
        ("ASSY/BOLT", "B-M6", 6.0, 6, 1),  # 2 per assembly, 3 assemblies
        ("ASSY/KIT/SCREW", "SC-3", 12.0, 12, 2),  # 4 per kit, a kit per assembly
        ("ASSY/PIN", "P-4", 6.0, 3, 1),  # QTY 2 per assembly
        ("BOLT", "B-M6", 1.0, 1, 0),
        ("SEAL", "SL-2", 6.0, 6, 0),  # MINSERT 2 x 3
    ]
    numbers = (int, float)  # numeric cells (Excel keeps 6.0 as 6)
    assert all(isinstance(r["qty"], numbers) and isinstance(r["insert_count"], numbers) for r in rows)
    assert {r["attr:PART_NO"] for r in rows} == {"A-100", "B-M6", "SC-3", "P-4", "SL-2"}  # raw attributes
    with open(exported["folder"] / "bom" / "pump.dxf.csv", newline="", encoding="utf-8") as handle:
        assert sorted(r["qty"] for r in csv.DictReader(handle)) == ["1", "12", "3", "6", "6", "6"]


def test_set_totals_add_the_same_part_over_rows(exported):
    totals = {(r["part_number"], r["tag"]): r for r in sheet_rows(exported["folder"] / "library-bom.xlsx", "Totals")}
    bolt = totals[("B-M6", None)]
    assert (bolt["total qty"], bolt["rows"], bolt["drawings"], bolt["used in"]) == (7.0, 2, 1, "D-100")
    with open(exported["folder"] / "library-bom.csv", newline="", encoding="utf-8") as handle:
        csv_totals = {(r["part_number"], r["tag"]): r for r in csv.DictReader(handle)}
    assert csv_totals[("B-M6", "")]["total qty"] == "7"
    assert csv_totals[("", "HV-101")]["drawings"] == "1"
    drawings = sheet_rows(exported["folder"] / "library-bom.xlsx", "Drawings")
    assert [(d["drawing_number"], d["BOM rows"], d["symbols"]) for d in drawings] == [("D-100", 6, 0), ("P-001", 5, 8)]
    rows = sheet_rows(exported["folder"] / "library-bom.xlsx", "Rows")
    assert len(rows) == 11 and {r["drawing_number"] for r in rows} == {"D-100", "P-001"}


def test_pid_gives_one_row_per_tagged_item_with_tag_and_type(exported):
    rows = sheet_rows(exported["folder"] / "bom" / "cooling.dxf.xlsx", "BOM")
    assert sorted((r["tag"], r["type"], r["loop_number"], r["service"], r["size"]) for r in rows) == [
        ("CV-103", "CHECK", None, "CW", '2"'),
        ("FT-101", "FT", "101", "Cooling water", None),  # composed from TYPE and LOOPNUMBER
        ("HV-101", "GATE", None, "CW", '2"'),
        ("HV-102", "GATE", None, "CW", '3"'),
        ("PT-102A", "PT", "102", None, None),  # its own TAG wins
    ]
    assert all(r["qty"] == 1.0 for r in rows)
    hv101 = next(r for r in rows if r["tag"] == "HV-101")
    assert hv101["attr:#(TargetObject.Tag)"] == "HV-101"  # the raw attribute beside the column


def test_untagged_symbols_are_counted_not_rows(exported):
    out = exported["out"]
    symbols = sheet_rows(exported["folder"] / "bom" / "cooling.dxf.xlsx", "Symbols")
    assert sorted((s["block_path"], s["count"]) for s in symbols) == [("INSTR_BUBBLE", 3), ("VALVE_GATE", 5)]
    files = catalog_table(out, "files").set_index("path")
    assert (files.loc["cooling.dxf", "bom_row_count"], files.loc["cooling.dxf", "bom_symbol_count"]) == (5, 8)
    table = catalog_table(out, "bom_symbols")
    assert table["insert_count"].sum() == 8
    register = sheet_rows(out / "register.xlsx", "Register")
    assert {(r["Drawing number"], r["BOM rows"], r["Symbols"]) for r in register} == {("D-100", 6, 0), ("P-001", 5, 8)}
    sheet = out / "docs" / "files" / f"{files.loc['cooling.dxf', 'sha256']}.html"
    assert "bom_symbol_count" in sheet.read_text(encoding="utf-8")


def test_exports_are_rewritten_only_for_what_changed(exported, tmp_path):
    lib, out = exported["lib"], exported["out"]
    again = catalogue([lib], out)
    assert not again.written
    doc = ezdxf.readfile(lib / "pump.dxf")
    place(doc.modelspace(), "BOLT", {"PART_NO": "B-M8", "DESC": "Bolt M8"}, (200, 0))
    doc.saveas(lib / "pump.dxf")
    changed = catalogue([lib], out)
    bom = [p for p in changed.written if "/bom/" in p or p.endswith(("-bom.csv", "-bom.xlsx", "-bom-rows.csv"))]
    assert sorted(bom) == sorted(
        [
            "sets/library/bom/pump.dxf.csv",
            "sets/library/bom/pump.dxf.xlsx",
            "sets/library/library-bom.csv",
            "sets/library/library-bom-rows.csv",
            "sets/library/library-bom.xlsx",
        ]
    )  # cooling.dxf's own export stays as it was
    assert "B-M8" in (out / "sets/library/bom/pump.dxf.csv").read_text(encoding="utf-8")


def test_tag_map_and_format_are_overridable_in_the_config(tmp_path):
    path = pid_drawing(tmp_path / "p.dxf")
    doc = ezdxf.readfile(path)
    define(doc, "PUMP", "KKS", "DESCRIPTION")
    place(doc.modelspace(), "PUMP", {"KKS": "10PAC01AP001", "DESCRIPTION": "Cooling water pump"})
    cfg = tmp_path / "cadpipe.toml"
    cfg.write_text('[bom]\ntags = { tag = ["KKS"] }\ntag_format = "{type}{loop_number}"\n', encoding="utf-8")
    raw = load_config(cfg).raw["bom"]
    assert raw == {"tags": {"tag": ["KKS"]}, "tag_format": "{type}{loop_number}"}
    tag_map = {**DEFAULT_TAG_MAP, "tag": DEFAULT_TAG_MAP["tag"] + raw["tags"]["tag"]}  # as engine/work.py merges
    tags = {r["tag"] for r in bom_extract(doc, tag_map, tag_format=raw["tag_format"]).rows}
    assert {"FT101", "10PAC01AP001", "HV-101"} <= tags and "FT-101" not in tags
    assert "10PAC01AP001" not in {r["tag"] for r in bom_extract(doc).rows}  # not a tag by default
    assert not {"FT101", "FT-101"} & {r["tag"] for r in bom_extract(doc, tag_format="").rows}  # never composed


@pytest.mark.parametrize(
    "text, message",
    [
        ('tag_format = "{nope}-{loop_number}"', "bom.tag_format '{nope}-{loop_number}' names ['nope']"),
        ('tag_format = "{type!r}"', "bom.tag_format '{type!r}'"),
        ('tag_format = "{type"', "bom.tag_format '{type'"),
        ("tag_format = 3", "bom.tag_format must be a string"),
        ('tags = { tag = "TAG" }', "bom.tags.tag must be a list of tag spellings"),
    ],
)
def test_bad_bom_config_is_refused_with_the_option_named(tmp_path, text, message):
    cfg = tmp_path / "cadpipe.toml"
    cfg.write_text(f"[bom]\n{text}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace("{", r"\{")):
        load_config(cfg)


def test_custom_tag_format_column_is_accepted(tmp_path):
    cfg = tmp_path / "cadpipe.toml"
    cfg.write_text('[bom]\ntags = { area = ["AREA"] }\ntag_format = "{area}-{type}-{loop_number}"\n', encoding="utf-8")
    assert load_config(cfg).raw["bom"]["tag_format"] == "{area}-{type}-{loop_number}"


def test_pid_field_names_normalize_to_their_property():
    assert normalize_tag("#(TargetObject.Tag)") == "TAG"
    assert normalize_tag("#(TargetObject.LoopNumber)") == "LOOPNUMBER"
    assert normalize_tag(" #(Project.General.Project_Number) ") == "PROJECTNUMBER"
    assert normalize_tag("PART#") == "PARTNO"  # a # elsewhere is still "number"


def test_a_drawing_name_too_long_for_its_export_is_shortened(tmp_path):
    lib = tmp_path / "library"
    lib.mkdir()
    long_name = "pump-" + "x" * 230 + ".dxf"  # 239 bytes: with ".xlsx" and a temporary name, too long
    assembly_drawing(lib / long_name)
    built = catalogue([lib], tmp_path / "out")
    assert not built.problems
    [export] = [p for p in built.written if p.startswith("sets/library/bom/") and p.endswith(".xlsx")]
    name = Path(export).name
    assert name.startswith("pump-xxx") and "~" in name and len(name.encode()) <= 255
    assert len(sheet_rows(tmp_path / "out" / export, "BOM")) == 6
