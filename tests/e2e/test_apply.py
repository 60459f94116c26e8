"""`cadpipe apply` end to end under a real (test harness) Prefect server: dry run, revisions,
the edits audit table, re-cataloguing, a second apply, in place with backups, the command line."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import ezdxf
import pytest

from engine.edits import EDIT_COLUMNS
from flows.apply import apply_recipe, run
from flows.cli import build_parser
from tests.conftest import catalog_table
from tests.edit_drawings import attribs_of, make_sheet, sha256

pytestmark = pytest.mark.usefixtures("prefect_harness")

RECIPE = """
name: rev-b
select:
  paths: ["project-x/*"]
  title_block: {drawing_number: "PX-*"}
operations:
  - set_attributes: {fields: {revision: B}}
  - rename_layer: {from: DIM, to: DIMENSIONS}
  - convert_version: {to: R2018}
"""
SELECTED = ["project-x/old-r12.dxf", "project-x/sheet-1.dxf", "project-x/sub/sheet-2.dxf"]


def make_library(root: Path) -> Path:
    make_sheet(root / "project-x" / "sheet-1.dxf", number="PX-001")
    make_sheet(root / "project-x" / "sub" / "sheet-2.dxf", number="PX-002", binary=True)
    make_sheet(root / "project-x" / "old-r12.dxf", number="PX-003", version="R12")
    make_sheet(root / "project-x" / "other-project.dxf", number="QQ-1")  # title block not selected
    make_sheet(root / "elsewhere" / "sheet-9.dxf", number="PX-009")  # path not selected
    broken = make_sheet(root / "project-x" / "broken.dxf", number="PX-666")
    broken.write_bytes(broken.read_bytes()[:5000])  # truncated mid-file
    (root / "project-x" / "readme.txt").write_text("not a drawing")
    return root


def every_file(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256(p) for p in root.rglob("*") if p.is_file()} if root.exists() else {}


def apply(recipe: Path, library: Path, out: Path, **kw):
    state = apply_recipe(recipe=str(recipe), library=str(library), out=str(out), workers=2, return_state=True, **kw)
    return state, state.result(raise_on_failure=False)


def by_path(summary: dict) -> dict[str, dict]:
    return {f["path"]: f for f in summary["files"]}


@pytest.fixture(scope="module")
def revision_runs(tmp_path_factory):
    """Dry run, apply, apply again: one library, one output root."""
    base = tmp_path_factory.mktemp("apply")
    library = make_library(base / "library")
    recipe = base / "rev-b.yaml"
    recipe.write_text(RECIPE, encoding="utf-8")
    out = base / "out"
    library_files = every_file(library)
    runs = {"base": base, "library": library, "out": out, "recipe": recipe, "library_files": library_files}
    runs["dry"] = apply(recipe, library, out, dry_run=True)
    runs["after_dry"] = (every_file(library), out.exists())
    runs["first"] = apply(recipe, library, out)
    runs["revisions_after_first"] = every_file(out / "revisions")
    runs["second"] = apply(recipe, library, out)
    return runs


def test_dry_run_reports_each_change_and_writes_nothing(revision_runs):
    state, summary = revision_runs["dry"]
    assert revision_runs["after_dry"] == (revision_runs["library_files"], False), "no file changed, no output root"
    assert summary["mode"] == "dry-run" and summary["edit_rows"] == 0
    assert (summary["files_seen"], summary["selected"], summary["changed"], summary["failed"]) == (6, 4, 3, 1)
    files = by_path(summary)
    assert sorted(p for p, f in files.items() if f["status"] == "changed") == SELECTED
    sheet = files["project-x/sheet-1.dxf"]
    assert sheet["output"] is None
    assert [(c["operation"], c["before"], c["after"]) for c in sheet["changes"]] == [
        ("set_attributes", "A", "B"),
        ("set_attributes", "A", "B"),
        ("rename_layer", "DIM", "DIMENSIONS"),
    ]
    r12 = files["project-x/old-r12.dxf"]["changes"]
    assert ("convert_version", "AC1009 (R12)", "AC1032 (R2018)") in [
        (c["operation"], c["before"], c["after"]) for c in r12
    ]
    assert files["project-x/other-project.dxf"]["status"] == "skipped"
    assert files["elsewhere/sheet-9.dxf"]["note"] == "path or format not selected"


def test_a_corrupt_drawing_fails_alone_with_its_reason(revision_runs):
    for key in ("dry", "first", "second"):
        state, summary = revision_runs[key]
        assert state.is_failed() and "1 failed" in state.message
        assert len(summary["failures"]) == 1
        assert summary["failures"][0].startswith("project-x/broken.dxf: load: truncated DXF")


def test_apply_writes_changed_drawings_into_a_revision_folder(revision_runs):
    state, summary = revision_runs["first"]
    out, library = revision_runs["out"], revision_runs["library"]
    assert every_file(library) == revision_runs["library_files"], "the library is never written by default"
    revision = Path(summary["revision_dir"])
    assert revision.parent == out / "revisions" and revision.name == f"rev-b-{summary['recipe_hash'][:8]}"
    assert sorted(revision_runs["revisions_after_first"]) == [f"{revision.name}/{p}" for p in SELECTED]
    for rel in SELECTED:
        doc = ezdxf.readfile(revision / rel)
        assert not doc.audit().has_errors
        assert doc.dxfversion == "AC1032" and doc.layers.has_entry("DIMENSIONS") and not doc.layers.has_entry("DIM")
        assert {a["REV"] for a in attribs_of(doc)} == {"B"}
    assert (revision / "project-x/sub/sheet-2.dxf").read_bytes().startswith(b"AutoCAD Binary DXF")
    assert summary["changed"] == 3 and summary["changes"] == summary["edit_rows"]


def test_every_change_is_audited_in_the_edits_table(revision_runs):
    _, summary = revision_runs["first"]
    edits = catalog_table(revision_runs["out"], "edits")
    assert list(edits.columns) == EDIT_COLUMNS
    assert len(edits) == summary["changes"] and set(edits["run_id"]) == {summary["run_id"]}
    assert set(edits["recipe_hash"]) == {summary["recipe_hash"]} and set(edits["mode"]) == {"revision"}
    revision = Path(summary["revision_dir"])
    for rel, rows in edits.groupby("path"):
        assert set(rows["sha256_before"]) == {revision_runs["library_files"][rel]}
        assert set(rows["sha256_after"]) == {sha256(revision / rel)}
        assert set(rows["output"]) == {str(revision / rel)}
    sheet = edits[edits["path"] == "project-x/sheet-1.dxf"]
    assert sorted(zip(sheet["operation"], sheet["before"], sheet["after"])) == [
        ("rename_layer", "DIM", "DIMENSIONS"),
        ("set_attributes", "A", "B"),
        ("set_attributes", "A", "B"),
    ]


def test_edited_drawings_are_recatalogued(revision_runs):
    _, summary = revision_runs["first"]
    assert summary["catalog"]["processed"] == 3 and summary["catalog"]["failed"] == 0
    files = catalog_table(revision_runs["out"], "files")
    mine = files[files["source_root"] == summary["revision_dir"]]
    assert sorted(mine["path"]) == SELECTED
    assert set(mine["status"]) == {"ok"} and set(mine["revision"]) == {"B"} and set(mine["dxf_version"]) == {"AC1032"}


def test_a_second_apply_reports_zero_changes_and_rewrites_nothing(revision_runs):
    state, summary = revision_runs["second"]
    assert (summary["changed"], summary["changes"], summary["unchanged"]) == (0, 0, 3)
    assert {by_path(summary)[p]["note"].split(" (")[0] for p in SELECTED} == {"already applied"}
    assert every_file(revision_runs["out"] / "revisions") == revision_runs["revisions_after_first"]
    edits = catalog_table(revision_runs["out"], "edits")
    assert set(edits["run_id"]) == {revision_runs["first"][1]["run_id"]}, "no rows for a run that changed nothing"
    assert summary["catalog"] is None


def test_in_place_with_backups_then_selection_from_the_catalog(tmp_path):
    library = tmp_path / "library"
    make_sheet(library / "a.dxf", number="PX-1")
    make_sheet(library / "b.dxf", number="PX-2", revision="B")  # already at B: selected, unchanged
    originals = every_file(library)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "select:\n  title_block: {revision: A}\noperations:\n  - set_attributes: {fields: {revision: B}}\n"
    )
    out, backup = tmp_path / "out", tmp_path / "backup"

    state, summary = apply(recipe, library, out, in_place=True, backup=str(backup))
    assert state.is_completed() and (summary["changed"], summary["skipped"]) == (1, 1)
    assert summary["mode"] == "in-place" and summary["revision_dir"] is None
    backups = every_file(backup)
    assert backups == {f"{summary['run_id']}/a.dxf": originals["a.dxf"]}, "the original, before it was replaced"
    assert {a["REV"] for a in attribs_of(ezdxf.readfile(library / "a.dxf"))} == {"B"}
    assert every_file(library)["b.dxf"] == originals["b.dxf"]
    files = catalog_table(out, "files")
    assert sorted(files.loc[files["source_root"] == str(library), "revision"]) == ["B", "B"], "library re-catalogued"

    state, again = apply(recipe, library, out, in_place=True, backup=str(backup))
    assert state.is_completed() and (again["changed"], again["changes"]) == (0, 0)
    # both drawings are catalogued at revision B now: the catalog deselects them without opening them
    assert {f["note"] for f in again["files"]} == {"selection conditions not met (catalog)"}
    assert every_file(backup) == backups


def cli(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["apply", *argv])


def test_command_line_dry_run_prints_before_and_after_and_exits_1_on_a_failure(tmp_path, capsys):
    library = tmp_path / "library"
    make_sheet(library / "project-x" / "s.dxf")
    (library / "project-x" / "empty.dxf").write_bytes(b"")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE, encoding="utf-8")
    code = run(
        cli(str(recipe), "--library", str(library), "--out", str(tmp_path / "out"), "--dry-run", "--workers", "1")
    )
    printed = capsys.readouterr().out
    assert code == 1 and not (tmp_path / "out").exists()
    assert "dry run: nothing was written" in printed
    assert "set_attributes: Layout1: TB-A3" in printed and '"A" → "B"' in printed
    assert 'rename_layer: layer DIM (1 entities): "DIM" → "DIMENSIONS"' in printed
    assert "failed project-x/empty.dxf: load: not a DXF file (file is empty)" in printed


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--in-place"], "--in-place needs --backup DIR"),
        (["--backup", "b"], "--backup is only used with --in-place"),
    ],
)
def test_command_line_refuses_unsafe_arguments_before_starting(tmp_path, capsys, argv, message):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE, encoding="utf-8")
    (tmp_path / "library").mkdir()
    assert run(cli(str(recipe), "--library", str(tmp_path / "library"), *argv)) == 2
    assert message in capsys.readouterr().err


def test_command_line_bad_recipe_names_line_and_field(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("operations:\n  - set_layer: {layer: DIM, color: 0}\n", encoding="utf-8")
    assert run(cli(str(recipe), "--library", str(tmp_path))) == 2
    assert "r.yaml:2: operations[0].set_layer.color: must be from 1 to 255, not 0" in capsys.readouterr().err


def test_backups_may_not_live_in_the_library(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE, encoding="utf-8")
    library = tmp_path / "library"
    library.mkdir()
    shutil.copy(recipe, library / "unused.yaml")
    assert run(cli(str(recipe), "--library", str(library), "--in-place", "--backup", str(library / "bak"))) == 2
    assert "lies inside the library" in capsys.readouterr().err
