"""A catalog written by the previous cadpipe (one Parquet file per table, tests/legacy_catalog.py)
is migrated by the next run: every table in its declared types, every row as it was, nothing
processed again, and the lookups of the plan read it right.

The old catalog is made the way the old cadpipe made it: a real batch leaves its outputs (each
work's result.json) on disk; the STEP summaries are put back into the old extractor's form (lists
joined with "; "); the old writer publishes every input from them, and writes the roll-ups, an
apply's edit row and a revision's `changes` row as the old code did."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from documents.names import to_text
from engine.catalog import Outcome
from engine.catalog_store import LEGACY_DIR, SCHEMA_VERSION, TABLES, CatalogStore
from engine.config import load_config
from engine.discover import scan
from engine.plan import make_plan
from engine.rollups import _typed, bom_rollup, where_used
from engine.version import pipeline_version
from tests.conftest import REPO, delta_duckdb
from tests.docs_drawings import broken_drawing, frame_drawing, pump_drawing
from tests.legacy_catalog import CHANGE_COLUMNS as OLD_CHANGE_COLUMNS
from tests.legacy_catalog import Catalog as ParquetCatalog
from tests.legacy_catalog import now_iso

STEP_MODELS = {
    "cube.step": "files/cadquery/tests__testdata__red_cube_blue_cylinder.step",
    "assembly.stp": "files/occt-import-js/test__testfiles__cax-if__dm1-pe-214.stp",
}
JOINED = ("authors", "organizations", "product_names")  # the old STEP extractor's "; "-joined lists
EDIT = {
    "run_id": "20261129T210000Z-0ldapp1y",
    "recipe_name": "retitle",
    "recipe_hash": "ab12cd34",
    "mode": "revision",
    "source_root": "/library",
    "path": "pump.dxf",
    "output": "revisions/retitle-ab12cd34/pump.dxf",
    "backup": None,
    "sha256_before": "0" * 64,
    "sha256_after": "1" * 64,
    "operation": "set_attributes",
    "target": "TITLE",
    "before": "PUMP",
    "after": "PUMP HOUSING",
    "edited_at": "2026-11-29T21:00:01.250+00:00",
}
# A row as engine/revision_diff.py wrote it to changes.parquet (through the old Catalog.write).
CHANGE = {
    "run_id": "20261130T220000Z-0ldrun00",
    "source_root": "/library",
    "path": "pump.dxf",
    "sha256_before": "0" * 64,
    "sha256_after": "1" * 64,
    "work_id_before": "a" * 64,
    "work_id_after": "b" * 64,
    "compared": True,
    "note": None,
    "summary": "revision 'B' -> 'C'; drawing changed in Model",
    "title_changes": '{"revision": ["B", "C"]}',
    "bom_added": 0,
    "bom_removed": 0,
    "bom_changed": 1,
    "layers_added": 0,
    "layers_removed": 0,
    "layers_changed": 0,
    "entity_types_changed": 1,
    "layouts_changed": 1,
    "pixels_removed": 12,
    "pixels_added": 30,
    "diff": "changes/aaaaaaaaaaaaaaaa-bbbbbbbbbbbbbbbb/diff.json",
    "overlays": ["changes/aaaaaaaaaaaaaaaa-bbbbbbbbbbbbbbbb/overlay-model.png"],
    "detected_at": "2026-11-30T22:00:05.500+00:00",
}


def _batch(lib: Path, out: Path) -> dict:
    from flows.batch import batch

    state = batch(sources=[str(lib)], out=str(out), workers=2, return_state=True)
    return state.result(raise_on_failure=False)


def _as_the_old_extractor_wrote_it(out: Path) -> None:
    for result in (out / "outputs").glob("*/result.json"):
        record = json.loads(result.read_text(encoding="utf-8"))
        summary = record.get("summary", {})
        for key in JOINED:
            if isinstance(summary.get(key), list):
                summary[key] = "; ".join(summary[key]) or None
        result.write_text(json.dumps(record), encoding="utf-8")


def _publish_the_old_way(lib: Path, out: Path, reference: dict[str, pa.Table]) -> None:
    """Every input of `lib` published by the old writer from the outputs on disk, as the old
    batch did; the failed one with the failure the new run recorded."""
    cfg = load_config(None, sources=[str(lib)], out=str(out))
    found = scan([lib], exclude=list(cfg.inputs.exclude), formats=list(cfg.inputs.formats), skip=[out])
    version = pipeline_version()
    plan = make_plan(
        found.inputs,
        options_for=cfg.options_for,
        options_key=cfg.options_key,
        version=version,
        recorded={},
        completed={p.name for p in (out / "outputs").iterdir() if (p / "result.json").is_file()},
    )
    failed = {r["path"]: r for r in reference["files"].to_pylist() if r["status"] == "failed"}
    outcomes = [Outcome(item.input, item.work_id, "processed", {"attempt": 1, "duration_ms": 9}) for item in plan.reuse]
    for item in plan.todo:
        row = failed[item.input.path]
        result = {
            "stage": row["error_stage"],
            "error_class": row["error_class"],
            "error_message": row["error_message"],
            "permanent": row["error_permanent"],
            "attempt": row["attempts"],
            "duration_ms": row["duration_ms"],
        }
        outcomes.append(Outcome(item.input, item.work_id, "failed", result))
    old = ParquetCatalog(out)
    run = {
        "run_id": "20261130T220000Z-0ldrun00",
        "flow_run_id": None,
        "started_at": now_iso(),
        "sources": [to_text(lib)],
        "pipeline_version": version,
        "config": "0" * 64,
    }
    old.publish(run, outcomes, [to_text(lib.resolve())])
    rollup = bom_rollup(old.read("bom"))  # engine/rollups.py as the old docs step ran it
    old.write("bom_rollup", _typed(rollup))
    old.write("where_used", _typed(where_used(rollup, old.read("files"))))
    old.append("edits", [EDIT], list(EDIT))
    old.write("changes", pd.DataFrame([CHANGE], columns=OLD_CHANGE_COLUMNS))


@pytest.fixture(scope="module")
def migrated(tmp_path_factory, corpus_dir, prefect_harness):
    base = tmp_path_factory.mktemp("migration")
    lib, out = base / "library", base / "out"
    lib.mkdir()
    pump_drawing(lib / "pump.dxf")
    frame_drawing(lib / "frame.dxf")
    broken_drawing(lib / "broken.dxf")
    shutil.copy2(REPO / "data" / "samples" / "gear.dxf", lib / "gear.dxf")
    for name, path in STEP_MODELS.items():
        shutil.copy2(corpus_dir / path, lib / name)
    first = _batch(lib, out)
    store = CatalogStore(out / "catalog")
    reference = {name: store.read(name) for name in TABLES}
    shutil.rmtree(out / "catalog")
    _as_the_old_extractor_wrote_it(out)
    _publish_the_old_way(lib, out, reference)
    legacy = {name: pq.read_table(out / "catalog" / f"{name}.parquet") for name in TABLES}
    second = _batch(lib, out)
    return {"out": out, "first": first, "second": second, "reference": reference, "legacy": legacy}


def _rows(table: pa.Table, drop=("sha_prefix",)) -> list[dict]:
    rows = [{k: v for k, v in r.items() if k not in drop} for r in table.to_pylist()]
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))


def test_the_old_catalog_is_what_the_old_writer_left(migrated):
    legacy = migrated["legacy"]
    files = legacy["files"]
    assert pa.types.is_large_string(files.schema.field("processed_at").type), "times were text"
    models = [r for r in files.to_pylist() if r["format"] == "step"]
    assert models and all(isinstance(r["product_names"], str) for r in models), "lists were joined text"
    assert set(legacy) == set(TABLES)


def test_the_next_run_migrates_and_processes_nothing_again(migrated):
    first, second = migrated["first"], migrated["second"]
    assert second["processed"] == 0 and second["reused"] == 0
    assert second["unchanged"] == first["processed"] and second["failed"] == 1, "the broken drawing stays failed"
    catalog = migrated["out"] / "catalog"
    assert json.loads((catalog / "catalog.json").read_text())["schema_version"] == SCHEMA_VERSION
    assert not list(catalog.glob("*.parquet")), "no Parquet table is left beside the Delta tables"
    assert {p.stem for p in (catalog / LEGACY_DIR).glob("*.parquet")} == set(TABLES), "the old files are kept"


def test_every_table_is_migrated_in_its_declared_types_with_every_row(migrated):
    store = CatalogStore(migrated["out"] / "catalog")
    reference = migrated["reference"]
    for name, spec in TABLES.items():
        table = store.read(name)
        assert table.schema.names[: len(spec.schema)] == spec.schema.names, name
        assert [f.type for f in table.schema][: len(spec.schema)] == list(spec.schema.types), name
        if name in ("files", "runs", "errors", "edits", "changes"):
            continue
        assert _rows(table) == _rows(reference[name]), f"{name}: rows differ from the first run's"


def test_the_files_rows_keep_their_values(migrated):
    store = CatalogStore(migrated["out"] / "catalog")
    now = {r["path"]: r for r in store.read("files").to_pylist()}
    before = {r["path"]: r for r in migrated["reference"]["files"].to_pylist()}
    assert set(now) == set(before)
    same = [
        c
        for c in TABLES["files"].schema.names
        # flow_run_id: of the run that processed it, like run_id (the old writer had no such column)
        if c not in ("processed_at", "run_id", "flow_run_id", "attempts", "duration_ms", "quarantine")
    ]
    for path, row in now.items():
        differ = {c: (row[c], before[path][c]) for c in same if row[c] != before[path][c]}
        assert not differ, f"{path}: {differ}"
        assert row["processed_at"] is not None and row["processed_at"].tzinfo is not None
    assert now["assembly.stp"]["product_names"] == before["assembly.stp"]["product_names"]
    assert len(now["assembly.stp"]["product_names"]) > 1
    assert now["broken.dxf"]["status"] == "failed" and now["broken.dxf"]["error_permanent"] is True


def test_runs_edits_and_changes_keep_the_old_rows_typed(migrated):
    store = CatalogStore(migrated["out"] / "catalog")
    runs = store.read("runs").to_pylist()
    assert [r["run_id"] for r in sorted(runs, key=lambda r: r["started_at"])][0] == "20261130T220000Z-0ldrun00"
    assert len(runs) == 2 and all(r["started_at"].tzinfo is not None for r in runs)
    [edit] = store.read("edits").to_pylist()
    assert edit["edited_at"].isoformat() == "2026-11-29T21:00:01.250000+00:00"
    assert {k: v for k, v in edit.items() if k != "edited_at"} == {k: v for k, v in EDIT.items() if k != "edited_at"}
    [change] = store.read("changes").to_pylist()
    assert change["detected_at"].isoformat() == "2026-11-30T22:00:05.500000+00:00"
    assert {k: v for k, v in change.items() if k != "detected_at"} == {
        k: v for k, v in CHANGE.items() if k != "detected_at"
    }


def test_duckdb_reads_the_migrated_tables_with_the_declared_types(migrated):
    path = migrated["out"] / "catalog" / "files"
    con = delta_duckdb()
    described = con.sql(f"select column_name, column_type from (describe select * from delta_scan('{path}'))")
    types = dict(described.fetchall())
    assert types["title"] == "VARCHAR" and types["processed_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["product_names"] == "VARCHAR[]" and types["attempts"] == "BIGINT"
