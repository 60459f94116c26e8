"""Real processes writing one catalog through engine/catalog.py, for tests/e2e/test_catalog_writers.py.
The conversion is left out (each input's result.json is written as a worker would leave it); the
discovery, the publish and the catalog are the real ones.

python -m tests.catalog_writers_proc nightly OUT LIB ROUNDS SYNC
    ROUNDS batches over the folder LIB: walk it, work (a pause), publish with LIB as walked
    folder. Round 0 waits, between its walk and its publish, until SYNC/go exists (after
    writing SYNC/ready): a watcher publishes meanwhile.
python -m tests.catalog_writers_proc watch OUT DROP COUNT
    COUNT drop-folder runs: a new drawing in DROP, walked and published alone, as the watcher's
    batch does (the file as source, DROP and the catalog's roots naming its identity).
python -m tests.catalog_writers_proc churn OUT LIB ROUNDS SEED
    ROUNDS batches over LIB, each after changing the library: drawings rewritten, one removed,
    one added (a process the crash test kills at any moment).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

from documents.names import to_text
from documents.process_exit import run_then_exit
from engine.catalog import Catalog, Outcome, now_iso
from engine.discover import InputFile, scan
from engine.plan import work_id

TEXTS = 4  # texts rows per drawing content
OPTIONS_KEY, VERSION = "writers-test", "1"


def drawing(path: Path, label: str) -> None:
    """A minimal ASCII DXF (recognised by its content) whose bytes are unique to `label`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")  # a dotfile: never an input
    tmp.write_text(f"999\n{label}\n  0\nSECTION\n  2\nENTITIES\n  0\nENDSEC\n  0\nEOF\n", encoding="ascii")
    os.replace(tmp, path)


def worked(out: Path, item: InputFile) -> Outcome:
    """The input's work done: its result.json on disk, as a worker leaves it."""
    wid = work_id(item.sha256, OPTIONS_KEY, VERSION)
    folder = out / "outputs" / wid
    folder.mkdir(parents=True, exist_ok=True)
    result = {
        "summary": {"dxf_version": "AC1009", "entity_count": 0, "text_count": TEXTS, "title": item.path},
        "tables": {
            "texts": [{"layout": "Model", "dxftype": "TEXT", "text": f"{item.sha256[:8]} {k}"} for k in range(TEXTS)],
            "layers": [{"name": "0", "defined": True, "color": 7, "entity_count": 0}],
        },
        "outputs": [{"layout": "Model", "format": "svg", "file": "model.svg"}],
        "warnings": [],
    }
    (folder / "result.json").write_text(json.dumps(result), encoding="utf-8")
    return Outcome(item, wid, "processed", {"attempt": 1, "duration_ms": 1})


def run_row(name: str) -> dict:
    return {
        "run_id": f"{name}-{time.time_ns()}",
        "started_at": now_iso(),
        "sources": [],
        "pipeline_version": VERSION,
    }


def walk(out: Path, sources: list[Path], roots: list[str]) -> list[InputFile]:
    catalog = Catalog(out)
    found = scan(
        sources,
        exclude=[".*"],
        formats=["dxf"],
        known=catalog.known_files(),
        skip=[out],
        roots=roots + catalog.roots(),
    )
    return found.inputs


def nightly(out: Path, lib: Path, rounds: int, sync: Path) -> None:
    for r in range(rounds):
        run = run_row("nightly")
        inputs = walk(out, [lib], [])
        outcomes = [worked(out, item) for item in inputs]
        if r == 0:
            (sync / "ready").write_text("walked")
            deadline = time.monotonic() + 600
            while not (sync / "go").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        else:
            time.sleep(random.uniform(0, 0.5))  # the conversions
        Catalog(out).publish(run, outcomes, [to_text(os.path.realpath(lib))])


def watch(out: Path, drop: Path, count: int) -> None:
    for i in range(count):
        path = drop / f"dropped-{i}.dxf"
        drawing(path, f"dropped {i} {time.time_ns()}")
        run = run_row("watch")
        inputs = walk(out, [path], [to_text(drop)])
        Catalog(out).publish(run, [worked(out, item) for item in inputs], [])


def churn(out: Path, lib: Path, rounds: int, seed: int) -> None:
    rng = random.Random(seed)
    for r in range(rounds):
        present = sorted(p for p in lib.rglob("*.dxf"))
        for path in rng.sample(present, min(3, len(present))):
            drawing(path, f"{path.name} {seed} {r} {time.time_ns()}")
        if len(present) > 5:
            rng.choice(present).unlink()
        drawing(lib / f"sub{r % 3}" / f"new-{seed}-{r}.dxf", f"new {seed} {r}")
        run = run_row("churn")
        inputs = walk(out, [lib], [])
        Catalog(out).publish(run, [worked(out, item) for item in inputs], [to_text(os.path.realpath(lib))])


def main(argv: list[str]) -> None:
    command, *args = argv
    if command == "nightly":
        nightly(Path(args[0]), Path(args[1]), int(args[2]), Path(args[3]))
    elif command == "watch":
        watch(Path(args[0]), Path(args[1]), int(args[2]))
    elif command == "churn":
        churn(Path(args[0]), Path(args[1]), int(args[2]), int(args[3]))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    # Ended as the CLI ends: a normal exit's teardown can abort in Arrow's thread pools after the
    # work is done (documents/process_exit.py), which a test would read as this process failing.
    run_then_exit(lambda: main(sys.argv[1:]))
