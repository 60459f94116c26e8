"""The catalog: the record of every input's latest state, as Delta Lake tables under `OUT/catalog/`.

The tables, their declared types and how they are written are engine/catalog_store.py's; this
module turns a run's outcomes into rows. A publish writes only what changed: the rows of new and
changed files (and the detail rows of their contents), removals of files gone from a folder the
run walked, the run's errors and its `runs` row. Files a run found unchanged are not written at
all. Publishing holds the catalog's exclusive lock (a nightly batch and a drop-folder run may share
an output root) and commits table by table in an order that keeps every join through `files`
complete (CatalogStore.publish). Detail tables are keyed by content (`sha256`), so a file present
under two paths, or moved, has its details once.

A catalog of one Parquet file per table, as cadpipe wrote before, is migrated on first use
(CatalogStore.migrate); `catalog.json` records the schema version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from documents.file_access import open_regular
from documents.names import clean, to_native, to_text
from engine.catalog_store import (
    CURRENT_COLUMNS,
    DETAIL_TABLES,
    NO_CONTENT,
    PARTITION,
    TABLES,
    CatalogStore,
    MaintenanceRule,
    Publication,
    Version,
    key_mask,
)
from engine.config import CatalogSettings
from engine.discover import InputFile, inside
from engine.failures import Failure, failures, known_keys
from engine.records import RECORD_COLUMNS, FileRecord
from engine.work import mode_no_wider, read_result

CATALOG_DIR = "catalog"
QUARANTINE_DIR = "quarantine"

log = logging.getLogger(__name__)

# `changes`: one row per new content of a path whose earlier content the catalog knew (a revision),
# made by engine/revision_diff.py after the publish; the declared schema is catalog_store.CHANGES.
CHANGE_COLUMNS = list(TABLES["changes"].schema.names)

# A publish of at most this many files (and no walked folder) reads whole records of their
# partitions only (Catalog._current).
_FEW_FILES = 100

# Quarantine names: `<sha16>-<name>` and `<sha16>-<name>.error.json` must fit a file name.
_QUARANTINE_OVERHEAD = len("0123456789abcdef-") + len(".error.json")
# What an unchanged input's row takes from the run's discovery: written only when it differs.
_IDENTITY = ("sha256", "format", "size", "mtime_ns", "work_id")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class Outcome:
    """The final state of one input in one run."""

    input: InputFile
    work_id: str | None  # None for what discovery could not read
    # processed | reused | unchanged | failed | deferred (its chunk could not run: left as it was
    # recorded, for the next run)
    state: str
    result: dict = field(default_factory=dict)


class Recorded(Mapping[tuple[str, str], FileRecord]):
    """(source_root, path) -> FileRecord over the `files` columns read: a record is made when it
    is looked up, so a publish of one file into a catalog of 100,000 makes a few, not 100,000
    (the columns become Python lists only once many records are asked for)."""

    # Records made from single rows before the whole columns are converted at once.
    _ROWS_ALONE = 512

    def __init__(
        self,
        files: pa.Table,
        memory_mb: int | None = None,
        keys: Iterable[tuple[str, str]] | None = None,
        only: bool = False,
    ) -> None:
        """`keys`: the keys that will be looked up (found at once); `only`: `files` holds the rows
        of those keys alone (not every row): any other key is an error, not a file unknown."""
        self._only = only
        self._files = files.select(list(RECORD_COLUMNS))
        self._columns: dict[str, list[Any]] | None = None
        self._at: dict[tuple[str, str], int] | None = None  # every key's row, made when needed
        self._found: dict[tuple[str, str], int | None] = {}  # the rows of the `keys` looked up at once
        self._memory_mb = memory_mb
        self._made: dict[tuple[str, str], FileRecord] = {}
        self._read_alone: dict[int, dict[str, Any]] = {}  # the values of the rows found by `keys`
        keys = None if keys is None else set(keys)
        if keys is None or (len(keys) > self._ROWS_ALONE and not only):
            # Many lookups (the plan's, a nightly publish's): every row's values at once, as lists.
            self._columns = _as_lists(self._files)
            self._at = {pair: i for i, pair in enumerate(zip(self._columns["source_root"], self._columns["path"]))}
        else:
            self._find(keys)

    def _find(self, keys: set[tuple[str, str]]) -> None:
        """Look `keys` up by Arrow (the paths in the path column), without a Python dict of every row."""
        self._found.update(dict.fromkeys(keys))
        if not keys or not self._files.num_rows:
            return
        rows = pc.indices_nonzero(key_mask(self._files, keys))
        columns = _as_lists(self._files.take(rows))
        for j, i in enumerate(rows.to_pylist()):
            self._found[(columns["source_root"][j], columns["path"][j])] = i
            self._read_alone[i] = {c: column[j] for c, column in columns.items()}

    def _row(self, key: object) -> int | None:
        if self._at is None and key in self._found:
            return self._found[key]  # type: ignore[index]
        if self._at is None and self._only:
            raise LookupError(f"{key!r}: not among the records read")
        return self._every_row().get(key)  # type: ignore[call-overload]

    def _every_row(self) -> dict[tuple[str, str], int]:
        """Each key's row, made on first need (a LookupError when `files` holds only some)."""
        if self._at is None:
            if self._only:
                raise LookupError("not every record was read")
            pairs = zip(self._files["source_root"].to_pylist(), self._files["path"].to_pylist())
            self._at = {pair: i for i, pair in enumerate(pairs)}
        return self._at

    def __getitem__(self, key: tuple[str, str]) -> FileRecord:
        record = self._made.get(key)
        if record is None:
            i = self._row(key)
            if i is None:
                raise KeyError(key)
            record = self._made[key] = self._record(i)
        return record

    def __contains__(self, key: object) -> bool:
        return self._row(key) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._every_row())

    def __len__(self) -> int:
        if self._only:
            raise LookupError("not every record was read")
        return self._files.num_rows

    def _values(self, i: int) -> dict[str, Any]:
        if i in self._read_alone:
            return self._read_alone[i]
        if self._columns is None and len(self._made) < self._ROWS_ALONE:
            row = self._files.slice(i, 1)
            return {c: _times(row[c])[0] if c == "processed_at" else row[c][0].as_py() for c in RECORD_COLUMNS}
        if self._columns is None:
            self._columns = _as_lists(self._files)
        return {c: column[i] for c, column in self._columns.items()}

    def _record(self, i: int) -> FileRecord:
        values = self._values(i)
        permanent = bool(values["error_permanent"])
        failed = values["status"] == "failed"
        retryable = failed and not permanent
        if self._memory_mb is not None and failed and values["error_class"] == "MemoryLimit":
            limit, cap = values["error_limit"], self._memory_mb
            retryable = retryable or cap == 0 or (limit is not None and limit < cap)
        return FileRecord(**{**values, "error_permanent": permanent}, retryable=retryable)


def _as_lists(files: pa.Table) -> dict[str, list[Any]]:
    """The record columns of `files` rows as Python lists (`processed_at` as times)."""
    return {c: _times(files[c]) if c == "processed_at" else files[c].to_pylist() for c in RECORD_COLUMNS}


def _quarantines(files: pa.Table) -> Iterator[tuple[tuple[str, str], str]]:
    """(key, quarantine copy) of the `files` rows that have one."""
    found = pc.indices_nonzero(pc.fill_null(pc.invert(pc.is_null(files["quarantine"])), False))
    roots, paths, copies = (files[c].take(found).to_pylist() for c in ("source_root", "path", "quarantine"))
    for root, path, copy in zip(roots, paths, copies):
        if copy:
            yield (root, path), copy


def maintenance_rule(settings: CatalogSettings) -> MaintenanceRule:
    """The config's `[catalog]` section as the store's maintenance rule."""
    return MaintenanceRule(
        keep_hours=settings.keep_history_days * 24,
        every_hours=settings.maintain_every_hours,
        after_commits=settings.maintain_after_commits,
    )


class Catalog:
    def __init__(self, out: Path | str, maintenance: MaintenanceRule | None = None) -> None:
        self.out = Path(out)
        self.dir = self.out / CATALOG_DIR
        self.store = CatalogStore(self.dir)
        self.maintenance = maintenance or MaintenanceRule()

    def table_path(self, name: str) -> Path:
        """The Delta table's folder (what `delta_scan`, `polars.scan_delta` and `DeltaTable` open)."""
        return self.store.path(name)

    def read(
        self, name: str, columns: Sequence[str] | None = None, where: list[tuple[str, str, Any]] | None = None
    ) -> pd.DataFrame:
        """A table in its declared types (pandas' nullable Int64 and boolean where a column is
        declared integer or flag); every column, also when the table is empty. `where`: as
        CatalogStore.read's (column, ``=`` or ``in``, value) conditions."""
        return self.store.read_pandas(name, columns=columns, where=where)

    def write(self, name: str, frame: pd.DataFrame) -> None:
        """Replace a derived table (bom_rollup, where_used) in one commit."""
        self.store.overwrite(name, _frame_rows(frame))

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive across processes on this machine and on shares with POSIX locks; re-entrant
        within the thread that holds it."""
        with self.store.lock():
            yield

    def append(self, name: str, rows: list[dict], columns: list[str] | None = None) -> None:
        """Add rows to a history table (such as `edits`) in one commit. `columns` is accepted for
        the callers that name them; the table's declared schema decides."""
        if rows:
            self.store.append(name, rows)

    # What a run needs to know before it starts.

    def records(self, memory_mb: int | None = None) -> Recorded:
        """(source_root, path) -> what the catalog records of the file (only the columns a
        run decides by are read). `retryable`: failed for a passing reason, or for lack of
        memory under a cap below `memory_mb` (the cap now in force; 0 = none)."""
        return Recorded(self.store.read("files", columns=list(RECORD_COLUMNS)), memory_mb)

    def known_files(self) -> Recorded:
        """What discovery compares a file's stat with (it trusts only records that name the
        content and format: FileRecord.readable_as_recorded)."""
        return self.records()

    def roots(self) -> list[str]:
        """The source roots the catalog knows files under (text form): they name identities."""
        roots = self.store.read("files", columns=["source_root"])["source_root"]
        return sorted(set(roots.to_pylist()))

    def by_location(self) -> dict[str, FileRecord]:
        """Absolute path (text form) -> the file's record: how the watcher finds a file's record
        whatever root it is known under."""
        return {r.location: r for r in self.records().values()}

    def recorded(self, memory_mb: int | None = None) -> Recorded:
        """As :meth:`records`: what the plan compares discovery with (engine/plan.py)."""
        return self.records(memory_mb)

    def failures(
        self,
        keys: Iterable[tuple[str, str]] | None = None,
        known: set[tuple[str, str]] = frozenset(),  # type: ignore[assignment]
    ) -> list[Failure]:
        """The files recorded as failed (those of `keys` only, if given), sorted by path, with
        when each first failed this way (engine/failures.py); `known`: the keys of known failures."""
        wanted = None if keys is None else set(keys)
        columns = [
            "path",
            "source_root",
            "sha256",
            "status",
            "error_stage",
            "error_class",
            "error_message",
            "error_permanent",
            "quarantine",
            "processed_at",
            "run_id",
        ]
        files = self.store.read("files", columns=columns, where=[("status", "=", "failed")]).to_pylist()
        files = [r for r in files if wanted is None or (r["source_root"], r["path"]) in wanted]
        if not files:
            return []
        where = [("path", "in", sorted({r["path"] for r in files}))]
        errors = self.store.read(
            "errors", columns=["source_root", "path", "sha256", "error_class", "failed_at"], where=where
        ).to_pylist()
        return failures(files, errors, known=known)

    def known_failures(self, outcomes: Sequence[Outcome], run_id: str) -> set[tuple[str, str]]:
        """(source_root, path) of a run's known failures, as the catalog now records them."""
        return known_keys(self.records(), outcomes, run_id)

    def run_of_flow_run(self, flow_run_id: str | None) -> str | None:
        """The run id recorded for a Prefect flow run: a Retry of that flow run is the same run,
        run again, and updates its row instead of adding one."""
        if not flow_run_id:
            return None
        found = self.store.read("runs", columns=["run_id"], where=[("flow_run_id", "=", flow_run_id)])
        return str(found["run_id"][-1]) if found.num_rows else None

    # History, plain files, housekeeping.

    def history(self, name: str = "files", limit: int | None = None) -> list[Version]:
        return self.store.history(name, limit)

    def export(self, folder: Path | str, fmt: str = "parquet", as_of: datetime | None = None) -> list[Path]:
        return self.store.export(folder, fmt, as_of)

    def maintain(self) -> dict[str, dict]:
        return self.store.maintain(self.maintenance)

    def maintain_if_due(self) -> dict[str, dict] | None:
        """Compaction and vacuum when the rule's schedule or size says so (engine/catalog_store.py)."""
        if not self.store.maintenance_due(self.maintenance):
            return None
        report = self.maintain()
        compacted = [name for name, entry in report.items() if "compacted" in entry]
        vacuumed = sum(entry["vacuumed"] for entry in report.values())
        log.info("catalog maintained: %s compacted, %d old files vacuumed", ", ".join(compacted) or "nothing", vacuumed)
        return report

    # Publishing a run.

    def publish(
        self, run: dict, outcomes: list[Outcome], walked_roots: list[str], follow_symlinks: bool = False
    ) -> dict:
        """Record every outcome of a run; return the run row. Safe to repeat.

        `walked_roots` are the folders (text form) this run walked: rows of files below them
        that the run did not see are removed (the files are gone)."""
        with self.lock():
            self.store.open_for_write()  # migrates or upgrades an older catalog
            self._sweep_temporaries()
            current, records = self._current(outcomes, walked_roots)
            self._mark_repeated(records, outcomes)
            outcomes_written = self._not_older_than_recorded(run, outcomes, records)
            failed = [o for o in outcomes_written if o.state == "failed" and not o.result.get("unchanged")]
            quarantined = {id(o): self._quarantine(o, follow_symlinks) for o in failed}
            rows, contents, details = self._changed_rows(run, outcomes_written, records, quarantined)
            removed = self._removed(run, records, outcomes, walked_roots)
            counts = {
                state: sum(o.state == state for o in outcomes)
                for state in ("processed", "reused", "unchanged", "failed", "deferred")
            }
            counts["known_failures"] = len(known_keys(records, outcomes, run["run_id"]))
            counts["new_failures"] = counts["failed"] - counts["known_failures"]
            row = {**run, "finished_at": now_iso(), "files_seen": len(outcomes), **counts}
            self.store.publish(
                Publication(
                    run["run_id"],
                    files=rows,
                    removed=removed,
                    contents=contents,
                    details=details,
                    errors=self._error_rows(run, outcomes, failed, quarantined),
                    run=row,
                ),
                current=current,
            )
            self._prune_quarantine(current, rows, removed)
        self.maintain_if_due()
        return row

    def _current(self, outcomes: list[Outcome], walked_roots: list[str]) -> tuple[pa.Table, Recorded]:
        """What a publish reads of `files`: the columns a write decides by, of every row (for
        CatalogStore.publish: which contents stay referred to), and the records of the outcomes'
        paths. A publish of a few files (the watcher's) reads whole records only in the
        partitions those files are in; one that walked folders needs every record."""
        keys = {o.input.key for o in outcomes}
        if walked_roots or len(keys) > _FEW_FILES:
            current = self.store.read("files", columns=[*RECORD_COLUMNS, PARTITION])
            return current, Recorded(current, keys=keys)
        current = self.store.read("files", columns=[*CURRENT_COLUMNS, "quarantine"])
        rows = current.filter(key_mask(current, keys))
        prefixes = sorted(set(rows[PARTITION].to_pylist()))
        if not prefixes:
            none = TABLES["files"].schema.empty_table().select(list(RECORD_COLUMNS))
            return current, Recorded(none, keys=keys, only=True)
        where = [(PARTITION, "in", prefixes), ("path", "in", sorted(set(rows["path"].to_pylist())))]
        return current, Recorded(
            self.store.read("files", columns=list(RECORD_COLUMNS), where=where), keys=keys, only=True
        )

    def _changed_rows(
        self, run: dict, outcomes: list[Outcome], records: Recorded, quarantined: dict
    ) -> tuple[list[dict], set[str], dict[str, list[dict]]]:
        """The `files` rows this run changes, and the contents (with their detail rows) it
        catalogues. An unchanged input is written only when its stat or identity moved (a file
        touched, a record made before its content was known)."""
        rows: list[dict] = []
        contents: set[str] = set()
        details: dict[str, list[dict]] = {name: [] for name in DETAIL_TABLES}
        kept: list[tuple[Outcome, dict]] = []
        for o in outcomes:
            previous = records.get(o.input.key)
            base = {
                "path": o.input.path,
                "source_root": o.input.source_root,
                "sha256": o.input.sha256,
                "format": o.input.format,
                "size": o.input.size,
                "mtime_ns": o.input.mtime_ns,
                "work_id": o.work_id,
                **_previous_version(previous, o.input.sha256),
            }
            if o.state == "deferred":  # not processed: its record (if any) stays as it was
                continue
            if (o.state == "unchanged" or o.result.get("unchanged")) and previous is not None:
                if any(getattr(previous, k) != base[k] for k in _IDENTITY):
                    kept.append((o, base))
                continue
            row = {
                **base,
                "run_id": run["run_id"],
                "flow_run_id": run.get("flow_run_id"),
                "pipeline_version": run["pipeline_version"],
                "processed_at": now_iso(),
                "attempts": o.result.get("attempt"),
                "duration_ms": o.result.get("duration_ms"),
                "warnings": list(o.result.get("warnings", [])),
            }
            if o.state == "failed":
                row.update(
                    status="failed",
                    outputs=[],
                    error_class=o.result.get("error_class"),
                    error_message=o.result.get("error_message"),
                    error_stage=o.result.get("stage"),
                    error_permanent=bool(o.result.get("permanent")),
                    error_limit=o.result.get("limit"),
                    quarantine=quarantined.get(id(o)),
                )
            else:
                sha, wid = o.input.sha256, o.work_id
                if sha is None or wid is None:  # discovery's failures are the only inputs without them
                    raise ValueError(f"{o.input.path}: an ok outcome without a content hash or work id")
                record = read_result(self.out, wid)
                row.update(
                    {k: v for k, v in record.get("summary", {}).items() if k not in base},
                    status="ok",
                    outputs=[f"outputs/{o.work_id}/{x['file']}" for x in record.get("outputs", [])],
                    warnings=list(record.get("warnings", [])),
                )
                if sha not in contents:
                    contents.add(sha)
                    tables = record.get("tables", {})
                    for name in DETAIL_TABLES:
                        details[name].extend({"sha256": sha, **r} for r in tables.get(name, []))
            rows.append(row)
        if kept:  # their full rows, the identity updated; everything else as recorded
            paths = sorted({o.input.path for o, _ in kept})
            prefixes = {_prefix(records[o.input.key].sha256) for o, _ in kept}
            where = [(PARTITION, "in", sorted(prefixes)), ("path", "in", paths)]
            current = self.store.read("files", where=where).to_pylist()
            by_key = {(r["source_root"], r["path"]): r for r in current}
            rows += [{**by_key[o.input.key], **base} for o, base in kept if o.input.key in by_key]
        return rows, contents, details

    def _not_older_than_recorded(self, run: dict, outcomes: list[Outcome], records: Recorded) -> list[Outcome]:
        """The outcomes to write: not those of a file that another writer recorded in a newer
        state (a later modification time) while this run was working on the one it read: the
        watcher took the file's new version while the nightly batch converted the old one."""
        since = _time(run.get("started_at"))
        keep = []
        for o in outcomes:
            previous = records.get(o.input.key)
            if (
                previous is not None
                and previous.recorded_during(run["run_id"], since)
                and previous.mtime_ns is not None
                and previous.mtime_ns > o.input.mtime_ns
            ):
                continue
            keep.append(o)
        return keep

    def _removed(
        self,
        run: dict,
        records: Recorded,
        outcomes: list[Outcome],
        walked_roots: list[str],
    ) -> list[tuple[str, str]]:
        """Files recorded below a walked folder that this run did not see: they are gone.
        Folders this run could not list keep what the catalog knows below them, and so do files
        another writer recorded while this run was working (they arrived after its walk)."""
        if not walked_roots:
            return []
        since = _time(run.get("started_at"))
        seen = {o.input.key for o in outcomes}
        unlisted = [posixpath.join(*o.input.key) for o in outcomes if o.result.get("stage") == "discover"]
        gone = []
        for key in records:
            if key in seen:
                continue
            where = posixpath.join(*key)
            if not any(inside(where, root) for root in walked_roots) or any(inside(where, u) for u in unlisted):
                continue
            if not records[key].recorded_during(run["run_id"], since):
                gone.append(key)
        return gone

    def _mark_repeated(self, records: Recorded, outcomes: list[Outcome]) -> None:
        """A discovery failure the catalog already records as it is (same class and reason) is
        not news: kept as recorded, like a permanent failure not retried."""
        for o in outcomes:
            if o.state == "failed" and o.result.get("stage") == "discover":
                previous = records.get(o.input.key)
                if previous and (previous.error_stage, previous.error_message) == (
                    "discover",
                    o.result.get("error_message"),
                ):
                    o.result["unchanged"] = True

    def _quarantine(self, o: Outcome, follow_symlinks: bool = False) -> str | None:
        """Copy a failed input and its error report into OUT/quarantine/; the original stays.

        Only the content that failed is copied (checked by its hash while copying), only from a
        regular file (never through a link, unless links are followed), and never more readable
        than the input. Nothing is copied for what discovery could not read."""
        if o.result.get("stage") == "discover" or not o.input.sha256:
            return None
        qdir = self.out / QUARANTINE_DIR
        qdir.mkdir(parents=True, exist_ok=True)
        name = quarantine_name(o.input.sha256, os.path.basename(to_native(o.input.path)), qdir)
        target = qdir / name
        try:
            fd = open_regular(o.input.abs_path, follow_symlinks=follow_symlinks)
        except Exception:
            return None
        with open(fd, "rb") as src:
            mode = mode_no_wider(os.fstat(src.fileno()).st_mode)
            if not target.exists():
                tmp = qdir / f".q-{o.input.sha256[:16]}.tmp-{os.getpid()}"
                digest = hashlib.sha256()
                try:
                    with open(tmp, "wb") as dst:
                        os.fchmod(dst.fileno(), mode)
                        while block := src.read(1 << 20):
                            digest.update(block)
                            dst.write(block)
                    if digest.hexdigest() != o.input.sha256:  # rewritten since it failed: not that content
                        tmp.unlink()
                        return None
                    os.replace(tmp, target)
                except OSError:
                    tmp.unlink(missing_ok=True)
                    return None
        report = {
            "path": o.input.path,
            "source_root": o.input.source_root,
            "sha256": o.input.sha256,
            "format": o.input.format,
            **{k: o.result.get(k) for k in ("stage", "error_class", "error_message", "permanent", "attempt")},
            "traceback": o.result.get("traceback"),
            "failed_at": now_iso(),
        }
        tmp = qdir / f".r-{o.input.sha256[:16]}.tmp-{os.getpid()}"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(json.dumps(clean(report), indent=2, ensure_ascii=False))
        os.replace(tmp, qdir / f"{name}.error.json")
        return f"{QUARANTINE_DIR}/{to_text(name)}"

    def _error_rows(self, run: dict, outcomes: list[Outcome], failed: list[Outcome], quarantined: dict) -> list[dict]:
        """One `errors` row per file this run failed: the run's rows replace its own. Published
        again (a Retry of its flow run), the run keeps the rows of files still failed unchanged,
        and drops those of files it has now processed again."""
        redone = {o.input.key for o in outcomes if not o.result.get("unchanged") and o.state != "deferred"}
        earlier = self.store.read("errors", where=[("run_id", "=", run["run_id"])]).to_pylist()
        kept = [r for r in earlier if (r["source_root"], r["path"]) not in redone]
        return kept + [
            {
                "run_id": run["run_id"],
                "flow_run_id": run.get("flow_run_id"),
                "path": o.input.path,
                "source_root": o.input.source_root,
                "sha256": o.input.sha256,
                "stage": o.result.get("stage"),
                "error_class": o.result.get("error_class"),
                "error_message": o.result.get("error_message"),
                "attempts": o.result.get("attempt"),
                "permanent": bool(o.result.get("permanent")),
                "quarantine": quarantined.get(id(o)),
                "failed_at": now_iso(),
            }
            for o in failed
        ]

    def _sweep_temporaries(self) -> None:
        """Remove half-written files (markers, journals, quarantine copies) of a publisher killed
        mid-write. Only publishers write there, each under the lock we hold, so every temporary
        is abandoned. (Data files of a Delta commit that never happened are vacuumed.)"""
        for folder in (self.dir, self.out / QUARANTINE_DIR):
            for tmp in folder.glob(".*.tmp-*") if folder.is_dir() else []:
                tmp.unlink(missing_ok=True)

    def _prune_quarantine(self, current: pa.Table, rows: list[dict], removed: list[tuple[str, str]]) -> None:
        """Drop quarantine copies no recorded file refers to any more (`current`: the `files`
        table's source_root, path and quarantine before the publish)."""
        qdir = self.out / QUARANTINE_DIR
        if not qdir.is_dir():
            return
        written = {(r["source_root"], r["path"]) for r in rows} | set(removed)
        kept = {r["quarantine"] for r in rows if r.get("quarantine")}
        kept |= {copy for key, copy in _quarantines(current) if key not in written}
        for entry in qdir.iterdir():
            base = to_text(entry.name.removesuffix(".error.json"))
            if not entry.name.startswith(".") and f"{QUARANTINE_DIR}/{base}" not in kept:
                entry.unlink()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _times(column) -> list[datetime | None]:
    """A timestamp[us, UTC] column as datetimes, exactly, in a sixth of pyarrow's time (which
    looks the time zone up for every value: most of the cost of reading the records)."""
    micros = column.cast(pa.int64()).to_pylist()
    return [None if us is None else _EPOCH + timedelta(microseconds=us) for us in micros]


def _time(value) -> datetime | None:
    """A run's ISO 8601 time (or datetime) as an aware datetime; None when missing or naive."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    return value if isinstance(value, datetime) and value.tzinfo is not None else None


def _frame_rows(frame: pd.DataFrame) -> list[dict]:
    """A DataFrame's rows as dicts: pandas' missing values as None, arrays as lists."""
    return [{k: _cell(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _cell(value):
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, np.ndarray):  # a list column's cell
        return value.tolist()
    return None if value is None or pd.isna(value) else value


def _prefix(sha256: str | None) -> str:
    """The `files` partition a content's row is in."""
    return sha256[:1] if sha256 else NO_CONTENT


def _previous_version(prior: FileRecord | None, sha256: str | None) -> dict[str, str | None]:
    """`previous_sha256` and `previous_work_id` of a path now holding `sha256`: the content it
    held before when that differs, else what its record said (unknown content changes nothing)."""
    if prior is None:
        return {"previous_sha256": None, "previous_work_id": None}
    if prior.sha256 is not None and sha256 and prior.sha256 != sha256:
        return {"previous_sha256": prior.sha256, "previous_work_id": prior.work_id}
    return {"previous_sha256": prior.previous_sha256, "previous_work_id": prior.previous_work_id}


def quarantine_name(sha256: str, name: str, folder: Path) -> str:
    """`<sha16>-<name>` (native), the name shortened, keeping its extension, so that it and its
    `.error.json` fit the file system's name limit (a 238-character name would not)."""
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    budget = limit - _QUARANTINE_OVERHEAD
    raw = os.fsencode(name)
    if len(raw) > budget:
        stem, dot, suffix = raw.rpartition(b".")
        suffix = dot + suffix if stem and len(suffix) < 16 else b""
        stem = raw[: len(raw) - len(suffix)]
        raw = stem[: budget - len(suffix) - 1] + b"~" + suffix
    return f"{sha256[:16]}-{os.fsdecode(raw)}"
