"""The catalog's own housekeeping: what a publisher killed mid-write leaves is cleared by the next."""

from __future__ import annotations

import pandas as pd

from engine.catalog import Catalog, now_iso


def test_a_publish_removes_what_a_killed_publisher_left_half_written(tmp_path):
    catalog = Catalog(tmp_path)
    half_table = tmp_path / "catalog" / ".files.parquet.tmp-4242"
    half_copy = tmp_path / "quarantine" / ".0123456789abcdef-bad.dxf.tmp-4242"
    half_table.parent.mkdir()
    half_copy.parent.mkdir()
    for half in (half_table, half_copy):
        half.write_bytes(b"PAR1 cut short")

    row = catalog.publish({"run_id": "r1", "started_at": now_iso()}, [], [])

    assert row["files_seen"] == 0
    assert not half_table.exists() and not half_copy.exists()
    assert pd.read_parquet(tmp_path / "catalog" / "runs.parquet")["run_id"].tolist() == ["r1"]
