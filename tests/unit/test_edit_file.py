"""Editing one drawing file: dry run, revision and in-place writes, idempotency, what a written
drawing must pass, bad inputs (corpus drawings under a recipe that matches nothing:
tests/e2e/test_edit_file_corpus.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import ezdxf
import pytest

from documents.errors import InputError, TransientError
from editors.edit_file import EditJob, edit_file, edit_job
from editors.recipe import Recipe, load_recipe
from editors.selection import TitleSettings
from extractors.block_attributes import DEFAULT_TAG_MAP
from extractors.title_block import DEFAULT_TITLE_BLOCK_PATTERNS, DEFAULT_TITLE_TAG_MAP
from tests.edit_drawings import attribs_of, make_library_block, make_sheet, sha256

SETTINGS = TitleSettings(tuple(DEFAULT_TITLE_BLOCK_PATTERNS), DEFAULT_TITLE_TAG_MAP, DEFAULT_TAG_MAP)

REV_B = """
name: rev-b
select:
  title_block: {drawing_number: "PX-*"}
operations:
  - set_attributes: {fields: {revision: B}}
  - replace_text: {pattern: 'PROJECT X', replacement: PROJECT Y}
  - rename_layer: {from: DIM, to: DIMENSIONS}
  - redefine_block: {block: TB-A3, source: lib/tb.dxf}
  - purge:
"""


def recipe(tmp_path: Path, text: str = REV_B) -> Recipe:
    make_library_block(tmp_path / "lib" / "tb.dxf")
    path = tmp_path / "recipe.yaml"
    path.write_text(text, encoding="utf-8")
    return load_recipe(path)


def reopened_clean(path: Path) -> ezdxf.document.Drawing:
    doc = ezdxf.readfile(path)
    auditor = doc.audit()
    assert not auditor.has_errors, [e.message for e in auditor.errors]
    return doc


def every_file(root: Path) -> dict[Path, str]:
    return {p: sha256(p) for p in root.rglob("*") if p.is_file()}


def test_dry_run_reports_every_change_and_writes_nothing(tmp_path):
    rec = recipe(tmp_path)
    src = make_sheet(tmp_path / "lib-dir" / "s.dxf")
    before = every_file(tmp_path)
    edit = edit_file(src, rec, SETTINGS, dest=tmp_path / "rev" / "s.dxf", dry_run=True)
    assert edit.status == "changed" and edit.output is None and edit.sha256_after is None
    assert [c.operation for c in edit.changes] == ["set_attributes"] * 2 + ["replace_text"] * 4 + [
        "rename_layer",
        "redefine_block",
        "purge",
        "purge",
        "purge",
    ]
    assert every_file(tmp_path) == before


def test_revision_written_atomically_reopens_and_passes_audit(tmp_path):
    src = make_sheet(tmp_path / "s.dxf")
    original = sha256(src)
    dest = tmp_path / "rev" / "sub" / "s.dxf"
    edit = edit_file(src, recipe(tmp_path), SETTINGS, dest=dest)
    assert edit.status == "changed" and edit.output == str(dest)
    assert sha256(src) == original, "the library file is never touched"
    assert edit.sha256_before == original and edit.sha256_after == sha256(dest)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["s.dxf"], "no temporary file left"
    doc = reopened_clean(dest)
    assert [a["REV"] for a in attribs_of(doc)] == ["B", "B"]
    assert doc.layers.has_entry("DIMENSIONS") and not doc.layers.has_entry("DIM")
    assert "UNUSED" not in doc.blocks and doc.blocks.get("TB-A3").get_attdef("REV") is not None


def test_applying_again_to_the_result_changes_nothing_and_writes_nothing(tmp_path):
    rec = recipe(tmp_path)
    first = tmp_path / "rev1" / "s.dxf"
    edit_file(make_sheet(tmp_path / "s.dxf"), rec, SETTINGS, dest=first)
    written = sha256(first)
    again = edit_file(first, rec, SETTINGS, dest=tmp_path / "rev2" / "s.dxf")
    assert (again.status, again.changes) == ("unchanged", [])
    assert not (tmp_path / "rev2").exists() and sha256(first) == written


def test_a_recipe_that_matches_nothing_leaves_the_drawing_unwritten(tmp_path):
    src = make_sheet(tmp_path / "s.dxf")
    rec = recipe(tmp_path, "operations:\n  - rename_layer: {from: NOPE, to: OTHER}\n")
    edit = edit_file(src, rec, SETTINGS, dest=tmp_path / "rev" / "s.dxf")
    assert edit.status == "unchanged" and not (tmp_path / "rev").exists()


def test_drawings_the_conditions_do_not_select_are_skipped(tmp_path):
    src = make_sheet(tmp_path / "s.dxf", number="QQ-1")
    edit = edit_file(src, recipe(tmp_path), SETTINGS, dest=tmp_path / "rev" / "s.dxf")
    assert edit.status == "skipped" and not (tmp_path / "rev").exists()


def test_in_place_needs_a_backup_and_keeps_the_original_there(tmp_path):
    src = make_sheet(tmp_path / "lib-dir" / "s.dxf")
    os.chmod(src, 0o640)
    original = src.read_bytes()
    rec = recipe(tmp_path)
    with pytest.raises(ValueError, match="needs a backup path"):
        edit_file(src, rec, SETTINGS, dest=src)
    backup = tmp_path / "backup" / "run" / "s.dxf"
    edit = edit_file(src, rec, SETTINGS, dest=src, backup=backup)
    assert edit.status == "changed" and edit.backup == str(backup) and edit.output == str(src)
    assert backup.read_bytes() == original
    assert stat.S_IMODE(src.stat().st_mode) == 0o640, "the edited file keeps its permissions"
    assert [a["REV"] for a in attribs_of(reopened_clean(src))] == ["B", "B"]
    again = edit_file(src, rec, SETTINGS, dest=src, backup=tmp_path / "backup" / "run2" / "s.dxf")
    assert again.status == "unchanged" and not (tmp_path / "backup" / "run2").exists()


def test_binary_dxf_stays_binary(tmp_path):
    src = make_sheet(tmp_path / "b.dxf", binary=True)
    dest = tmp_path / "rev" / "b.dxf"
    edit_file(src, recipe(tmp_path), SETTINGS, dest=dest)
    assert dest.read_bytes().startswith(b"AutoCAD Binary DXF")
    assert [a["REV"] for a in attribs_of(reopened_clean(dest))] == ["B", "B"]


def test_r12_upgrade_is_written_as_r2018(tmp_path):
    src = make_sheet(tmp_path / "r12.dxf", version="R12")
    dest = tmp_path / "rev" / "r12.dxf"
    rec = recipe(tmp_path, "select: {dxf_version: R12}\noperations:\n  - convert_version: {to: R2018}\n")
    edit = edit_file(src, rec, SETTINGS, dest=dest)
    assert [(c.operation, c.before, c.after) for c in edit.changes] == [
        ("convert_version", "AC1009 (R12)", "AC1032 (R2018)")
    ]
    doc = reopened_clean(dest)
    assert doc.dxfversion == "AC1032" and attribs_of(doc)[0]["REV"] == "A"
    assert edit_file(dest, rec, SETTINGS, dest=tmp_path / "rev2" / "r12.dxf").status == "skipped"


def test_writing_an_r14_drawing_says_it_becomes_r2000(tmp_path):
    src = make_sheet(tmp_path / "s.dxf", version="R2000")
    src.write_text(src.read_text().replace("AC1015", "AC1014", 1))
    edit = edit_file(
        src,
        recipe(tmp_path, "operations:\n  - rename_layer: {from: DIM, to: D2}\n"),
        SETTINGS,
        dest=tmp_path / "rev" / "s.dxf",
    )
    assert edit.changes[-1].operation == "save"
    assert (edit.changes[-1].before, edit.changes[-1].after) == ("AC1014 (R14)", "AC1015 (R2000)")


def test_an_outdated_revision_is_removed_when_nothing_is_left_to_change(tmp_path):
    src = make_sheet(tmp_path / "s.dxf", revision="B")  # already at revision B
    dest = tmp_path / "rev" / "s.dxf"
    make_sheet(dest)  # a revision made from an earlier version of the drawing
    rec = recipe(tmp_path, "operations:\n  - set_attributes: {fields: {revision: B}}\n")
    dry = edit_file(src, rec, SETTINGS, dest=dest, dry_run=True)
    assert dry.note == "outdated revision would be removed" and dest.exists()
    edit = edit_file(src, rec, SETTINGS, dest=dest)
    assert (edit.status, edit.note) == ("unchanged", "outdated revision removed") and not dest.exists()


def test_a_truncated_drawing_fails_with_its_reason(tmp_path):
    src = make_sheet(tmp_path / "s.dxf")
    data = src.read_bytes()
    src.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated DXF"):
        edit_file(src, recipe(tmp_path), SETTINGS, dest=tmp_path / "rev" / "s.dxf")
    assert not (tmp_path / "rev").exists()


def test_a_vanished_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        edit_file(tmp_path / "gone.dxf", recipe(tmp_path), SETTINGS, dest=tmp_path / "rev" / "gone.dxf")


def test_an_unwritable_destination_is_transient(tmp_path):
    src = make_sheet(tmp_path / "s.dxf")
    (tmp_path / "rev").write_text("a file where the revision folder should be")
    with pytest.raises(TransientError, match="s.dxf: cannot write"):
        edit_file(src, recipe(tmp_path), SETTINGS, dest=tmp_path / "rev" / "s.dxf")


def job(tmp_path: Path, rec: Recipe, path: str, **extra) -> EditJob:
    values = {
        "path": path,
        "source_root": str(tmp_path / "lib-dir"),
        "format": "dxf",
        "sha256": "0" * 64,
        "work_id": "w1",
        "recipe_path": str(rec.path),
        "recipe_hash": rec.hash,
        "title_fields": tuple(DEFAULT_TITLE_TAG_MAP),
        "title_patterns": tuple(DEFAULT_TITLE_BLOCK_PATTERNS),
        "title_tags": DEFAULT_TITLE_TAG_MAP,
        "part_tags": DEFAULT_TAG_MAP,
        "facts": None,
        "dest": str(tmp_path / "rev" / path),
        "backup": None,
        "dry_run": False,
        **extra,
    }
    return EditJob(**values)


def test_edit_job_records_success_and_failure_like_the_batch(tmp_path):
    rec = recipe(tmp_path)
    make_sheet(tmp_path / "lib-dir" / "good.dxf")
    (tmp_path / "lib-dir" / "bad.dxf").write_text("0\nSECTION\n2\nENTITIES\n0\nLINE\n")
    good = edit_job(job(tmp_path, rec, "good.dxf"))
    assert good.status == "changed" and good.output == str(tmp_path / "rev" / "good.dxf")
    assert good.changes[0] == {
        "operation": "set_attributes",
        "target": good.changes[0]["target"],
        "before": "A",
        "after": "B",
    }
    bad = edit_job(job(tmp_path, rec, "bad.dxf"))
    assert bad.status == "failed" and bad.permanent is True and bad.error_class == "InputError"
    assert bad.error_message.startswith("bad.dxf: load: truncated DXF")
    changed = job(tmp_path, rec, "good.dxf", recipe_hash="0" * 64)
    assert edit_job(changed).error_message == "good.dxf: open: recipe recipe.yaml changed during the run"
