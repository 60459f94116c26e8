"""The catalog at 100,000 drawings: the engine's catalog (engine/catalog.py over the Delta Lake
tables of engine/catalog_store.py) against the rewrite-everything Parquet catalog cadpipe had
before (tests/legacy_catalog.py), and two alternatives considered for the table format: a DuckDB
database file and hive-partitioned Parquet with one file per partition.

A synthetic catalog of --drawings drawings (per drawing about 50 texts, 20 layers, 10 BOM rows,
10 entity counts, 5 blocks, 2 layouts, 1 reference) is built once per store, then each
measurement runs in a fresh process (its peak memory is its own).

Store `engine` (what a run costs): the drawings exist on disk (a tiny DXF each) with their work
folders (`outputs/<work_id>/result.json`), and the catalog records them as they are:
  rerun      an unchanged rerun of the library: the plan (the catalog's lookups, the stat walk of
             every file without hashing, the check of every output folder, make_plan), then the
             publish of 100,000 unchanged outcomes (nothing written but the run's row);
  publish1   the watcher's case: 1 drawing whose content changed, published alone (its result.json
             with its detail rows on disk, as a worker leaves it);
  publish1k  the same for 1,000 drawings at once;
  nightly1k  a nightly batch over the whole library in which 1,000 drawings changed: 100,000
             outcomes, the library as walked folder (removals checked for every file);
  maintain   the maintenance that follows (`cadpipe catalog maintain`): the detail rows of the
             2,001 contents the publishes superseded pruned, small files compacted.
Stores `delta`, `legacy`, `duckdb`, `parquet` (the table formats compared, stage 1):
  plan       read what an unchanged rerun's plan needs of `files` into a dict by (source_root,
             path); publish1 / publish1k: 1 or 1,000 changed drawings' rows published.
Prints a table of wall times (s) and peak RSS (MiB). Usage:
    .venv/bin/python bench/catalog_scale.py [--drawings 100000] [--dir /tmp/cadpipe-catalog-scale]
        [--stores engine,legacy,delta,duckdb,parquet] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.catalog_store import DETAIL_TABLES, PARTITION, TABLES, CatalogStore, MaintenanceRule, Publication, conform

PER_DRAWING = {"texts": 50, "layers": 20, "bom": 10, "entities": 10, "blocks": 5, "layouts": 2, "refs": 1}
CHUNK = 10_000
ENGINE_OPERATIONS = ("rerun", "publish1", "publish1k", "nightly1k", "maintain", "rerun")
ROOT = "/library"
NOW = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)
WORDS = np.array(
    [
        "BOLT M8x20",
        "HEX NUT M8",
        "GEAR HOUSING",
        "SEE NOTE 3",
        "SCALE 1:2",
        "DRAWN",
        "REV A",
        "Ø12 H7",
        "BEARING 6204",
        "SHAFT",
        "COVER PLATE",
        "WASHER",
    ]
)


def file_bytes(i: int, version: int = 1) -> bytes:
    """A minimal ASCII DXF (recognised by its content), unique per drawing and version."""
    return f"999\ndrawing {i} v{version}\n  0\nSECTION\n  2\nENTITIES\n  0\nENDSEC\n  0\nEOF\n".encode()


def content(i: int, version: int = 1) -> str:
    return hashlib.sha256(file_bytes(i, version)).hexdigest()


def mtime_ns(i: int, version: int = 1) -> int:
    return 1_764_000_000_000_000_000 + version * 10**15 + i * 1000


# The identity of the `engine` store's drawings: real paths, sizes, times and work ids.
IDENTITY: dict = {}


def drawing_path(i: int) -> str:
    return f"project-{i // 1000:03d}/drawing-{i:06d}.dxf"


def generate(indices: np.ndarray, version: int = 1) -> dict[str, pa.Table]:
    """Every table's rows for the drawings `indices` (deterministic per index and version)."""
    rng = np.random.default_rng(int(indices[0]) * 7 + version)
    n = len(indices)
    shas = np.array([content(int(i), version) for i in indices])
    out: dict[str, pa.Table] = {}
    files = {
        "path": [drawing_path(int(i)) for i in indices],
        "source_root": [ROOT] * n,
        "sha256": shas,
        "format": ["dxf"] * n,
        "status": ["ok"] * n,
        "outputs": [[f"outputs/{s[:16]}/Model.svg", f"outputs/{s[:16]}/Model.pdf"] for s in shas],
        "warnings": [["2 unfixed audit errors"] if k % 7 == 0 else [] for k in range(n)],
        "processed_at": pa.array([NOW] * n, pa.timestamp("us", tz="UTC")),
        "run_id": ["20261130T220000Z-0000aaaa"] * n,
        "pipeline_version": ["0.1.0+abc"] * n,
        "work_id": [s[:32] for s in shas],
        "size": rng.integers(10_000, 5_000_000, n),
        "mtime_ns": 1_764_000_000_000_000_000 + indices.astype(np.int64),
        "attempts": np.ones(n, np.int64),
        "duration_ms": rng.integers(200, 20_000, n),
        "dxf_version": rng.choice(["AC1027", "AC1032", "AC1015"], n),
        "dxf_release": rng.choice(["R2013", "R2018", "R2000"], n),
        "insunits": np.full(n, 4),
        "units": ["mm"] * n,
        "measurement": ["metric"] * n,
        "extents_source": ["header"] * n,
        "created_at": pa.array([NOW] * n, pa.timestamp("us", tz="UTC")),
        "codepage": ["ANSI_1252"] * n,
        "recovered": rng.random(n) < 0.05,
        "title": [None if k % 3 == 0 else f"GEAR HOUSING {k}" for k in range(n)],
        "drawing_number": [f"DWG-{int(i):06d}" for i in indices],
        "revision": rng.choice(["A", "B", "C"], n),
        "title_block_name": ["A3-TITLE"] * n,
        "title_block_layout": ["Layout1"] * n,
    }
    for column in ("extents_min_x", "extents_min_y", "extents_max_x", "extents_max_y"):
        files[column] = rng.random(n) * 1000
    for column, per in (
        ("entity_count", 400),
        ("block_entity_count", 100),
        ("layer_count", 20),
        ("layout_count", 2),
        ("block_count", 5),
        ("text_count", 50),
        ("ref_count", 1),
        ("entities_read", 500),
        ("entities_kept", 500),
        ("bom_row_count", 10),
    ):
        files[column] = np.full(n, per)
    if IDENTITY:  # the drawings on disk: their folder, stat and work identity
        files["source_root"] = [IDENTITY["root"]] * n
        files["size"] = [len(file_bytes(int(i), version)) for i in indices]
        files["mtime_ns"] = [mtime_ns(int(i), version) for i in indices]
        files["work_id"] = [IDENTITY["work_id"](s) for s in shas]
        files["outputs"] = [[f"outputs/{w}/model.svg"] for w in files["work_id"]]
    out["files"] = conform("files", pa.table(files))
    for name, per in PER_DRAWING.items():
        m = n * per
        sha = np.repeat(shas, per)
        layout = np.where(rng.random(m) < 0.7, "Model", "Layout1")
        if name == "texts":
            cols = {
                "sha256": sha,
                "layout": layout,
                "dxftype": rng.choice(["TEXT", "MTEXT", "ATTRIB"], m),
                "handle": np.char.mod("%X", rng.integers(0x100, 0xFFFFF, m)),
                "layer": np.char.add("LAYER-", rng.integers(0, 20, m).astype(str)),
                "tag": rng.choice(["", "PART_NO", "QTY"], m),
                "text": np.char.add(rng.choice(WORDS, m), rng.integers(0, 1000, m).astype(str)),
            }
        elif name == "layers":
            cols = {
                "sha256": sha,
                "name": np.char.add("LAYER-", np.tile(np.arange(per), n).astype(str)),
                "defined": np.ones(m, bool),
                "color": rng.integers(1, 255, m),
                "linetype": rng.choice(["CONTINUOUS", "DASHED"], m),
                "is_on": np.ones(m, bool),
                "is_frozen": np.zeros(m, bool),
                "is_locked": np.zeros(m, bool),
                "entity_count": rng.integers(0, 100, m),
            }
        elif name == "bom":
            cols = {
                "sha256": sha,
                "item_no": np.tile(np.arange(1, per + 1), n).astype(str),
                "part_number": np.char.add("P-", rng.integers(1000, 99999, m).astype(str)),
                "description": rng.choice(WORDS, m),
                "qty": rng.integers(1, 20, m).astype(float),
                "unit": ["pcs"] * m,
                "block_name": rng.choice(["BOLT", "NUT", "WASHER"], m),
                "block_path": rng.choice(["ASSY/BOLT", "NUT"], m),
                "layout": layout,
                "handle": np.char.mod("%X", rng.integers(0x100, 0xFFFFF, m)),
                "level": np.zeros(m, np.int64),
                "insert_count": rng.integers(1, 8, m),
                "source": ["attributes"] * m,
                "attributes": ['{"PART_NO": "P-1", "QTY": "2"}'] * m,
            }
        elif name == "entities":
            cols = {
                "sha256": sha,
                "layout": layout,
                "dxftype": np.tile(
                    np.array(
                        [
                            "LINE",
                            "CIRCLE",
                            "ARC",
                            "LWPOLYLINE",
                            "TEXT",
                            "MTEXT",
                            "INSERT",
                            "DIMENSION",
                            "HATCH",
                            "SPLINE",
                        ]
                    ),
                    n,
                ),
                "count": rng.integers(1, 300, m),
            }
        elif name == "blocks":
            cols = {
                "sha256": sha,
                "name": np.char.add("BLOCK-", np.tile(np.arange(per), n).astype(str)),
                "entity_count": rng.integers(1, 50, m),
                "insert_count": rng.integers(0, 20, m),
                "is_xref": np.zeros(m, bool),
            }
        elif name == "layouts":
            cols = {
                "sha256": sha,
                "name": np.tile(np.array(["Model", "Layout1"]), n),
                "is_model": np.tile(np.array([True, False]), n),
                "tab_order": np.tile(np.arange(per), n),
                "paper_width": np.full(m, 420.0),
                "paper_height": np.full(m, 297.0),
                "paper_units": ["mm"] * m,
                "entity_count": rng.integers(0, 400, m),
            }
        else:
            cols = {
                "sha256": sha,
                "kind": ["image"] * m,
                "name": ["logo.png"] * m,
                "path": ["logo.png"] * m,
                "exists": np.ones(m, bool),
                "handle": np.char.mod("%X", rng.integers(0x100, 0xFFFFF, m)),
            }
        out[name] = conform(name, pa.table({k: pa.array(v) for k, v in cols.items()}))
    for name in DETAIL_TABLES:  # the tables no synthetic drawing has rows in (bom_symbols)
        if name not in out:
            out[name] = conform(name, pa.table({"sha256": pa.array([], pa.string())}))
    return out


def chunks(drawings: int):
    for lo in range(0, drawings, CHUNK):
        yield np.arange(lo, min(drawings, lo + CHUNK))


# Building each store.


def build_delta(folder: Path, drawings: int) -> None:
    store = CatalogStore(folder / "catalog")
    with store.lock():
        store.open_for_write()
        for indices in chunks(drawings):
            for name, table in generate(indices).items():
                store.append(name, table, run_id="build", locked=True)
    store.maintain(MaintenanceRule())  # the nightly state: one compacted file per partition


def build_legacy(folder: Path, drawings: int) -> None:
    """One Parquet file per table, as flows/catalog.py writes them."""
    target = folder / "catalog"
    target.mkdir(parents=True)
    writers: dict[str, pq.ParquetWriter] = {}
    for indices in chunks(drawings):
        for name, table in generate(indices).items():
            table = _as_legacy(table.drop_columns([PARTITION]))
            if name not in writers:
                writers[name] = pq.ParquetWriter(target / f"{name}.parquet", table.schema)
            writers[name].write_table(table)
    for writer in writers.values():
        writer.close()


def _as_legacy(table: pa.Table) -> pa.Table:
    """Times as ISO 8601 text, as flows/catalog.py records them."""
    for index, f in enumerate(table.schema):
        if pa.types.is_timestamp(f.type):
            text = [v.isoformat(timespec="milliseconds") if v is not None else None for v in table[f.name].to_pylist()]
            table = table.set_column(index, f.name, pa.array(text, pa.string()))
    return table


def build_duckdb(folder: Path, drawings: int) -> None:
    import duckdb

    folder.mkdir(parents=True)
    con = duckdb.connect(str(folder / "catalog.duckdb"))
    for indices in chunks(drawings):
        for name, batch in generate(indices).items():
            batch = batch.drop_columns([PARTITION])
            if indices[0] == 0:
                con.execute(f"create table {name} as select * from batch")
            else:
                con.execute(f"insert into {name} select * from batch")
    con.close()


def build_parquet(folder: Path, drawings: int) -> None:
    """Hive-partitioned by sha_prefix, one file per partition, each replaced by a rename."""
    parts: dict[tuple[str, str], list[pa.Table]] = {}
    for indices in chunks(drawings):
        for name, table in generate(indices).items():
            for prefix in "0123456789abcdef":
                parts.setdefault((name, prefix), []).append(table.filter(pa.compute.equal(table[PARTITION], prefix)))
    for (name, prefix), tables in parts.items():
        path = folder / name / f"{PARTITION}={prefix}" / "data.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.concat_tables(tables).drop_columns([PARTITION]), path)
    del parts


def engine_identity(folder: Path) -> None:
    """The `engine` store's drawings: under folder/library, with the work ids a run computes."""
    from documents.names import to_text
    from engine.config import load_config
    from engine.plan import work_id
    from engine.version import pipeline_version

    cfg = load_config(None, sources=[str(folder / "library")], out=str(folder / "out"))
    key, version = cfg.options_key("dxf"), pipeline_version()
    IDENTITY.update(
        root=to_text(folder / "library"),
        work_id=lambda sha: work_id(sha, key, version),
        cfg=cfg,
    )


def write_drawing(folder: Path, i: int, version: int) -> Path:
    path = folder / "library" / drawing_path(i)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(file_bytes(i, version))
    os.utime(path, ns=(mtime_ns(i, version), mtime_ns(i, version)))
    return path


def write_result(folder: Path, wid: str, tables: dict[str, list[dict]], summary: dict) -> None:
    """The work folder a worker leaves: outputs/<work_id>/result.json."""
    work = folder / "out" / "outputs" / wid
    work.mkdir(parents=True, exist_ok=True)
    record = {
        "summary": summary,
        "tables": tables,
        "outputs": [{"layout": "Model", "format": "svg", "file": "model.svg"}],
    }
    (work / "result.json").write_text(json.dumps(record, default=str), encoding="utf-8")


def build_engine(folder: Path, drawings: int) -> None:
    """The library on disk, a work folder per drawing, and the Delta catalog recording both."""
    engine_identity(folder)
    for i in range(drawings):
        write_drawing(folder, i, 1)
        write_result(folder, IDENTITY["work_id"](content(i)), {}, {})
    store = CatalogStore(folder / "out" / "catalog")
    with store.lock():
        store.open_for_write()
        for indices in chunks(drawings):
            for name, table in generate(indices).items():
                store.append(name, table, run_id="build", locked=True)
    store.maintain(MaintenanceRule())  # the nightly state: one compacted file per partition


BUILD = {
    "engine": build_engine,
    "delta": build_delta,
    "legacy": build_legacy,
    "duckdb": build_duckdb,
    "parquet": build_parquet,
}


# The measured operations, each in its own process.


def changed(drawings: int, count: int, seed: int) -> tuple[np.ndarray, dict[str, pa.Table]]:
    rng = np.random.default_rng(seed)
    indices = np.sort(rng.choice(drawings, count, replace=False))
    return indices, generate(indices, version=2 + seed)


def plan_delta(folder: Path) -> int:
    store = CatalogStore(folder / "catalog")
    files = store.read(
        "files",
        columns=["source_root", "path", "size", "mtime_ns", "sha256", "format", "work_id", "status", "error_permanent"],
    )
    known = {
        key: row
        for key, row in zip(
            zip(files["source_root"].to_pylist(), files["path"].to_pylist()),
            zip(*(files[c].to_pylist() for c in files.column_names[2:])),
        )
    }
    return len(known)


def plan_legacy(folder: Path) -> int:
    from tests.legacy_catalog import Catalog

    catalog = Catalog(folder)
    return len(catalog.known_files()) + 0 * len(catalog.recorded())


def plan_duckdb(folder: Path) -> int:
    import duckdb

    con = duckdb.connect(str(folder / "catalog.duckdb"), read_only=True)
    rows = con.execute(
        "select source_root, path, size, mtime_ns, sha256, format, work_id, status, error_permanent from files"
    ).fetchall()
    return len({(r[0], r[1]): r[2:] for r in rows})


def plan_parquet(folder: Path) -> int:
    import pyarrow.dataset as ds

    files = ds.dataset(folder / "files", format="parquet", partitioning="hive").to_table(
        columns=["source_root", "path", "size", "mtime_ns", "sha256", "format", "work_id", "status", "error_permanent"]
    )
    return len({k: 1 for k in zip(files["source_root"].to_pylist(), files["path"].to_pylist())})


def publish_delta(folder: Path, drawings: int, count: int, seed: int) -> int:
    indices, tables = changed(drawings, count, seed)
    rows = {name: table.drop_columns([PARTITION]).to_pylist() for name, table in tables.items()}
    store = CatalogStore(folder / "catalog")
    run_id = f"bench-{seed}"
    started = time.perf_counter()  # the rows as a run hands them over (dicts), cast included
    store.publish(
        Publication(
            run_id,
            files=rows["files"],
            contents={r["sha256"] for r in rows["files"]},
            details={name: rows[name] for name in DETAIL_TABLES},
            run={"run_id": run_id, "started_at": NOW, "processed": count},
        )
    )
    return store.last_publish, time.perf_counter() - started


def publish_legacy(folder: Path, drawings: int, count: int, seed: int) -> int:
    """Through the old Catalog.publish (tests/legacy_catalog.py): each changed drawing's
    result.json on disk, as the workers leave it, then the publish that rewrites every table."""
    from engine.discover import InputFile
    from tests.legacy_catalog import Catalog, Outcome

    indices, tables = changed(drawings, count, seed)
    rows = {name: table.drop_columns([PARTITION]).to_pylist() for name, table in tables.items()}
    outcomes = []
    for _k, row in enumerate(rows["files"]):
        work = folder / "outputs" / row["work_id"]
        work.mkdir(parents=True, exist_ok=True)
        detail = {
            name: [{c: v for c, v in r.items() if c != "sha256"} for r in rows[name] if r["sha256"] == row["sha256"]]
            for name in DETAIL_TABLES
        }
        summary = {
            c: v
            for c, v in row.items()
            if c
            not in ("path", "source_root", "sha256", "outputs", "warnings", "processed_at", "created_at", "updated_at")
        }
        (work / "result.json").write_text(
            json.dumps({"summary": summary, "tables": detail, "outputs": [], "warnings": []})
        )
        entry = InputFile(ROOT, row["path"], row["size"], row["mtime_ns"], row["sha256"], "dxf")
        outcomes.append(Outcome(entry, row["work_id"], "processed", {"attempt": 1, "duration_ms": 10}))
    started = time.perf_counter()
    Catalog(folder).publish(
        {"run_id": f"bench-{seed}", "started_at": NOW.isoformat(), "pipeline_version": "bench"}, outcomes, []
    )
    return count, time.perf_counter() - started


def publish_duckdb(folder: Path, drawings: int, count: int, seed: int) -> int:
    import duckdb

    indices, tables = changed(drawings, count, seed)
    started = time.perf_counter()
    con = duckdb.connect(str(folder / "catalog.duckdb"))
    con.execute("begin")
    keys = tables["files"].select(["source_root", "path"])  # noqa: F841 - read by DuckDB by name
    con.execute(
        "create temp table old as select sha256 from files where (source_root, path) in (select source_root, path from keys)"
    )
    con.execute("delete from files where (source_root, path) in (select source_root, path from keys)")
    new_files = tables["files"].drop_columns([PARTITION])  # noqa: F841 - read by DuckDB by name
    con.execute("insert into files select * from new_files")
    for name in DETAIL_TABLES:
        batch = tables[name].drop_columns([PARTITION])  # noqa: F841 - read by DuckDB by name
        con.execute(f"delete from {name} where sha256 in (select sha256 from old)")
        con.execute(f"insert into {name} select * from batch")
    con.execute("commit")
    con.close()
    return count, time.perf_counter() - started


def publish_parquet(folder: Path, drawings: int, count: int, seed: int) -> int:
    """Rewrite each touched partition file: read it, drop the old contents, add the new, rename."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    indices, tables = changed(drawings, count, seed)
    started = time.perf_counter()
    files = tables["files"]
    keys = set(zip(files["source_root"].to_pylist(), files["path"].to_pylist()))
    recorded = ds.dataset(folder / "files", format="parquet", partitioning="hive").to_table(
        columns=["source_root", "path", "sha256"]
    )
    old_shas = {
        s for r, p, s in zip(*(recorded[c].to_pylist() for c in ("source_root", "path", "sha256"))) if (r, p) in keys
    }
    for name, table in tables.items():
        prefixes = {s[:1] for s in old_shas} | set(table[PARTITION].to_pylist())
        for prefix in sorted(prefixes):
            path = folder / name / f"{PARTITION}={prefix}" / "data.parquet"
            current = pq.read_table(path)
            if name == "files":
                drop = pa.array(
                    [k in keys for k in zip(current["source_root"].to_pylist(), current["path"].to_pylist())]
                )
            else:
                drop = pc.is_in(current["sha256"], pa.array(sorted(old_shas)))
            added = table.filter(pc.equal(table[PARTITION], prefix)).drop_columns([PARTITION])
            kept = current.filter(pc.invert(drop))
            tmp = path.with_name(f".data.parquet.tmp-{os.getpid()}")
            pq.write_table(pa.concat_tables([kept, added.select(kept.column_names)]), tmp)
            os.replace(tmp, path)
    return count, time.perf_counter() - started


# The engine's catalog: what a run costs.


def engine_outcomes(folder: Path, drawings: int, count: int, seed: int):
    """`count` drawings changed on disk and worked (result.json with their detail rows); returns
    their processed outcomes and the inputs of every other drawing, as discovery finds them."""
    from documents.names import to_text
    from engine.catalog import Outcome
    from engine.discover import InputFile

    engine_identity(folder)
    version = 2 + seed
    indices, tables = changed(drawings, count, seed)
    rows = {name: table.drop_columns([PARTITION]).to_pylist() for name, table in tables.items()}
    by_sha: dict[str, dict[str, list[dict]]] = {}
    for name in DETAIL_TABLES:
        for r in rows[name]:
            by_sha.setdefault(r["sha256"], {}).setdefault(name, []).append(
                {k: v for k, v in r.items() if k != "sha256"}
            )
    outcomes = []
    identity = ("path", "source_root", "sha256", "outputs", "warnings", "processed_at", "run_id", "work_id")
    for i, row in zip(indices, rows["files"]):
        write_drawing(folder, int(i), version)
        summary = {k: v for k, v in row.items() if k not in identity and v is not None}
        write_result(folder, row["work_id"], by_sha.get(row["sha256"], {}), summary)
        entry = InputFile(IDENTITY["root"], row["path"], row["size"], row["mtime_ns"], row["sha256"], "dxf")
        outcomes.append(Outcome(entry, row["work_id"], "processed", {"attempt": 1, "duration_ms": 10}))
    return outcomes, set(int(i) for i in indices), to_text(folder / "library")


def rerun_engine(folder: Path) -> dict:
    """An unchanged rerun: the plan as flows/batch.py's discover_and_plan makes it, then the publish."""
    from engine.catalog import Catalog, Outcome, now_iso
    from engine.discover import scan
    from engine.plan import make_plan
    from engine.version import pipeline_version
    from engine.work import is_complete, sweep_abandoned

    engine_identity(folder)
    cfg, out = IDENTITY["cfg"], folder / "out"
    started = time.perf_counter()
    catalog = Catalog(out)
    sweep_abandoned(out)
    recorded = catalog.recorded(cfg.limits.memory_mb)
    found = scan(
        list(cfg.sources),
        exclude=list(cfg.inputs.exclude),
        formats=list(cfg.inputs.formats),
        known=recorded,
        skip=[out],
        roots=catalog.roots(),
    )
    version = pipeline_version()
    ids = {IDENTITY["work_id"](f.sha256) for f in found.inputs}  # flows/batch.py: completed_work
    plan = make_plan(
        found.inputs,
        options_for=cfg.options_for,
        options_key=cfg.options_key,
        version=version,
        recorded=recorded,
        completed={wid for wid in ids if is_complete(out, wid)},
    )
    planned = time.perf_counter()
    assert len(plan.unchanged) == len(found.inputs), f"{len(plan.todo)} to do: the library is not as recorded"
    run = {"run_id": "bench-rerun", "started_at": now_iso(), "pipeline_version": version, "sources": []}
    outcomes = [Outcome(item.input, item.work_id, "unchanged") for item in plan.unchanged]
    catalog.publish(run, outcomes, [IDENTITY["root"]])
    return {"files": len(found.inputs), "plan_s": planned - started, "publish_s": time.perf_counter() - planned}


def publish_engine(folder: Path, drawings: int, count: int, seed: int, nightly: bool = False):
    from engine.catalog import Catalog, Outcome, now_iso
    from engine.discover import InputFile

    outcomes, _, root = engine_outcomes(folder, drawings, count, seed)
    catalog = Catalog(folder / "out")
    if nightly:  # every other drawing unchanged, as the nightly batch's plan found it
        changed_keys = {o.input.key for o in outcomes}
        for key, r in catalog.records().items():
            if key not in changed_keys:
                entry = InputFile(r.source_root, r.path, r.size, r.mtime_ns, r.sha256, r.format)
                outcomes.append(Outcome(entry, r.work_id, "unchanged"))
    run = {"run_id": f"bench-{seed}", "started_at": now_iso(), "pipeline_version": "bench", "sources": []}
    started = time.perf_counter()  # the outcomes as a run hands them over; result.json read, cast
    catalog.publish(run, outcomes, [root] if nightly else [])
    return catalog.store.last_publish, time.perf_counter() - started


def maintain_engine(folder: Path) -> dict:
    """`cadpipe catalog maintain`: prune, compact (vacuum keeps the week of history)."""
    from engine.catalog import Catalog

    report = Catalog(folder / "out").maintain()
    return {
        "pruned_rows": sum(e.get("pruned_rows", 0) for e in report.values()),
        "compacted": ",".join(n for n, e in report.items() if "compacted" in e) or "none",
    }


def measure(store: str, operation: str, folder: Path, drawings: int, seed: int) -> dict:
    started = time.perf_counter()
    if store == "engine":
        if operation == "rerun":
            result = rerun_engine(folder)
            seconds = time.perf_counter() - started
        elif operation == "maintain":
            result = maintain_engine(folder)
            seconds = time.perf_counter() - started
        else:
            count = 1 if operation == "publish1" else 1000
            result, seconds = publish_engine(folder, drawings, count, seed, nightly=operation == "nightly1k")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return {"store": store, "operation": operation, "seconds": seconds, "peak_mib": peak, "result": result}
    if operation == "plan":
        result = {"delta": plan_delta, "legacy": plan_legacy, "duckdb": plan_duckdb, "parquet": plan_parquet}[store](
            folder
        )
        seconds = time.perf_counter() - started
    else:
        count = {"publish1": 1, "publish1k": 1000}[operation]
        publish = {
            "delta": publish_delta,
            "legacy": publish_legacy,
            "duckdb": publish_duckdb,
            "parquet": publish_parquet,
        }[store]
        result = publish(folder, drawings, count, seed)
        seconds = time.perf_counter() - started
        if isinstance(result, tuple):  # the publish alone, without making up the changed rows
            result, seconds = result
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"store": store, "operation": operation, "seconds": seconds, "peak_mib": peak, "result": result}


def visible(steps: dict) -> str:
    """Of a Delta publish: seconds until the run's files and runs rows are committed (every join
    through files complete), then the prune of contents no file refers to any more."""
    done = sum(v for k, v in steps.items() if k != "prune")
    if "prune" not in steps:  # schema 4: superseded rows are left for maintenance
        return f"visible after {done:.2f} s ({', '.join(f'{k} {v:.2f}' for k, v in steps.items())})"
    return f"visible after {done:.2f} s, then prune {steps.get('prune', 0):.2f} s ({', '.join(f'{k} {v:.2f}' for k, v in steps.items())})"


def disk_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def live_mib(folder: Path) -> float | None:
    """Of a Delta catalog: the data files its latest versions refer to (old ones wait for vacuum)."""
    from deltalake import DeltaTable

    tables = [folder / "catalog" / name for name in TABLES]
    if not all((t / "_delta_log").is_dir() for t in tables):
        return None
    return (
        sum(sum(pa.table(DeltaTable(t).get_add_actions(flatten=True))["size_bytes"].to_pylist()) for t in tables)
        / 2**20
    )


def run_child(*args: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drawings", type=int, default=100_000)
    parser.add_argument("--dir", default="/tmp/cadpipe-catalog-scale")
    parser.add_argument("--stores", default="engine,legacy,delta,duckdb,parquet")
    parser.add_argument("--keep", action="store_true", help="keep the built catalogs")
    parser.add_argument("--child", nargs=3, metavar=("STORE", "OPERATION", "SEED"), help=argparse.SUPPRESS)
    parser.add_argument("--build", metavar="STORE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    base = Path(args.dir)
    if args.build:
        started = time.perf_counter()
        BUILD[args.build](base / args.build, args.drawings)
        print(
            json.dumps(
                {
                    "seconds": time.perf_counter() - started,
                    "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                }
            )
        )
        return
    if args.child:
        store, operation, seed = args.child
        print(json.dumps(measure(store, operation, base / store, args.drawings, int(seed))))
        return
    rows = []
    for store in args.stores.split(","):
        folder = base / store
        shutil.rmtree(folder, ignore_errors=True)
        built = run_child("--dir", str(base), "--drawings", str(args.drawings), "--build", store)
        line = {"store": store, "build_s": built["seconds"], "disk_mib": disk_mib(folder)}
        operations = ENGINE_OPERATIONS if store == "engine" else ("plan", "publish1", "publish1k", "plan")
        for seed, operation in enumerate(operations, start=1):
            result = run_child(
                "--dir", str(base), "--drawings", str(args.drawings), "--child", store, operation, str(seed)
            )
            key = operation if operation not in line else f"{operation}_after"
            line[key] = (result["seconds"], result["peak_mib"])
            if isinstance(result["result"], dict) and operation in ("rerun", "maintain"):
                line[f"{key}_steps"] = ", ".join(
                    f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in result["result"].items()
                )
            elif isinstance(result["result"], dict):
                line[f"{key}_steps"] = visible(result["result"])
        line["disk_after_mib"] = disk_mib(folder)
        line["live_mib"] = live_mib(folder / "out" if store == "engine" else folder)
        rows.append(line)
        print(json.dumps(line), flush=True)
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"\n{args.drawings:,} drawings; seconds (peak MiB) per operation, each in a fresh process")
    for line in rows:
        keys = [k for k in line if isinstance(line[k], tuple)]
        cells = " ".join(f"{k} {line[k][0]:.2f} ({line[k][1]:.0f})" for k in keys)
        print(f"{line['store']:<8} build {line['build_s']:.1f} s, {line['disk_mib']:.0f} MiB on disk: {cells}")
    for line in rows:
        for key in [k for k in line if k.endswith("_steps")]:
            print(f"{line['store']} {key.removesuffix('_steps')}: {line[key]}")


if __name__ == "__main__":
    main()
