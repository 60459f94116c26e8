"""The catalog: what a publisher killed mid-write leaves is cleared by the next, and a run is merged
into what the catalog knew (a file's new row replaces its old one, files gone from a walked folder
are removed, failures are kept), writing only what changed. Real drawings, real outputs and a real
catalog in a temporary folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

from documents.names import to_text
from engine.catalog import Catalog, Outcome, now_iso
from engine.catalog_store import Publication
from engine.rollups import write_rollups
from engine.version import pipeline_version
from tests.catalog_writers_proc import TEXTS, drawing, walk, worked
from tests.conftest import catalog_table
from tests.unit.engine_runs import Library, engine_run, names, outcomes_of, plan_for


def test_a_publish_removes_what_a_killed_publisher_left_half_written(tmp_path):
    catalog = Catalog(tmp_path)
    half_table = tmp_path / "catalog" / ".catalog.json.tmp-4242"
    half_copy = tmp_path / "quarantine" / ".0123456789abcdef-bad.dxf.tmp-4242"
    half_table.parent.mkdir()
    half_copy.parent.mkdir()
    for half in (half_table, half_copy):
        half.write_bytes(b"cut short")

    row = catalog.publish({"run_id": "r1", "started_at": now_iso()}, [], [])

    assert row["files_seen"] == 0
    assert not half_table.exists() and not half_copy.exists()
    assert catalog_table(tmp_path, "runs")["run_id"].tolist() == ["r1"]


# Merging a run into what the catalog knew (Catalog.publish), through the engine's own steps.


def files_by_path(cfg) -> dict[str, dict]:
    """The files table as plain values (lists, None for a missing value), comparable with ==."""
    rows = json.loads(Catalog(cfg.out).read("files").to_json(orient="records", date_format="iso"))
    return {r["path"]: r for r in rows}


def test_a_files_new_row_replaces_its_old_one_and_its_details(tmp_path):
    lib = Library(tmp_path)
    lib.add("a.dxf", seed=1, entities=3)
    lib.add("b.dxf", seed=2)
    cfg = lib.config()
    _, first = engine_run(cfg)
    before = files_by_path(cfg)
    lib.add("a.dxf", seed=3, entities=7)  # a new revision of the drawing
    _, second = engine_run(cfg)
    files = Catalog(cfg.out).read("files")
    assert sorted(files["path"]) == ["a.dxf", "b.dxf"], "one row per file, never two"
    after = files_by_path(cfg)
    assert after["a.dxf"]["sha256"] != before["a.dxf"]["sha256"]
    assert after["a.dxf"]["run_id"] == second["run_id"] and after["a.dxf"]["work_id"] != before["a.dxf"]["work_id"]
    assert after["b.dxf"] == before["b.dxf"], "an unchanged file keeps its row as it was"
    entities = Catalog(cfg.out).read("entities")
    assert set(entities["sha256"]) == {after["a.dxf"]["sha256"], after["b.dxf"]["sha256"]}, "old details pruned"
    lines = entities[(entities["sha256"] == after["a.dxf"]["sha256"]) & (entities["dxftype"] == "LINE")]
    assert lines["count"].sum() == 7


def test_files_gone_from_a_walked_folder_are_removed_and_other_folders_are_kept(tmp_path):
    lib = Library(tmp_path)
    other = tmp_path / "other"
    lib.add("a.dxf", seed=1)
    lib.add("sub/gone.dxf", seed=2)
    other.mkdir()
    (other / "elsewhere.dxf").write_bytes((lib.src / "a.dxf").read_bytes().replace(b"PART 1", b"PART 9"))
    both = lib.config(sources=[lib.src, other])
    engine_run(both)
    kept, gone = (files_by_path(both)[name] for name in ("elsewhere.dxf", "sub/gone.dxf"))
    (lib.src / "sub" / "gone.dxf").unlink()
    only_library = lib.config()  # this run walks the library alone
    engine_run(only_library)
    files = files_by_path(only_library)
    assert sorted(files) == ["a.dxf", "elsewhere.dxf"], "gone from the walked folder: removed"
    assert files["elsewhere.dxf"] == kept, "a folder this run did not walk keeps what the catalog knew"
    assert gone["sha256"] not in set(Catalog(both.out).read("layers")["sha256"]), "and its details with it"


def test_a_failure_is_kept_as_recorded_until_the_file_changes(tmp_path):
    lib = Library(tmp_path)
    lib.add("good.dxf", seed=1)
    broken = lib.src / "broken.dxf"
    broken.write_text("0\nSECTION\n2\nENTITIES\n0\nLINE\n8\n0\n10\nnot a number\n")
    cfg = lib.config()
    _, first = engine_run(cfg)
    failed = files_by_path(cfg)["broken.dxf"]
    assert failed["status"] == "failed" and failed["error_permanent"] and failed["error_stage"] == "load"
    assert failed["error_message"].startswith("broken.dxf: load: ")
    copy = cfg.out / failed["quarantine"]
    assert copy.read_bytes() == broken.read_bytes()

    plan, second = engine_run(cfg)  # the same input: not retried, and no news
    assert names(plan.still_failed) == ["broken.dxf"] and second["failed"] == 1
    assert files_by_path(cfg)["broken.dxf"] == failed, "the failure is kept as it was recorded"
    errors = Catalog(cfg.out).read("errors")
    assert list(errors["run_id"]) == [first["run_id"]], "a failure kept is not a new error"
    assert copy.is_file()

    lib.add("broken.dxf", seed=2)  # fixed
    _, third = engine_run(cfg)
    fixed = files_by_path(cfg)["broken.dxf"]
    assert fixed["status"] == "ok" and fixed["run_id"] == third["run_id"] and fixed["error_class"] is None
    assert not copy.exists(), "a quarantine copy no row refers to is removed"
    assert list(Catalog(cfg.out).read("errors")["run_id"]) == [first["run_id"]], "the error history stays"


def test_publishing_the_same_run_twice_gives_the_same_catalog(tmp_path):
    lib = Library(tmp_path)
    lib.add("a.dxf", seed=1)
    (lib.src / "broken.dxf").write_text("0\nSECTION\n2\nENTITIES\n0\nLINE\n8\n0\n10\nnot a number\n")
    cfg = lib.config()
    _, plan = plan_for(cfg)
    outcomes = outcomes_of(cfg, plan)
    run = {"run_id": "run-1", "started_at": now_iso(), "pipeline_version": pipeline_version()}
    walked = [str(lib.src.resolve())]
    Catalog(cfg.out).publish(run, outcomes, walked)
    keys = {"files": ["source_root", "path"], "layers": ["sha256", "name"], "errors": ["path"], "runs": ["run_id"]}

    def table(name: str):  # in key order: a Delta table's rows come in no particular order
        return Catalog(cfg.out).read(name).sort_values(keys[name], ignore_index=True)

    tables = {name: table(name) for name in keys}
    Catalog(cfg.out).publish(run, outcomes, walked)  # a retried publish task
    for name, frame in tables.items():
        again = table(name)
        columns = [c for c in frame.columns if c not in ("processed_at", "finished_at", "failed_at")]
        assert again[columns].equals(frame[columns]), name


# What a publish writes: only what changed.


def _walk_and_work(out: Path, lib: Path, run_id: str):
    """A run over `lib`: each drawing discovered, and worked unless its content is as recorded."""
    records = Catalog(out).records()
    outcomes = []
    for item in walk(out, [lib], []):
        previous = records.get(item.key)
        if previous is not None and previous.sha256 == item.sha256:
            outcomes.append(Outcome(item, previous.work_id, "unchanged"))
        else:
            outcomes.append(worked(out, item))
    run = {"run_id": run_id, "started_at": now_iso(), "pipeline_version": "1", "sources": []}
    return Catalog(out).publish(run, outcomes, [to_text(os.path.realpath(lib))])


def _last_commit(out: Path, table: str) -> tuple[int, str | None, dict]:
    [latest] = Catalog(out).history(table, 1)
    return latest.version, latest.run_id, latest.metrics


def test_a_run_writes_only_the_changed_files_rows_and_an_unchanged_rerun_writes_none(tmp_path):
    out, lib = tmp_path / "out", tmp_path / "library"
    for i in range(30):
        drawing(lib / f"d{i:02d}.dxf", f"drawing {i}")
    _walk_and_work(out, lib, "first")
    files_version, _, _ = _last_commit(out, "files")
    texts_version, _, _ = _last_commit(out, "texts")

    row = _walk_and_work(out, lib, "unchanged")
    assert row["unchanged"] == 30
    assert _last_commit(out, "files")[0] == files_version, "an unchanged rerun commits nothing to files"
    assert _last_commit(out, "texts")[0] == texts_version, "nor to the detail tables"
    assert _last_commit(out, "runs")[1] == "unchanged", "only its run row"

    drawing(lib / "d07.dxf", "drawing 7, revised")
    (lib / "d08.dxf").unlink()
    _walk_and_work(out, lib, "one changed")
    version, run_id, metrics = _last_commit(out, "files")
    assert (version, run_id) == (files_version + 1, "one changed"), "one commit to files"
    assert (metrics["num_target_rows_updated"], metrics["num_target_rows_deleted"]) == (1, 1)
    assert metrics["num_target_rows_inserted"] == 0
    added = [v for v in Catalog(out).history("texts", 5) if v.run_id == "one changed" and v.operation == "WRITE"]
    assert [v.metrics["num_added_rows"] for v in added] == [TEXTS], "the new content's texts, appended"
    texts = Catalog(out).read("texts", columns=["sha256"])["sha256"]
    assert len(texts) == 29 * TEXTS, "the old contents' rows removed"


def test_the_roll_ups_are_recomputed_only_when_bom_or_files_changed(tmp_path):
    catalog = Catalog(tmp_path)
    sha = "ab" * 32

    def publish(run_id: str, qty: float) -> None:
        row = {"source_root": "/lib", "path": "pump.dxf", "sha256": sha, "format": "dxf", "status": "ok"}
        bom = [{"sha256": sha, "part_number": "B-100", "qty": qty, "unit": "pcs", "insert_count": 2}]
        catalog.store.publish(
            Publication(run_id, files=[row], contents={sha}, details={"bom": bom}, run={"run_id": run_id})
        )

    publish("r1", 4.0)
    rollup, used = write_rollups(catalog)
    version = catalog.store.versions(["where_used"])["where_used"]
    again_rollup, again_used = write_rollups(catalog)  # nothing changed: read back, not rewritten
    assert catalog.store.versions(["where_used"])["where_used"] == version
    assert again_used.to_dict("records")[0]["paths"].tolist() == ["/lib/pump.dxf"]
    assert (again_used["total_qty"].tolist(), again_rollup["inserts"].tolist()) == ([4.0], [2])
    publish("r2", 6.0)
    _, used = write_rollups(catalog)
    assert used["total_qty"].tolist() == [6.0] and catalog.store.versions(["where_used"])["where_used"] == version + 1
