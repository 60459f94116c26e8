"""The deliverables as the batch flow writes them (real Prefect, its test harness): after the
catalog and the docs, over generated drawings and over the whole corpus."""

from __future__ import annotations

import datetime as dt
import logging
import os

import openpyxl
import pymupdf

from engine.config import load_config
from engine.executor import WorkerPool
from engine.work import BATCH_WORK
from flows import batch_steps
from tests.conftest import catalog_table
from tests.deliverable_library import broken_links, catalogue, titled_drawing


def test_the_batch_flow_writes_the_deliverables_and_a_rerun_keeps_them(tmp_path, prefect_harness):
    from flows.batch import batch

    lib = tmp_path / "library"
    for n in (3, 1, 2):
        titled_drawing(lib / f"d{n}.dxf", f"A-{n}", f"Part {n}")
    out = tmp_path / "out"
    summary = batch(sources=[str(lib)], out=str(out), workers=1)
    built = summary["deliverables"]
    assert {"register.csv", "register.xlsx", "docs/register.html", "sets/library/library.pdf"} <= set(built["written"])
    assert built["problems"] == []
    with pymupdf.open(out / "sets" / "library" / "library.pdf") as doc:
        assert [t for _, t, _ in doc.get_toc()] == ["A-1 Part 1", "A-2 Part 2", "A-3 Part 3"]
    inode = os.stat(out / "register.xlsx").st_ino
    again = batch(sources=[str(lib)], out=str(out), workers=1)
    assert again["deliverables"]["written"] == [] and os.stat(out / "register.xlsx").st_ino == inode


def test_deliverables_a_worker_died_building_are_built_in_the_run_process_instead(tmp_path):
    lib = tmp_path / "library"
    for n in (1, 2):
        titled_drawing(lib / f"d{n}.dxf", f"A-{n}", f"Part {n}")
    out = tmp_path / "out"
    assert catalogue([lib], out, build_deliverables=False) is None
    cfg = load_config(None, sources=[str(lib)], out=str(out))
    with WorkerPool(BATCH_WORK, workers=1) as pool:
        died = pool.call_beside(os._exit, 9)  # as a worker killed for its memory cap leaves its future
        built = batch_steps.publish_deliverables(cfg, logging.getLogger("test"), died)
    assert {"register.xlsx", "sets/library/library.pdf"} <= set(built["written"]) and built["problems"] == []
    assert (out / "register.xlsx").is_file()


def test_on_the_corpus_the_register_has_a_typed_row_per_drawing(corpus_batch):
    out = corpus_batch["out"]
    files = catalog_table(out, "files")
    drawings = files[~files["format"].isin(["step", "iges", "stl"])]
    sheet = openpyxl.load_workbook(out / "register.xlsx")["Register"]
    header = [c.value for c in sheet[1]]
    rows = [dict(zip(header, row)) for row in sheet.iter_rows(min_row=2)]
    assert len(rows) == len(drawings)
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref.startswith("A1:")
    assert {r["Path"].value for r in rows} == set(drawings["path"])
    ok = [r for r in rows if r["Status"].value == "ok"]
    assert ok and all(isinstance(r["Sheets"].value, int) and r["Sheets"].value >= 1 for r in ok)
    assert all(isinstance(r["Processed (UTC)"].value, dt.datetime) for r in rows if r["Processed (UTC)"].value)
    assert all(r["Date"].is_date or r["Date"].data_type == "s" for r in rows if r["Date"].value is not None)
    for r in ok:
        assert (out / r["PDF"].hyperlink.target).is_file()
    assert broken_links(out / "docs" / "register.html", out) == []
    # every sheet of every ok drawing is in the library's set, once
    sets = sorted((out / "sets").glob("*/*.pdf"))
    pages = 0
    for pdf in sets:
        with pymupdf.open(pdf) as doc:
            pages += doc.page_count
    assert pages == sum(r["Sheets"].value for r in ok)
