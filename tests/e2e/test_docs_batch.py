"""Datasheets, batch report and BOM roll-ups from a real batch under Prefect's test harness, over
generated drawings, samples and the corpus's attributed ones (the pure functions on known rows:
tests/unit/test_docs.py)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pytest

from tests.conftest import REPO, catalog_table, delta_duckdb
from tests.docs_drawings import SCRIPT, broken_drawing, frame_drawing, pump_drawing
from tests.unit.test_docs import assert_links_resolve, page

# A real batch.


def run_batch(src: Path, out: Path):
    from flows.batch import batch

    state = batch(sources=[str(src)], out=str(out), workers=2, return_state=True)
    return state, state.result(raise_on_failure=False)


STEP_ASSEMBLY = "files/occt-import-js/test__testfiles__cax-if__dm1-pe-214.stp"  # an assembly of 8 products


def attributed_corpus(manifest) -> list[dict]:
    return [
        r
        for r in manifest
        if r["format"] in ("dxf", "dxf-binary")
        and r["ezdxf_load"] in ("ok", "recover")
        and int(r["inserts_with_attribs"] or 0) > 0
    ]


@pytest.fixture(scope="module")
def library(tmp_path_factory, corpus_dir, manifest, prefect_harness):
    """Generated drawings (one at two paths), a broken one, two samples, the corpus's attributed
    drawings; processed once."""
    lib = tmp_path_factory.mktemp("lib")
    pump_drawing(lib / "pump.dxf")
    (lib / "copy").mkdir()
    shutil.copy2(lib / "pump.dxf", lib / "copy" / "pump.dxf")
    frame_drawing(lib / "frame.dxf")
    broken_drawing(lib / "broken.dxf")
    for name in ("gear.dxf", "viewports_vp4.dxf"):
        shutil.copy2(REPO / "data" / "samples" / name, lib / name)
    shutil.copy2(corpus_dir / STEP_ASSEMBLY, lib / "assembly.stp")
    corpus = attributed_corpus(manifest)
    (lib / "corpus").mkdir()
    for r in corpus:
        shutil.copy2(corpus_dir / r["path"], lib / "corpus" / Path(r["path"]).name)
    out = tmp_path_factory.mktemp("out")
    state, summary = run_batch(lib, out)
    files = catalog_table(out, "files")
    return {"lib": lib, "out": out, "state": state, "summary": summary, "files": files, "corpus": corpus}


def sha_of(library, path: str) -> str:
    files = library["files"]
    return files.loc[files["path"] == path, "sha256"].item()


def test_batch_writes_report_and_a_datasheet_per_content(library):
    out, summary, files = library["out"], library["summary"], library["files"]
    docs = summary["documents"]
    assert docs[:3] == ["docs/index.html", f"docs/runs/{summary['run_id']}.html", "docs/gallery.html"]
    ok = set(files.loc[files["status"] == "ok", "sha256"])
    assert sorted(docs[3:]) == sorted(f"docs/files/{sha}.html" for sha in ok), "one page per content, copies share it"
    assert {p.name for p in (out / "docs" / "files").iterdir()} == {f"{sha}.html" for sha in ok}
    for doc in docs:
        assert_links_resolve(out / doc, out)


def test_report_names_every_drawing_and_each_failure_with_its_reason(library):
    out, files = library["out"], library["files"]
    for name in ("index.html", f"runs/{library['summary']['run_id']}.html"):
        report = page(out / "docs" / name)
        text = "".join(report.text)
        for path in files["path"]:
            assert path in text
        [failed] = files[files["status"] == "failed"].to_dict("records")
        assert failed["path"] == "broken.dxf"
        assert failed["error_message"] in text
        error_report = [link for link in report.links if link.endswith(".error.json")]
        assert len(error_report) == 1
        target = (out / "docs" / name).parent / unquote(error_report[0])
        assert json.loads(target.read_text())["path"] == "broken.dxf"
        sheets = [link for link in report.links if "/files/" in link]
        assert len(set(sheets)) == (files["status"] == "ok").sum() - 1  # the copy of pump.dxf shares one
        assert "Slowest files" in text and "Hex bolt M8" in text


def test_datasheet_of_the_generated_drawing(library):
    out = library["out"]
    path = out / "docs" / "files" / f"{sha_of(library, 'pump.dxf')}.html"
    sheet = page(path)
    text = "".join(sheet.text)
    assert "script" not in sheet.tags
    for value in (SCRIPT, "<b>eve</b>", "Pump housing", "D-42", "B-100", "N-200", "W-300", "Hex bolt M8"):
        assert value in text, value
    html = path.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script" not in html
    assert f"{library['lib'].as_posix()}/copy/pump.dxf" in text and f"{library['lib'].as_posix()}/pump.dxf" in text
    [image] = [link for link in sheet.links if link.endswith("model.png")][:1]
    assert image.startswith("../../outputs/")
    row = library["files"].query("path == 'pump.dxf'").iloc[0]
    for output in row["outputs"]:
        assert f"../../{output}" in sheet.links, output
    assert f"../../outputs/{row['work_id']}/result.json" in sheet.links


def test_datasheet_of_a_3d_model(library):
    files = library["files"].set_index("path")
    row = files.loc["assembly.stp"]
    assert row["status"] == "ok", row["error_message"]
    sheet = page(library["out"] / "docs" / "files" / f"{row['sha256']}.html")
    bom = catalog_table(library["out"], "bom")
    assert sheet.rows["bom-table"] == (bom["sha256"] == row["sha256"]).sum() == row["bom_row_count"] > 0
    assert [link for link in sheet.links if link.endswith("views.png")]
    assert [link for link in sheet.links if link.endswith("model.stl")]
    assert "None" not in "".join(sheet.text)


def test_rollup_tables_in_the_catalog(library):
    catalog = library["out"] / "catalog"
    lib = library["lib"].as_posix()
    used = catalog_table(library["out"], "where_used").set_index("part_number")
    bolt = used.loc["B-100"]
    assert (bolt["drawings"], bolt["contents"], bolt["total_qty"]) == (3, 2, 16.0)
    assert list(bolt["paths"]) == [f"{lib}/copy/pump.dxf", f"{lib}/frame.dxf", f"{lib}/pump.dxf"]
    assert used.loc["W-300", "qty_unknown"] == 1 and pd.isna(used.loc["W-300", "total_qty"])
    assert used.loc["N-200", "description"] == SCRIPT
    rollup = catalog_table(library["out"], "bom_rollup")
    pump = rollup[rollup["sha256"] == sha_of(library, "pump.dxf")].set_index("part_number")
    assert pump.loc["B-100", "total_qty"] == 6.0 and pump.loc["B-100", "rows"] == 2
    # the documented DuckDB queries run as written
    with delta_duckdb() as db:
        top = db.sql(
            f"SELECT part_number, drawings, total_qty FROM delta_scan('{catalog}/where_used') "
            "ORDER BY drawings DESC, part_number"
        ).fetchall()
        per_path = db.sql(
            f"SELECT f.path, r.part_number, r.total_qty FROM delta_scan('{catalog}/bom_rollup') r "
            f"JOIN delta_scan('{catalog}/files') f USING (sha256) WHERE f.status = 'ok' AND r.part_number = 'B-100' ORDER BY f.path"
        ).fetchall()
    assert top[0] == ("B-100", 3, 16.0)
    assert per_path == [("copy/pump.dxf", "B-100", 6.0), ("frame.dxf", "B-100", 10.0), ("pump.dxf", "B-100", 6.0)]


def test_corpus_drawings_with_attributed_inserts_give_bom_rows(library):
    """Every drawing the manifest lists with attributed inserts gets BOM rows in the catalog, and
    its datasheet shows exactly those rows."""
    files, out = library["files"].set_index("path"), library["out"]
    bom = catalog_table(out, "bom")
    assert len(library["corpus"]) >= 10
    for r in library["corpus"]:
        row = files.loc[f"corpus/{Path(r['path']).name}"]
        assert row["status"] == "ok", row["error_message"]
        rows = int((bom["sha256"] == row["sha256"]).sum())
        assert rows > 0 and rows == row["bom_row_count"], r["path"]
        sheet = page(out / "docs" / "files" / f"{row['sha256']}.html")
        assert sheet.rows.get("bom-table") == rows, r["path"]


def test_rerun_keeps_datasheets_and_follows_the_library(tmp_path, prefect_harness):
    lib, out = tmp_path / "lib", tmp_path / "out"
    lib.mkdir()
    pump_drawing(lib / "pump.dxf")
    frame_drawing(lib / "frame.dxf")
    _, first = run_batch(lib, out)
    sheets = {p.name: p.stat() for p in (out / "docs" / "files").iterdir()}
    assert len(sheets) == 2

    _, second = run_batch(lib, out)  # nothing changed: no datasheet rewritten
    assert second["documents"] == ["docs/index.html", f"docs/runs/{second['run_id']}.html", "docs/gallery.html"]
    for name, before in sheets.items():
        after = (out / "docs" / "files" / name).stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    index = page(out / "docs" / "index.html")
    assert second["run_id"] in "".join(index.text)
    run_pages = {p.name for p in (out / "docs" / "runs").iterdir()}
    assert run_pages == {f"{first['run_id']}.html", f"{second['run_id']}.html"}
    assert f"../docs/runs/{first['run_id']}.html" in index.links

    (lib / "frame.dxf").unlink()  # the library changes: roll-ups and datasheets follow
    os.makedirs(lib / "moved")
    shutil.move(lib / "pump.dxf", lib / "moved" / "pump.dxf")
    _, third = run_batch(lib, out)
    files = catalog_table(out, "files")
    assert list(files["path"]) == ["moved/pump.dxf"]
    [pump_sha] = files["sha256"]
    assert {p.name for p in (out / "docs" / "files").iterdir()} == {f"{pump_sha}.html"}
    assert third["documents"][3:] == [f"docs/files/{pump_sha}.html"]  # its path changed: rewritten
    used = catalog_table(out, "where_used").set_index("part_number")
    assert "F-900" not in used.index
    assert (used.loc["B-100", "drawings"], used.loc["B-100", "total_qty"]) == (1, 6.0)
    assert list(used.loc["B-100", "paths"]) == [f"{lib.as_posix()}/moved/pump.dxf"]
    assert f"{lib.as_posix()}/moved/pump.dxf" in "".join(page(out / "docs" / "files" / f"{pump_sha}.html").text)
