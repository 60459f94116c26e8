"""PDF sets: a folder of 10 generated drawings merged in drawing-number order with bookmarks,
rebuilt only when one of them changes; sets by a title-block field; the merge itself on pages
of mixed sizes and a damaged sheet."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pymupdf
import pytest

from converters.pdf_set import SetEntry, SetSheet, merge_pdf_set
from engine.config import ConfigError, load_config
from engine.library import Drawing, group_sets, natural_key
from tests.deliverable_library import catalogue, titled_drawing

A3_LANDSCAPE = (1191, 842)  # points: [dxf] page_size A3, landscape (the default)


def numbers_in_file_order(count: int) -> list[int]:
    numbers = list(range(1, count + 1))
    random.Random(7).shuffle(numbers)  # file names say nothing about the order
    return numbers


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("sets")
    lib = root / "library"
    for i, n in enumerate(numbers_in_file_order(10)):
        titled_drawing(lib / "plant" / f"sheet-{i:02d}.dxf", f"D-{n}", f"Plant part {n}", sheets=2 if n == 4 else 1)
    titled_drawing(lib / "other" / "a.dxf", "X-1", "Other one")
    titled_drawing(lib / "other" / "b.dxf", None, "Without number")
    out = root / "out"
    first = catalogue([lib], out)
    return {"lib": lib, "out": out, "first": first}


def toc(path: Path) -> list[list]:
    with pymupdf.open(path) as doc:
        return doc.get_toc()


def test_a_folder_of_10_drawings_gives_a_set_in_drawing_number_order(library):
    pdf = library["out"] / "sets" / "library-plant" / "library-plant.pdf"
    with pymupdf.open(pdf) as doc:
        assert doc.page_count == 11  # D-4 has two sheets
        assert {(round(p.rect.width), round(p.rect.height)) for p in doc} == {A3_LANDSCAPE}
        assert doc.metadata["title"] == "library/plant"
        pages = [page.get_pixmap(dpi=20).samples for page in doc]
    drawings = [entry for entry in toc(pdf) if entry[0] == 1]
    assert [title for _, title, _ in drawings] == [f"D-{n} Plant part {n}" for n in range(1, 11)]
    assert [page for _, _, page in drawings] == [1, 2, 3, 4, 6, 7, 8, 9, 10, 11]
    assert [e for e in toc(pdf) if e[0] == 2] == [[2, "Layout1", 4], [2, "Sheet 2", 5]]
    # each bookmark leads to its drawing's own sheet, as rendered
    manifest = json.loads((pdf.parent / "manifest.json").read_text(encoding="utf-8"))
    for member, (_, _, page) in zip(manifest["members"], drawings):
        with pymupdf.open(library["out"] / "outputs" / member["work_id"] / "layout-layout1.pdf") as sheet:
            assert sheet[0].get_pixmap(dpi=20).samples == pages[page - 1], member["path"]
    assert len(set(pages)) == len(pages)  # and the sheets differ


def test_manifest_names_members_with_work_ids(library):
    manifest = json.loads((library["out"] / "sets" / "library-plant" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["pages"] == 11 and manifest["set"] == "library/plant"
    assert [m["drawing_number"] for m in manifest["members"]] == [f"D-{n}" for n in range(1, 11)]
    assert all(len(m["work_id"]) == 32 for m in manifest["members"])
    assert [m["first_page"] for m in manifest["members"]][:5] == [1, 2, 3, 4, 6]


def test_drawings_without_a_number_follow_by_name(library):
    pdf = library["out"] / "sets" / "library-other" / "library-other.pdf"
    assert [title for _, title, _ in toc(pdf)] == ["X-1 Other one", "Without number"]


def test_a_set_is_rebuilt_only_when_one_of_its_drawings_changes(library):
    lib, out = library["lib"], library["out"]
    plant = out / "sets" / "library-plant" / "library-plant.pdf"
    other = out / "sets" / "library-other" / "library-other.pdf"
    before = (os.stat(plant).st_ino, os.stat(other).st_ino)
    again = catalogue([lib], out)
    assert not [p for p in again.written if p.endswith(".pdf")]
    assert (os.stat(plant).st_ino, os.stat(other).st_ino) == before

    changed_file = lib / "plant" / "sheet-03.dxf"
    number = numbers_in_file_order(10)[3]
    titled_drawing(changed_file, f"D-{number}", f"Plant part {number} revised", revision="B", offset=40)
    manifest = out / "sets" / "library-plant" / "manifest.json"
    old_ids = {m["path"]: m["work_id"] for m in json.loads(manifest.read_text(encoding="utf-8"))["members"]}
    third = catalogue([lib], out)
    assert "sets/library-plant/library-plant.pdf" in third.written
    assert "sets/library-other/library-other.pdf" not in third.written
    assert os.stat(other).st_ino == before[1] and os.stat(plant).st_ino != before[0]
    new_ids = {m["path"]: m["work_id"] for m in json.loads(manifest.read_text(encoding="utf-8"))["members"]}
    assert {p for p in new_ids if new_ids[p] != old_ids[p]} == {"plant/sheet-03.dxf"}
    assert f"D-{number} Plant part {number} revised" in [t for _, t, _ in toc(plant)]
    assert not [p for p in plant.parent.iterdir() if p.name.startswith(".")]  # no temporary left


def test_a_set_whose_drawings_are_gone_is_removed(library, tmp_path):
    lib, out = library["lib"], library["out"]
    for name in ("a.dxf", "b.dxf"):
        (lib / "other" / name).rename(tmp_path / name)
    try:
        built = catalogue([lib], out)
        assert "sets/library-other/library-other.pdf" in built.removed
        assert not (out / "sets" / "library-other").exists()
    finally:
        for name in ("a.dxf", "b.dxf"):
            (tmp_path / name).rename(lib / "other" / name)


def test_sets_by_project_from_the_title_block(tmp_path):
    lib = tmp_path / "library"
    titled_drawing(lib / "north" / "n1.dxf", "N-2", "North pump", project="P-100")
    titled_drawing(lib / "south" / "s1.dxf", "S-1", "South pump", project="P-100")
    titled_drawing(lib / "south" / "s2.dxf", "S-2", "Loose drawing")
    out = tmp_path / "out"
    catalogue([lib], out, deliverables={"group_by": "project", "bom_exports": False})
    assert sorted(p.name for p in (out / "sets").iterdir()) == ["P-100", "library-south"]
    assert [t for _, t, _ in toc(out / "sets" / "P-100" / "P-100.pdf")] == ["N-2 North pump", "S-1 South pump"]
    assert [t for _, t, _ in toc(out / "sets" / "library-south" / "library-south.pdf")] == ["S-2 Loose drawing"]
    # switched off: the sets go, the register stays and no longer links them
    off = catalogue([lib], out, deliverables={"group_by": "project", "bom_exports": False, "pdf_sets": False})
    assert sorted(off.removed) == [
        "sets/P-100/P-100.pdf",
        "sets/P-100/manifest.json",
        "sets/library-south/library-south.pdf",
        "sets/library-south/manifest.json",
    ]
    assert not (out / "sets").exists() or not any((out / "sets").iterdir())
    assert "sets/" not in (out / "register.csv").read_text(encoding="utf-8")


def test_group_by_must_be_folder_or_a_title_block_field(tmp_path):
    cfg = tmp_path / "cadpipe.toml"
    cfg.write_text('[deliverables]\ngroup_by = "colour"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="deliverables.group_by must be 'folder' or a title-block field"):
        load_config(cfg)
    cfg.write_text('[deliverables]\ngroup_by = "contract"\n[title_block]\ntags = { contract = ["CONTRACT"] }\n')
    assert load_config(cfg).raw["deliverables"]["group_by"] == "contract"


def page_pdf(path: Path, size: tuple[float, float], text: str) -> Path:
    doc = pymupdf.open()
    doc.new_page(width=size[0], height=size[1]).insert_text((50, 50), text)
    doc.save(path)
    return path


def test_merge_keeps_each_page_size_and_survives_a_damaged_sheet(tmp_path):
    a4 = page_pdf(tmp_path / "a4.pdf", (595, 842), "portrait A4")
    a1 = page_pdf(tmp_path / "a1.pdf", (2384, 1684), "landscape A1")
    damaged = tmp_path / "damaged.pdf"
    damaged.write_bytes(b"%PDF-1.7\n1 0 obj <<")
    entries = [
        SetEntry("D-1 Small", (SetSheet(a4, "Layout1"),)),
        SetEntry("D-2 Big", (SetSheet(a1, "Layout1"), SetSheet(damaged, "Layout2"))),
        SetEntry("D-3 Lost", (SetSheet(tmp_path / "missing.pdf", "Layout1"),)),
    ]
    result = merge_pdf_set(entries, tmp_path / "set.pdf", title="mixed")
    assert result.pages == 2 and len(result.problems) == 2
    assert "D-2 Big: sheet 'Layout2'" in result.problems[0] and "D-3 Lost" in result.problems[1]
    with pymupdf.open(tmp_path / "set.pdf") as doc:
        assert [(round(p.rect.width), round(p.rect.height)) for p in doc] == [(595, 842), (2384, 1684)]
        assert doc.get_toc() == [[1, "D-1 Small", 1], [1, "D-2 Big", 2]]
        assert "landscape A1" in doc[1].get_text()


def test_natural_order():
    names = ["D-10", "D-2", "D-1A", "D-1", "E-1", "d-3"]
    assert sorted(names, key=natural_key) == ["D-1", "D-1A", "D-2", "d-3", "D-10", "E-1"]


def test_set_names_are_file_name_safe_and_unique():
    def drawing(path: str, project: str | None = None) -> Drawing:
        return Drawing("/srv/library", path, "ok", "dxf", "sha", "wid", {"project": project})

    sets = group_sets([drawing("a.dxf"), drawing("[/b.dxf"), drawing("]/c.dxf"), drawing("P 1/d.dxf")])
    names = {s.label: s.slug for s in sets}
    assert names["library"] == "library" and names["library/P 1"] == "library-P-1"
    assert names["library/["] != names["library/]"] and names["library/["].startswith("library-")
    by_project = group_sets([drawing("x/a.dxf", "../../etc"), drawing("y/b.dxf", "../../etc")], "project")
    assert [(s.slug, len(s.members)) for s in by_project] == [("etc", 2)]
