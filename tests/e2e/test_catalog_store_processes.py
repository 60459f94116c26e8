"""The Delta Lake catalog store (engine/catalog_store.py) under real processes: two writers at once,
readers during writes, writers killed mid-commit (the store's other tests: tests/unit/test_catalog_store.py)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from engine.catalog_store import DETAIL_TABLES, CatalogStore
from tests.catalog_store_proc import BATCH, TEXTS_PER_FILE, publication, violations
from tests.conftest import REPO

# Real processes: two writers, readers during writes, writers killed mid-commit.


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.catalog_store_proc", *args], cwd=REPO, stderr=subprocess.PIPE, text=True
    )


def finish(proc: subprocess.Popen, timeout: float = 300) -> None:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err


def test_two_writers_at_once_lose_nothing(tmp_path):
    root = str(tmp_path / "catalog")
    writers = [start("write", root, name, "4") for name in ("batch", "watch")]
    for proc in writers:
        finish(proc)
    store = CatalogStore(root)
    files = store.read("files")
    assert sorted(set(p.split("/")[0] for p in files["path"].to_pylist())) == ["batch", "watch"]
    assert files.num_rows == 2 * BATCH, "each writer's last run recorded, earlier runs' paths removed"
    found, _, _ = violations(store)
    assert found == [] and store.read("texts").num_rows == 2 * BATCH * TEXTS_PER_FILE
    assert sorted(store.read("runs")["run_id"].to_pylist()) == sorted(
        f"{n}-{r}" for n in ("batch", "watch") for r in range(4)
    )


def test_readers_during_writes_see_whole_versions_only(tmp_path):
    root = str(tmp_path / "catalog")
    CatalogStore(root).publish(publication("seed", 0))
    stop, report = tmp_path / "stop", tmp_path / "report.json"
    reader = start("read", root, str(report), str(stop))
    writer = start("write", root, "batch", "6", str(stop) + ".ready")
    finish(writer)
    stop.write_text("stop")
    finish(reader)
    seen = json.loads(report.read_text())
    assert seen["problems"] == []
    assert seen["reads"] >= 2


def test_a_writer_killed_mid_publish_leaves_a_readable_catalog_the_next_publish_completes(tmp_path):
    root = str(tmp_path / "catalog")
    store = CatalogStore(root)
    store.publish(publication("seed", 0))
    rng = random.Random(14)
    for attempt in range(4):
        proc = start("write", root, f"w{attempt}", "50")
        time.sleep(rng.uniform(1.0, 3.0))
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        found, rows, _ = violations(store)  # the latest version of each table, as any reader reads it
        assert not [f for f in found if "texts half" in f or "twice" in f or "half recorded" in f], found
        store.publish(publication("after", attempt))  # the lock is free again and the journal finished
        assert not (Path(root) / ".publishing.json").exists()
        found, _, _ = violations(store, datetime.now(UTC))
        assert found == [], found
    live = store.live_contents()
    for name in DETAIL_TABLES:
        assert set(store.read(name, columns=["sha256"])["sha256"].to_pylist()) <= live, name
    store.maintain()  # the superseded contents' rows pruned: every one the killed writers left
    for name in DETAIL_TABLES:
        assert set(store.read(name, columns=["sha256"], superseded=True)["sha256"].to_pylist()) <= live, name
