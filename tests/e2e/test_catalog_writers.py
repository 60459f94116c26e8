"""Two real processes writing one catalog through engine/catalog.py (a nightly batch over a library
and a drop-folder watcher inside it) lose none of each other's rows; a writer killed at any moment
leaves every table readable, and the next run completes the catalog. The store's own tests
(tests/e2e/test_catalog_store_processes.py) do the same on its tables alone."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from documents.names import to_text
from engine.catalog import Catalog
from engine.catalog_store import DETAIL_TABLES, JOURNAL, TABLES
from tests.catalog_writers_proc import TEXTS, drawing
from tests.conftest import REPO


def start(*args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.catalog_writers_proc", *map(str, args)],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 600) -> None:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]


def library(root: Path, count: int) -> Path:
    for i in range(count):
        drawing(root / f"part-{i:02d}.dxf", f"part {i}")
    return root


def on_disk(lib: Path) -> set[str]:
    return {to_text(p) for p in lib.rglob("*.dxf")}


def check_complete(out: Path, lib: Path) -> None:
    """The catalog records every drawing on disk once, each with its detail rows, and nothing else."""
    catalog = Catalog(out)
    records = catalog.records()
    where = Counter(r.location for r in records.values())
    assert not [w for w, n in where.items() if n > 1], "a drawing recorded twice"
    assert set(where) == on_disk(lib)
    assert all(r.status == "ok" for r in records.values())
    texts = Counter(catalog.read("texts", columns=["sha256"])["sha256"])
    assert {r.sha256 for r in records.values()} == set(texts), "detail rows of exactly the recorded contents"
    assert set(texts.values()) == {TEXTS}, "each content's texts once"
    for name in DETAIL_TABLES:
        assert set(catalog.read(name, columns=["sha256"])["sha256"]) <= set(texts), name
    assert not (out / "catalog" / JOURNAL).exists()
    # Stored, superseded contents included: each content's rows once; after maintenance, no others.
    stored = catalog.store.read("texts", columns=["sha256"], superseded=True)["sha256"].to_pylist()
    assert set(Counter(stored).values()) == {TEXTS}, "each stored content's texts once"
    catalog.maintain()
    for name in DETAIL_TABLES:
        stored = catalog.store.read(name, columns=["sha256"], superseded=True)["sha256"].to_pylist()
        assert set(stored) <= set(texts), name


def test_a_nightly_batch_and_a_watcher_lose_none_of_each_others_rows(tmp_path):
    out, lib, sync = tmp_path / "out", library(tmp_path / "library", 12), tmp_path / "sync"
    drop = lib / "drop"
    drop.mkdir()
    sync.mkdir()
    # The nightly batch walks the library; while it works, the watcher takes three drawings
    # dropped into a folder inside it; then the nightly batch publishes what it walked.
    nightly = start("nightly", out, lib, 1, sync)
    deadline = time.monotonic() + 600
    while not (sync / "ready").exists():
        assert nightly.poll() is None and time.monotonic() < deadline, "the nightly run ended before its walk"
        time.sleep(0.05)
    finish(start("watch", out, drop, 3))
    (sync / "go").write_text("go")
    finish(nightly)
    check_complete(out, lib)  # the dropped drawings too: they arrived after the nightly walk
    # Then both at once, over and over: every commit of one sees the other's.
    (sync / "ready").unlink()
    nightly = start("nightly", out, lib, 4, sync)
    watcher = start("watch", out, drop, 8)
    finish(nightly)
    finish(watcher)
    check_complete(out, lib)
    runs = Catalog(out).read("runs")
    assert sum(runs["run_id"].str.startswith("nightly")) == 5 and sum(runs["run_id"].str.startswith("watch")) == 11


def test_a_writer_killed_at_any_moment_leaves_a_readable_catalog_the_next_run_completes(tmp_path):
    out, lib = tmp_path / "out", library(tmp_path / "library", 10)
    finish(start("churn", out, lib, 1, 0))
    rng = random.Random(14)
    for attempt in range(1, 5):
        proc = start("churn", out, lib, 40, attempt)
        time.sleep(rng.uniform(2.0, 6.0))
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL, "killed mid-run, not finished"
        catalog = Catalog(out)
        for name in TABLES:  # the latest version of every table, as any reader reads it
            catalog.read(name)
        records = catalog.records()
        assert len({r.location for r in records.values()}) == len(records), "a drawing recorded twice"
        finish(start("churn", out, lib, 1, 100 + attempt))  # the next run
        check_complete(out, lib)
