"""The catalog's own housekeeping: what a publisher killed mid-write leaves is cleared by the next."""

from __future__ import annotations

from engine.catalog import Catalog, now_iso
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
