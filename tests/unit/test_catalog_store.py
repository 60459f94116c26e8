"""The Delta Lake catalog store (engine/catalog_store.py): declared types as DuckDB, Polars and
pandas read them, incremental publishes, history, migration of a Parquet catalog. Real processes
writing, reading and being killed at the same time: tests/e2e/test_catalog_store_processes.py."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import openpyxl
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from engine.catalog_store import (
    LIST,
    SCHEMA_VERSION,
    TABLES,
    TIME,
    CatalogError,
    CatalogStore,
    Publication,
    SchemaError,
    conform,
    duckdb_extension_directory,
    rows_to_table,
)
from tests.catalog_store_proc import sha
from tests.legacy_catalog import Catalog as ParquetCatalog

NOW = datetime(2026, 11, 30, 22, 15, 0, 123000, tzinfo=UTC)


def delta_duckdb() -> duckdb.DuckDBPyConnection:
    """DuckDB with the delta extension of the duckdb-ext-delta package: no network needed."""
    con = duckdb.connect(
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "extension_directory": duckdb_extension_directory(),
        }
    )
    con.execute("LOAD delta")
    return con


def drawing_row(path: str, content: str, **extra) -> dict:
    """A files row as the batch records a DXF drawing without a title block."""
    return {
        "source_root": "/lib",
        "path": path,
        "sha256": content,
        "format": "dxf",
        "status": "ok",
        "outputs": ["outputs/w/Model.svg"],
        "warnings": [],
        "processed_at": NOW.isoformat(),
        "run_id": "r1",
        "size": 1200,
        "mtime_ns": 1_700_000_000_000_000_000,
        "attempts": 1,
        "duration_ms": 250,
        "dxf_version": "AC1027",
        "entity_count": 12,
        "recovered": False,
        "created_at": "2019-05-01T08:00:00+00:00",
        "title": None,
        "drawing_number": None,
        "revision": None,
        "bom_row_count": 0,
        **extra,
    }


def model_row(path: str, content: str) -> dict:
    return {
        "source_root": "/models",
        "path": path,
        "sha256": content,
        "format": "step",
        "status": "ok",
        "outputs": ["outputs/m/model.stl"],
        "warnings": ["mesh is not closed: no volume"],
        "processed_at": NOW,
        "size": 5000,
        "mtime_ns": 1,
        "schema": "AUTOMOTIVE_DESIGN",
        "volume_mm3": 1000.0,
        "n_solids": 1,
        "is_valid": True,
        "mesh_only": False,
        "product_names": ["GEAR", "SHAFT"],
        "authors": ["A. Designer"],
        "title": None,
    }


def publish_one(store: CatalogStore, run_id: str, rows: list[dict], texts: int = 2, removed=()) -> None:
    contents = {r["sha256"] for r in rows if r["status"] == "ok"}
    details = {
        "texts": [
            {"sha256": s, "layout": "Model", "dxftype": "TEXT", "text": f"{s[:4]} {k}"}
            for s in sorted(contents)
            for k in range(texts)
        ],
        "layers": [{"sha256": s, "name": "0", "defined": True, "color": 7, "entity_count": 3} for s in contents],
    }
    store.publish(
        Publication(
            run_id,
            files=rows,
            removed=list(removed),
            contents=contents,
            details=details,
            run={"run_id": run_id, "started_at": NOW, "finished_at": NOW, "sources": ["/lib"]},
        )
    )


# Declared types.


def test_a_value_that_does_not_fit_names_table_column_row_and_value():
    cases = [
        ({"size": 1.5}, "column 'size'", "1.5"),
        ({"size": "12"}, "column 'size'", "'12'"),
        ({"attempts": True}, "column 'attempts'", "not a flag"),
        ({"processed_at": "2026-11-30T10:00:00"}, "column 'processed_at'", "time zone"),
        ({"warnings": "one warning"}, "column 'warnings'", "list of text"),
        ({"title": 7}, "column 'title'", "text expected"),
        ({"recovered": 1}, "column 'recovered'", "true or false"),
    ]
    for values, column, detail in cases:
        with pytest.raises(SchemaError) as caught:
            rows_to_table("files", [drawing_row("a.dxf", sha("a")), {**drawing_row("b/c.dxf", sha("b")), **values}])
        message = str(caught.value)
        assert "'files'" in message and column in message and "row 1" in message and "b/c.dxf" in message, message
        assert detail in message, message
    with pytest.raises(SchemaError, match="unknown column"):
        rows_to_table("texts", [{"sha256": sha("a"), "txt": "typo"}])
    with pytest.raises(SchemaError, match="column 'part_no'"):  # an extra BOM column holds text only
        rows_to_table("bom", [{"sha256": sha("a"), "part_no": 12}])


def test_arrow_input_is_cast_only_where_no_value_changes():
    typed = conform("files", pa.table({"path": ["a"], "size": pa.array([3], pa.int32()), "title": pa.nulls(1)}))
    assert typed.schema.field("size").type == pa.int64() and typed.schema.field("title").type == pa.string()
    for column in (pa.array(["3"]), pa.array([3.0])):  # text parsed or a double narrowed: refused
        with pytest.raises(SchemaError, match="column 'size'"):
            conform("files", pa.table({"path": ["a"], "size": column}))
    with pytest.raises(SchemaError, match="processed_at"):  # a naive time is not read as UTC
        conform("files", pa.table({"processed_at": pa.array([datetime(2026, 1, 1)], pa.timestamp("ms"))}))


def test_every_table_and_column_exists_and_empty_text_stays_text_in_duckdb_polars_pandas(tmp_path):
    store = CatalogStore(tmp_path / "catalog")
    publish_one(store, "r1", [drawing_row("a.dxf", sha("a")), drawing_row("b.dxf", sha("b"))])
    for name, spec in TABLES.items():
        schema = pa.schema(DeltaTable(store.path(name)).schema().to_arrow())
        assert set(schema.names) == set(spec.schema.names), name
    path = store.path("files")
    con = delta_duckdb()
    types = dict(
        con.sql(f"select column_name, column_type from (describe select * from delta_scan('{path}'))").fetchall()
    )
    assert types["title"] == "VARCHAR" and types["size"] == "BIGINT" and types["recovered"] == "BOOLEAN"
    assert types["processed_at"] == "TIMESTAMP WITH TIME ZONE" and types["warnings"] == "VARCHAR[]"
    assert types["volume_mm3"] == "DOUBLE" and types["product_names"] == "VARCHAR[]"  # model columns, DXF-only catalog
    assert con.sql(f"select count(*) from delta_scan('{path}') where title like '%Gear%'").fetchone() == (0,)
    frame = pl.scan_delta(str(path)).filter(pl.col("title").str.contains("Gear")).collect()
    assert frame.height == 0 and frame.schema["title"] == pl.String and frame.schema["size"] == pl.Int64
    assert pl.read_delta(str(path)).schema["processed_at"] == pl.Datetime("us", "UTC")
    native = DeltaTable(path).to_pandas()
    assert native["title"].dtype == "str" and native["title"].str.contains("Gear").sum() == 0
    typed = store.read_pandas("files")
    assert str(typed["attempts"].dtype) == "Int64" and str(typed["recovered"].dtype) == "boolean"
    assert str(typed["processed_at"].dtype) == "datetime64[us, UTC]"


def test_times_are_timestamps_in_duckdb_and_polars(tmp_path):
    store = CatalogStore(tmp_path / "catalog")
    publish_one(store, "r1", [drawing_row("a.dxf", sha("a"))])
    path = store.path("files")
    con = delta_duckdb()
    con.execute("set timezone = 'UTC'")
    day_before, day = con.sql(
        f"select processed_at - interval 1 day, date_trunc('day', processed_at) from delta_scan('{path}')"
    ).fetchone()
    assert day_before == NOW - timedelta(days=1) and day.date() == NOW.date()
    created = con.sql(f"select year(created_at) from delta_scan('{path}')").fetchone()
    assert created == (2019,)
    shifted = pl.read_delta(str(path)).select(pl.col("processed_at") - pl.duration(days=1)).item()
    assert shifted == NOW - timedelta(days=1)


def test_a_dxf_only_catalog_and_one_with_models_scan_together(tmp_path):
    drawings, models = CatalogStore(tmp_path / "a" / "catalog"), CatalogStore(tmp_path / "b" / "catalog")
    publish_one(drawings, "r1", [drawing_row("a.dxf", sha("a"))])
    publish_one(models, "r2", [model_row("gear.step", sha("gear"))])
    both = pl.concat([pl.scan_delta(str(s.path("files"))) for s in (drawings, models)]).collect()
    assert both.height == 2 and both.schema["error_class"] == pl.String
    assert both.filter(pl.col("format") == "step")["product_names"].to_list() == [["GEAR", "SHAFT"]]
    con = delta_duckdb()
    rows = con.sql(
        f"select format, volume_mm3 from delta_scan('{drawings.path('files')}') "
        f"union all by name select format, volume_mm3 from delta_scan('{models.path('files')}') order by 1"
    ).fetchall()
    assert rows == [("dxf", None), ("step", 1000.0)]


def test_extra_title_block_columns_are_text_and_others_read_null(tmp_path):
    store = CatalogStore(tmp_path / "catalog")
    publish_one(store, "r1", [drawing_row("a.dxf", sha("a"), project_code="P-7")])
    publish_one(store, "r2", [drawing_row("b.dxf", sha("b"))])
    files = store.read("files").to_pylist()
    assert {r["path"]: r["project_code"] for r in files} == {"a.dxf": "P-7", "b.dxf": None}
    assert store.table_schema("files").field("project_code").type == pa.string()


# Incremental publishing.


def test_a_changed_file_replaces_its_details_and_a_removed_file_loses_them(tmp_path):
    store = CatalogStore(tmp_path / "catalog")
    shared = sha("same bytes")
    publish_one(
        store, "r1", [drawing_row("a.dxf", sha("a1")), drawing_row("b.dxf", shared), drawing_row("c.dxf", shared)]
    )
    publish_one(store, "r2", [drawing_row("a.dxf", sha("a2"))], removed=[("/lib", "b.dxf")])
    files = {r["path"]: r["sha256"] for r in store.read("files").to_pylist()}
    assert files == {"a.dxf": sha("a2"), "c.dxf": shared}
    texts = store.read("texts")["sha256"].to_pylist()
    assert sorted(set(texts)) == sorted({sha("a2"), shared}) and len(texts) == 4, "old content pruned, shared kept"
    publish_one(store, "r3", [], removed=[("/lib", "c.dxf")])
    assert set(store.read("layers")["sha256"].to_pylist()) == {sha("a2")}
    assert not (store.root / ".publishing.json").exists()
    # The superseded contents' rows wait in the tables for maintenance, listed, never read.
    stored = set(store.read("layers", superseded=True)["sha256"].to_pylist())
    assert stored == {sha("a1"), shared, sha("a2")}
    assert json.loads((store.root / ".superseded.json").read_text())["contents"] == sorted({sha("a1"), shared})
    report = store.maintain()
    assert report["texts"]["pruned_rows"] == 4 and report["layers"]["pruned_rows"] == 2
    assert set(store.read("texts", superseded=True)["sha256"].to_pylist()) == {sha("a2")}
    assert json.loads((store.root / ".superseded.json").read_text())["contents"] == []


def test_many_keys_are_written_by_a_merge_with_the_same_result(tmp_path, monkeypatch):
    import engine.catalog_store as catalog_store

    monkeypatch.setattr(catalog_store, "_KEYS_IN_PREDICATE", 2)  # a MERGE from 3 keys on
    store = CatalogStore(tmp_path / "catalog")
    publish_one(store, "r1", [drawing_row(f"{i}.dxf", sha(f"{i}")) for i in range(4)])
    publish_one(store, "r2", [drawing_row(f"{i}.dxf", sha(f"{i}b")) for i in (1, 2)], removed=[("/lib", "3.dxf")])
    files = {r["path"]: r["sha256"] for r in store.read("files").to_pylist()}
    assert files == {"0.dxf": sha("0"), "1.dxf": sha("1b"), "2.dxf": sha("2b")}
    [latest] = store.history("files", 1)
    assert latest.operation == "MERGE" and latest.metrics["num_target_rows_deleted"] == 1
    publish_one(store, "r3", [drawing_row("0.dxf", sha("0c"))])  # one key: a "replace where"
    [latest] = store.history("files", 1)
    assert latest.operation == "WRITE" and (latest.metrics["num_target_rows_updated"], latest.run_id) == (1, "r3")
    assert set(json.loads((store.root / ".superseded.json").read_text())["contents"]) == {
        sha(x) for x in ("0", "1", "2", "3")
    }


def test_superseded_rows_never_show_in_reads_exports_or_readme_joins(tmp_path):
    store = CatalogStore(tmp_path / "catalog")
    publish_one(store, "r1", [drawing_row("a.dxf", sha("a1")), drawing_row("b.dxf", sha("b"))], texts=3)
    first = datetime.now(UTC)
    time.sleep(0.05)
    publish_one(store, "r2", [drawing_row("a.dxf", sha("a2"))], texts=1)
    publish_one(store, "r3", [{**drawing_row("b.dxf", sha("b2")), "status": "failed"}])
    assert store.read("texts", superseded=True).num_rows == 3 + 3 + 1, "the old rows are still stored"
    assert set(store.read("texts")["sha256"].to_pylist()) == {sha("a2")}
    assert set(store.read("texts", columns=["text"])["text"].to_pylist()) == {f"{sha('a2')[:4]} 0"}
    assert set(store.read("texts", where=[("sha256", "in", [sha("a1"), sha("b")])])["sha256"].to_pylist()) == set()
    # As of a time: the contents that time's files referred to, every row of theirs.
    assert sorted(store.read("texts", as_of=first)["sha256"].to_pylist()) == sorted([sha("a1")] * 3 + [sha("b")] * 3)
    [version] = [v.version for v in store.history("texts") if v.run_id == "r2"]
    assert set(store.read("layers", version=version)["sha256"].to_pylist()) == {sha("a1"), sha("b")}
    exported = store.export(tmp_path / "export")
    assert set(pq.read_table(tmp_path / "export" / "texts.parquet")["sha256"].to_pylist()) == {sha("a2")}
    assert len(exported) == len(TABLES)
    con = delta_duckdb()  # the README's joins go through files: the stored old rows never match
    joined = con.sql(
        f"select f.path, l.sha256 from delta_scan('{store.path('files')}') f "
        f"join delta_scan('{store.path('layers')}') l using (sha256)"
    ).fetchall()
    assert joined == [("a.dxf", sha("a2"))]
    files = pl.scan_delta(str(store.path("files")))
    texts = pl.scan_delta(str(store.path("texts"))).join(files.select("sha256", "path"), on="sha256").collect()
    assert set(texts["sha256"]) == {sha("a2")}


def test_a_content_back_after_being_superseded_has_its_rows_once(tmp_path):
    store = CatalogStore(tmp_path / "catalog")
    publish_one(store, "r1", [drawing_row("a.dxf", sha("x"))], texts=3)
    publish_one(store, "r2", [drawing_row("a.dxf", sha("y"))], texts=3)  # x superseded, its rows stored
    publish_one(store, "r3", [drawing_row("a.dxf", sha("x"))], texts=2)  # x back: replaced, not added
    stored = store.read("texts", superseded=True)["sha256"].to_pylist()
    assert stored.count(sha("x")) == 2 and stored.count(sha("y")) == 3
    store.delete("files", [("/lib", "a.dxf")])  # any write of files lists what it leaves behind
    assert set(json.loads((store.root / ".superseded.json").read_text())["contents"]) == {sha("x"), sha("y")}
    publish_one(store, "r4", [drawing_row("b.dxf", sha("y"))], texts=1)
    assert store.read("texts", superseded=True)["sha256"].to_pylist().count(sha("y")) == 1
    assert store.read("texts")["sha256"].to_pylist() == [sha("y")]


def test_the_superseded_list_lost_is_made_again_and_a_schema_3_journal_joins_it(tmp_path):
    store = CatalogStore(tmp_path / "catalog")
    publish_one(store, "r1", [drawing_row("a.dxf", sha("x")), drawing_row("b.dxf", sha("z"))])
    publish_one(store, "r2", [drawing_row("a.dxf", sha("y"))])
    (store.root / ".superseded.json").unlink()  # as a schema-3 catalog is: no list, maybe a journal
    (store.root / ".publishing.json").write_text(json.dumps({"run_id": "old", "contents": [sha("z"), sha("q")]}))
    (store.root / "catalog.json").write_text(json.dumps({"format": "delta", "schema_version": 3}))
    publish_one(store, "r3", [drawing_row("a.dxf", sha("x"))], texts=1)  # x back: its old rows replaced
    assert not (store.root / ".publishing.json").exists() and store.schema_version() == 4
    listed = set(json.loads((store.root / ".superseded.json").read_text())["contents"])
    assert {sha("x"), sha("z"), sha("q")} <= listed, "the sweep found x, the journal named z and q"
    assert store.read("texts", superseded=True)["sha256"].to_pylist().count(sha("x")) == 1


def test_republishing_a_run_changes_nothing(tmp_path):
    store = CatalogStore(tmp_path / "catalog")
    rows = [drawing_row("a.dxf", sha("a")), {**drawing_row("bad.dxf", sha("bad")), "status": "failed"}]
    error = {"run_id": "r1", "path": "bad.dxf", "source_root": "/lib", "error_class": "InputError", "failed_at": NOW}
    for _ in range(2):
        store.publish(
            Publication(
                "r1",
                files=rows,
                contents={sha("a")},
                errors=[error],
                details={"texts": [{"sha256": sha("a"), "text": "x"}]},
                run={"run_id": "r1"},
            )
        )
    assert {name: store.read(name).num_rows for name in ("files", "texts", "errors", "runs")} == {
        "files": 2,
        "texts": 1,
        "errors": 1,
        "runs": 1,
    }


def test_a_content_catalogued_again_has_its_rows_replaced_not_added(tmp_path):
    store = CatalogStore(tmp_path / "catalog")
    publish_one(store, "r1", [drawing_row("a.dxf", sha("a"))], texts=3)
    publish_one(store, "r2", [drawing_row("a.dxf", sha("a"))], texts=1)  # a new pipeline version, fewer texts
    assert store.read("texts")["text"].to_pylist() == [f"{sha('a')[:4]} 0"]
    with pytest.raises(SchemaError, match="not in the publication"):
        store.publish(Publication("r3", contents={sha("a")}, details={"texts": [{"sha256": sha("b"), "text": "x"}]}))


def test_keys_with_quotes_and_any_letters_are_written_and_removed(tmp_path):
    store = CatalogStore(tmp_path / "catalog")
    odd = ["o'brien.dxf", "Zeichnung Größe \\ 1.dxf", "'; drop table files; --.dxf"]
    publish_one(store, "run 'quoted' ü", [drawing_row(p, sha(p)) for p in odd])
    publish_one(store, "run 'quoted' ü", [drawing_row(odd[0], sha("new"))], removed=[("/lib", odd[1])])
    assert sorted(store.read("files")["path"].to_pylist()) == sorted([odd[0], odd[2]])
    assert store.read("runs")["run_id"].to_pylist() == ["run 'quoted' ü"]


def test_history_lists_runs_and_reads_as_of_a_version_or_a_time(tmp_path):
    store = CatalogStore(tmp_path / "catalog")
    publish_one(store, "night", [drawing_row("a.dxf", sha("a"))])
    between = datetime.now(UTC)
    time.sleep(0.05)
    publish_one(store, "watch", [drawing_row("b.dxf", sha("b"))])
    history = store.history("files")
    assert [v.run_id for v in history[:2]] == ["watch", "night"] and history[-1].operation == "CREATE TABLE"
    assert history[0].timestamp > history[1].timestamp
    assert store.read("files", version=history[1].version)["path"].to_pylist() == ["a.dxf"]
    assert store.read("files", as_of=between)["path"].to_pylist() == ["a.dxf"]
    assert pl.read_delta(str(store.path("files")), version=history[1].version).height == 1
    assert pl.read_delta(str(store.path("files")), version=between).height == 1
    con = delta_duckdb()
    con.execute(f"attach '{store.path('files')}' as files_then (type delta, version {history[1].version})")
    assert con.sql("select count(*) from files_then").fetchone() == (1,)


def test_compaction_and_vacuum_keep_the_rows_and_shrink_the_files(tmp_path):
    store = CatalogStore(tmp_path / "catalog")
    for run in range(12):
        publish_one(store, f"r{run}", [drawing_row(f"{run}.dxf", sha(f"{run}"))])
    before = {name: sorted(map(str, store.read(name).to_pylist())) for name in ("files", "texts")}
    files_before = len(DeltaTable(store.path("runs")).file_uris())
    from engine.catalog_store import MaintenanceRule

    report = store.maintain(MaintenanceRule(max_files_per_partition=2, keep_hours=0))
    assert "compacted" in report["runs"] and report["runs"]["vacuumed"] >= files_before - 1
    assert len(DeltaTable(store.path("runs")).file_uris()) < files_before
    assert {name: sorted(map(str, store.read(name).to_pylist())) for name in ("files", "texts")} == before


def test_export_writes_plain_parquet_csv_and_xlsx(tmp_path):
    store = CatalogStore(tmp_path / "catalog")
    publish_one(store, "r1", [drawing_row("a.dxf", sha("a")), model_row("m.step", sha("m"))])
    parquet = store.export(tmp_path / "pq", "parquet")
    assert {p.stem for p in parquet} == set(TABLES)
    files = pq.read_table(tmp_path / "pq" / "files.parquet")
    assert files.schema.field("title").type == pa.string() and files.schema.field("warnings").type == LIST
    assert duckdb.sql(f"select count(*) from '{tmp_path}/pq/texts.parquet'").fetchone() == (4,)
    store.export(tmp_path / "csv", "csv")
    csv = pd.read_csv(tmp_path / "csv" / "files.csv")
    assert json.loads(csv.loc[csv["format"] == "step", "product_names"].item()) == ["GEAR", "SHAFT"]
    [xlsx] = store.export(tmp_path / "xl", "xlsx")
    book = openpyxl.load_workbook(xlsx, read_only=True)
    assert set(TABLES) <= set(book.sheetnames)
    header = next(book["files"].iter_rows(max_row=1, values_only=True))
    assert header[:3] == ("path", "source_root", "sha256")


# Migration of the Parquet catalog (one file per table, as cadpipe wrote it before: tests/legacy_catalog.py).


def legacy_catalog(out: Path) -> ParquetCatalog:
    """Tables as today's writer leaves them: all-empty title typed double, times as text, counts
    double where a value is missing, product names joined with "; "."""
    catalog = ParquetCatalog(out)
    catalog.write(
        "files",
        pd.DataFrame(
            [
                {
                    "path": "a.dxf",
                    "source_root": "/lib",
                    "sha256": sha("a"),
                    "status": "ok",
                    "title": float("nan"),
                    "processed_at": NOW.isoformat(),
                    "attempts": 1.0,
                    "warnings": [],
                    "error_permanent": None,
                    "product_names": None,
                },
                {
                    "path": "m.step",
                    "source_root": "/lib",
                    "sha256": sha("m"),
                    "status": "ok",
                    "title": float("nan"),
                    "processed_at": NOW.isoformat(),
                    "attempts": float("nan"),
                    "warnings": ["w"],
                    "error_permanent": None,
                    "product_names": "GEAR; SHAFT",
                },
            ]
        ),
    )
    catalog.write("texts", pd.DataFrame([{"sha256": sha("a"), "layout": "Model", "dxftype": "TEXT", "text": "x"}]))
    catalog.write(
        "runs", pd.DataFrame([{"run_id": "r0", "started_at": NOW.isoformat(), "sources": ["/lib"], "failed": 0}])
    )
    return catalog


def test_a_parquet_catalog_is_migrated_on_first_use_typed_and_never_read_twice(tmp_path):
    legacy_catalog(tmp_path)
    store = CatalogStore(tmp_path / "catalog")
    files = store.read("files")
    assert files.schema.field("title").type == pa.string() and files.schema.field("processed_at").type == TIME
    rows = {r["path"]: r for r in files.to_pylist()}
    assert rows["a.dxf"]["attempts"] == 1 and rows["m.step"]["attempts"] is None
    assert rows["m.step"]["product_names"] == ["GEAR", "SHAFT"] and rows["a.dxf"]["processed_at"] == NOW
    assert store.read("texts").num_rows == 1 and store.read("runs")["run_id"].to_pylist() == ["r0"]
    assert not (tmp_path / "catalog" / "files.parquet").exists()
    assert (tmp_path / "catalog" / "legacy-parquet" / "files.parquet").exists()
    assert store.schema_version() == SCHEMA_VERSION
    assert store.history("files")[0].step == "migrated from files.parquet"
    publish_one(store, "r1", [drawing_row("b.dxf", sha("b"))])
    assert sorted(store.read("files")["path"].to_pylist()) == ["a.dxf", "b.dxf", "m.step"]
    # An old cadpipe writing its Parquet table again beside the Delta table: refused, not mixed in.
    ParquetCatalog(tmp_path).write("files", pd.DataFrame([{"path": "x.dxf"}]))
    with pytest.raises(CatalogError, match="files.parquet"):
        store.read("files")


def test_a_migration_killed_halfway_is_redone_from_the_parquet_file(tmp_path):
    legacy_catalog(tmp_path)
    half = tmp_path / "catalog" / ".files.migrating"
    half.mkdir()
    (half / "part-0.parquet").write_bytes(b"PAR1 cut short")
    moved = tmp_path / "catalog" / "legacy-parquet"
    moved.mkdir()
    os.replace(tmp_path / "catalog" / "texts.parquet", moved / "texts.parquet")  # killed after the move
    store = CatalogStore(tmp_path / "catalog")
    assert store.read("files").num_rows == 2 and store.read("texts").num_rows == 1
    assert not half.exists()


def test_a_catalog_of_a_newer_schema_is_not_written(tmp_path):
    store = CatalogStore(tmp_path / "catalog")
    publish_one(store, "r1", [drawing_row("a.dxf", sha("a"))])
    (store.root / "catalog.json").write_text(json.dumps({"format": "delta", "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(CatalogError, match="upgrade cadpipe"):
        publish_one(store, "r2", [drawing_row("b.dxf", sha("b"))])
    assert store.read("files").num_rows == 1


# What schema 3 added (issue 15: the parent flow run, new and known failures, deferred files).
SCHEMA_2_LACKS = {
    "files": ("flow_run_id",),
    "errors": ("flow_run_id",),
    "runs": ("new_failures", "known_failures", "deferred", "attempt"),
}
# What schema 2 added (the revision diff's, the deliverables' columns and tables), and schema 3.
SCHEMA_1_LACKS = {
    "files": ("previous_sha256", "previous_work_id", "project", "bom_symbol_count", "flow_run_id"),
    "bom": ("tag", "type", "loop_number", "service", "size"),
    "errors": SCHEMA_2_LACKS["errors"],
    "runs": SCHEMA_2_LACKS["runs"],
}


def test_a_catalog_of_schema_1_gets_the_new_columns_and_tables_on_the_next_write(tmp_path):
    root = tmp_path / "catalog"
    root.mkdir()
    for name, spec in TABLES.items():  # the tables as schema 1 declared them
        if name in ("bom_symbols", "changes"):
            continue
        lacks = SCHEMA_1_LACKS.get(name, ())
        DeltaTable.create(
            root / name,
            pa.schema([f for f in spec.schema if f.name not in lacks]),
            partition_by=["sha_prefix"] if spec.partitioned else None,
        )
    (root / "catalog.json").write_text(json.dumps({"format": "delta", "schema_version": 1}))
    store = CatalogStore(root)
    publish_one(store, "r1", [drawing_row("a.dxf", sha("a"))])  # as the old rows would be there
    assert store.schema_version() == SCHEMA_VERSION == 4
    for name, added in SCHEMA_1_LACKS.items():
        present = pa.schema(DeltaTable(root / name).schema().to_arrow()).names
        assert set(added) <= set(present), name
    revised = drawing_row("a.dxf", sha("a2"), previous_sha256=sha("a"), previous_work_id="w1", bom_symbol_count=3)
    publish_one(store, "r2", [revised])
    store.append("changes", [{"run_id": "r2", "source_root": "/lib", "path": "a.dxf", "compared": True}])
    [row] = store.read("files", columns=["previous_sha256", "previous_work_id", "bom_symbol_count"]).to_pylist()
    assert row == {"previous_sha256": sha("a"), "previous_work_id": "w1", "bom_symbol_count": 3}
    assert store.read("changes").num_rows == 1 and store.read("bom_symbols").num_rows == 0


def test_a_catalog_of_schema_2_gets_the_flow_run_and_failure_columns_on_the_next_write(tmp_path):
    root = tmp_path / "catalog"
    root.mkdir()
    for name, spec in TABLES.items():  # the tables as schema 2 declared them
        lacks = SCHEMA_2_LACKS.get(name, ())
        DeltaTable.create(
            root / name,
            pa.schema([f for f in spec.schema if f.name not in lacks]),
            partition_by=["sha_prefix"] if spec.partitioned else None,
        )
    (root / "catalog.json").write_text(json.dumps({"format": "delta", "schema_version": 2}))
    store = CatalogStore(root)
    publish_one(store, "r1", [drawing_row("a.dxf", sha("a"))])
    assert store.schema_version() == SCHEMA_VERSION
    for name, added in SCHEMA_2_LACKS.items():
        present = pa.schema(DeltaTable(root / name).schema().to_arrow()).names
        assert set(added) <= set(present), name
    publish_one(store, "r2", [drawing_row("b.dxf", sha("b"), flow_run_id="f2")])
    store.replace("runs", {"r2"}, [{"run_id": "r2", "flow_run_id": "f2", "attempt": 2, "known_failures": 1}])
    rows = store.read("files", columns=["path", "flow_run_id"]).to_pylist()
    assert sorted((r["path"], r["flow_run_id"]) for r in rows) == [("a.dxf", None), ("b.dxf", "f2")]
    [run] = store.read("runs", where=[("run_id", "=", "r2")]).to_pylist()
    assert (run["attempt"], run["known_failures"], run["deferred"]) == (2, 1, None)
