"""The catalog's publish: what a publisher killed mid-write leaves is cleared by the next; a run writes only
what changed."""

from __future__ import annotations

import os
from pathlib import Path

from documents.names import to_text
from engine.catalog import Catalog, Outcome, now_iso
from engine.catalog_store import Publication
from engine.rollups import write_rollups
from tests.catalog_writers_proc import TEXTS, drawing, walk, worked
from tests.conftest import catalog_table


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
