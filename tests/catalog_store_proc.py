"""Real processes for the catalog store's concurrency and crash tests (tests/e2e/test_catalog_store_processes.py).

python -m tests.catalog_store_proc write ROOT NAME BATCHES [READY_FILE]
    publish BATCHES runs, each recording BATCH files named NAME-<run>-<i> and replacing the
    previous run's files of NAME (changed content, removed paths): every kind of write.
python -m tests.catalog_store_proc read ROOT REPORT STOP_FILE
    read the catalog until STOP_FILE exists, checking what a reader must always see; write
    the violations and the versions seen to REPORT (JSON).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from documents.process_exit import run_then_exit
from engine.catalog_store import CatalogStore, Publication

BATCH = 20
TEXTS_PER_FILE = 5
ROOT_DIR = "/library"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def publication(name: str, run: int) -> Publication:
    """Run `run` of writer `name`: BATCH files of new content, the previous run's paths removed."""
    now = datetime.now(UTC)
    run_id = f"{name}-{run}"
    files, texts = [], []
    for i in range(BATCH):
        content = sha(f"{name}/{run}/{i}")
        files.append(
            {
                "source_root": ROOT_DIR,
                "path": f"{name}/{run}/f{i}.dxf",
                "sha256": content,
                "format": "dxf",
                "status": "ok",
                "processed_at": now,
                "run_id": run_id,
                "size": 100 + i,
                "mtime_ns": run,
                "warnings": [],
                "outputs": [f"outputs/{content[:8]}/Model.svg"],
                "text_count": TEXTS_PER_FILE,
            }
        )
        texts += [
            {"sha256": content, "layout": "Model", "dxftype": "TEXT", "text": f"{name} {run} {i} {k}"}
            for k in range(TEXTS_PER_FILE)
        ]
    removed = [(ROOT_DIR, f"{name}/{run - 1}/f{i}.dxf") for i in range(BATCH)] if run else []
    return Publication(
        run_id,
        files=files,
        removed=removed,
        contents={f["sha256"] for f in files},
        details={"texts": texts},
        run={"run_id": run_id, "started_at": now, "finished_at": now, "files_seen": BATCH, "processed": BATCH},
    )


def write(root: str, name: str, batches: int, ready: str | None = None) -> None:
    store = CatalogStore(root)
    if ready:  # the reader has read once: every run is published while it reads
        while not Path(ready).exists():
            time.sleep(0.05)
    for run in range(batches):
        store.publish(publication(name, run))


def violations(store: CatalogStore, as_of: datetime | None = None) -> tuple[list[str], int, int]:
    """What must hold in every state a reader can see; returns (violations, files version, rows)."""
    found = []
    files = store.read("files", as_of=as_of)
    keys = list(zip(files["source_root"].to_pylist(), files["path"].to_pylist()))
    if len(set(keys)) != len(keys):
        found.append("a (source_root, path) recorded twice")
    per_writer = Counter(path.split("/")[0] for _, path in keys)
    if any(count % BATCH for count in per_writer.values()):
        found.append(f"a run's files half recorded: {dict(per_writer)}")
    # Every stored row, those of superseded contents too (a content's rows are never added twice).
    texts = store.read("texts", as_of=as_of, superseded=True)
    counts = Counter(texts["sha256"].to_pylist())
    if any(count != TEXTS_PER_FILE for count in counts.values()):
        found.append("a content's texts half written or twice")
    missing = [s for s in files["sha256"].to_pylist() if s not in counts]
    if as_of is not None and missing:
        found.append(f"{len(missing)} files rows without their texts at one instant")
    return found, len(keys), len(texts)


def read(root: str, report: str, stop: str) -> None:
    store = CatalogStore(root)
    seen, problems, reads = set(), [], 0
    while True:
        finished = Path(stop).exists()
        at = datetime.now(UTC)
        for as_of in (None, at):
            found, rows, _ = violations(store, as_of)
            problems += found
            seen.add(rows)
        reads += 1
        if reads == 1:
            Path(stop + ".ready").write_text("ready")
        if finished:
            break
    Path(report).write_text(json.dumps({"problems": problems, "states": sorted(seen), "reads": reads}))


def main(argv: list[str]) -> None:
    command, *args = argv
    if command == "write":
        write(args[0], args[1], int(args[2]), args[3] if len(args) > 3 else None)
    elif command == "read":
        read(*args)
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    # Ended as the CLI ends: a normal exit's teardown can abort in Arrow's thread pools after the
    # work is done (documents/process_exit.py), which a test would read as this process failing.
    run_then_exit(lambda: main(sys.argv[1:]))
