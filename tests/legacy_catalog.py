"""cadpipe's catalog writer before issue 14, frozen: one Parquet file per table, every table
rewritten by every publish. Kept to write catalogs as cadpipe wrote them, for the tests of their
migration (tests/e2e/test_catalog_migration.py) and for bench/catalog_scale.py's comparison.

This is engine/catalog.py as of commit a3e8487 (branch house) with main's changes up to commit
4a55531 (branch integrate: the `bom_symbols` table, the `files` columns previous_sha256 and
previous_work_id, CHANGE_COLUMNS of the `changes` table engine/revision_diff.py wrote through
Catalog.write), with the engine helpers it used copied in (read_result, mode_no_wider, inside,
KnownFile), so that it keeps doing what it did while the engine changes. Do not change what it
writes.

The original docstring:

The catalog: Parquet tables under `OUT/catalog/`, the record of every input's latest state.

Each table is one Parquet file that `pandas.read_parquet` and DuckDB read directly. Publishing runs
under an exclusive lock (a nightly batch and a drop-folder run may share an output root), rewrites
each table into a temporary file and renames it into place, detail tables first and `files` last:
a crash between two renames leaves detail rows the next run replaces, never a `files` row that
points at missing details. Detail tables are keyed by content (`sha256`), so a file present under
two paths, or moved, has its details once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from documents.file_access import open_regular
from documents.names import clean, to_native, to_text

CATALOG_DIR = "catalog"
OUTPUTS_DIR = "outputs"
RESULT_FILE = "result.json"


def read_result(out: Path | str, wid: str) -> dict:
    return json.loads((Path(out) / OUTPUTS_DIR / wid / RESULT_FILE).read_text(encoding="utf-8"))


def mode_no_wider(input_mode: int, folder: bool = False) -> int:
    readers = input_mode & 0o044
    return 0o700 | readers | readers >> 2 if folder else 0o600 | readers


@dataclass(frozen=True)
class KnownFile:
    size: int
    mtime_ns: int
    sha256: str
    format: str


def inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


QUARANTINE_DIR = "quarantine"
DETAIL_TABLES = ("layouts", "layers", "entities", "blocks", "texts", "refs", "bom", "bom_symbols")

FILE_COLUMNS = [
    "path",
    "source_root",
    "sha256",
    "format",
    "status",
    "error_class",
    "error_message",
    "error_stage",
    "error_permanent",
    "error_limit",
    "outputs",
    "warnings",
    "quarantine",
    "processed_at",
    "run_id",
    "pipeline_version",
    "work_id",
    "previous_sha256",  # the content this path held before its latest content (engine/revision_diff.py)
    "previous_work_id",  # and that content's work, whose outputs the revision diff compares
    "size",
    "mtime_ns",
    "attempts",
    "duration_ms",
]
RUN_COLUMNS = [
    "run_id",
    "flow_run_id",
    "started_at",
    "finished_at",
    "sources",
    "files_seen",
    "processed",
    "unchanged",
    "failed",
    "reused",
    "pipeline_version",
    "config",
]
ERROR_COLUMNS = [
    "run_id",
    "path",
    "source_root",
    "sha256",
    "stage",
    "error_class",
    "error_message",
    "attempts",
    "permanent",
    "quarantine",
    "failed_at",
]

# `changes`: one row per new content of a path whose earlier content the catalog knew (a revision),
# made by engine/revision_diff.py after the publish; details in OUT/<diff>.
CHANGE_COLUMNS = [
    "run_id",
    "source_root",
    "path",
    "sha256_before",
    "sha256_after",
    "work_id_before",
    "work_id_after",
    "compared",  # bool: both versions' records were there to compare
    "note",  # why not compared, or what could not be (a layout without a vector render)
    "summary",  # one sentence of what changed
    "title_changes",  # JSON {field: [before, after]} of the title-block fields that changed
    "bom_added",
    "bom_removed",
    "bom_changed",
    "layers_added",
    "layers_removed",
    "layers_changed",
    "entity_types_changed",  # (layout, entity type) pairs whose count changed
    "layouts_changed",  # layouts whose overlay shows a difference
    "pixels_removed",
    "pixels_added",
    "diff",  # diff.json (every row and field before and after), relative to OUT
    "overlays",  # list of overlay PNGs, relative to OUT
    "detected_at",
]


# Quarantine names: `<sha16>-<name>` and `<sha16>-<name>.error.json` must fit a file name.
_QUARANTINE_OVERHEAD = len("0123456789abcdef-") + len(".error.json")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class Outcome:
    """The final state of one input in one run."""

    input: Any  # engine.discover.InputFile
    work_id: str | None  # None for what discovery could not read
    state: str  # processed | reused | unchanged | failed
    result: dict = field(default_factory=dict)


class Catalog:
    def __init__(self, out: Path | str) -> None:
        self.out = Path(out)
        self.dir = self.out / CATALOG_DIR

    def table_path(self, name: str) -> Path:
        return self.dir / f"{name}.parquet"

    def read(self, name: str) -> pd.DataFrame:
        path = self.table_path(name)
        return pd.read_parquet(path) if path.exists() else pd.DataFrame()

    def write(self, name: str, frame: pd.DataFrame) -> None:
        """Replace one table atomically; hold `lock()` around read-modify-write."""
        self._write(name, frame)

    def _write(self, name: str, frame: pd.DataFrame) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{name}.parquet.tmp-{os.getpid()}"
        frame.reset_index(drop=True).to_parquet(tmp, index=False)
        os.replace(tmp, self.table_path(name))

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive across processes on this machine and on shares with POSIX locks."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def append(self, name: str, rows: list[dict], columns: list[str]) -> None:
        """Add rows to a history table (such as `edits`) under the lock, rewritten atomically."""
        if not rows:
            return
        with self.lock():
            current = self.read(name)
            added = pd.DataFrame(rows, columns=columns)
            self._write(name, pd.concat([current, added], ignore_index=True) if not current.empty else added)

    # What a run needs to know before it starts.

    def known_files(self) -> dict[tuple[str, str], KnownFile]:
        files = self.read("files")
        if files.empty:
            return {}
        files = files[files["sha256"].notna() & files["size"].notna() & files["format"].notna()]
        return {
            (r.source_root, r.path): KnownFile(int(r.size), int(r.mtime_ns), r.sha256, r.format)
            for r in files[["source_root", "path", "size", "mtime_ns", "sha256", "format"]].itertuples()
        }

    def roots(self) -> list[str]:
        """The source roots the catalog knows files under (text form): they name identities."""
        files = self.read("files")
        return sorted(set(files["source_root"])) if not files.empty else []

    def by_location(self) -> dict[str, dict]:
        """Absolute path (text form) -> the file's row: how the watcher finds a file's record
        whatever root it is known under."""
        files = self.read("files")
        if files.empty:
            return {}
        return {posixpath.join(r["source_root"], r["path"]): r for r in files.to_dict("records")}

    def recorded(self, memory_mb: int | None = None) -> dict[tuple[str, str], tuple[str, str, bool]]:
        """(source_root, path) -> (work_id, status, retryable).

        A file that failed for lack of memory is retryable once `memory_mb` (the cap now in
        force) is above the cap it failed under, or no cap (0)."""
        files = self.read("files")
        if files.empty:
            return {}
        retryable = (files["status"] == "failed") & ~files["error_permanent"].fillna(False).astype(bool)
        if memory_mb is not None and "error_limit" in files.columns:
            limit = pd.to_numeric(files["error_limit"], errors="coerce")
            raised = (files["error_class"] == "MemoryLimit") & ((memory_mb == 0) | (limit < memory_mb))
            retryable |= raised.fillna(False).astype(bool)
        return {
            (r.source_root, r.path): (r.work_id, r.status, bool(flag))
            for r, flag in zip(files[["source_root", "path", "work_id", "status"]].itertuples(), retryable)
        }

    def failures(self, keys: list[tuple[str, str]]) -> list[str]:
        """Error messages of the given inputs that are recorded as failed."""
        files = self.read("files")
        if files.empty:
            return []
        wanted = set(keys)
        failed = files[files["status"] == "failed"]
        return [r.error_message for r in failed.itertuples() if (r.source_root, r.path) in wanted]

    # Publishing a run.

    def publish(
        self, run: dict, outcomes: list[Outcome], walked_roots: list[str], follow_symlinks: bool = False
    ) -> dict:
        """Record every outcome of a run; return the run row. Safe to repeat.

        `walked_roots` are the folders (text form) this run walked: rows of files below them
        that the run did not see are removed (the files are gone)."""
        with self.lock():
            self._sweep_temporaries()
            files = self.read("files")
            fresh = [o for o in outcomes if o.state in ("processed", "reused")]
            self._publish_details(fresh)
            self._mark_repeated(files, outcomes)
            failed = [o for o in outcomes if o.state == "failed" and not o.result.get("unchanged")]
            quarantined = {id(o): self._quarantine(o, follow_symlinks) for o in failed}
            self._append_errors(run, failed, quarantined)
            files = self._merge_files(files, run, outcomes, walked_roots, quarantined)
            self._write("files", files)
            self._prune(files)
            counts = {
                state: sum(o.state == state for o in outcomes)
                for state in ("processed", "reused", "unchanged", "failed")
            }
            row = {**run, "finished_at": now_iso(), "files_seen": len(outcomes), **counts}
            runs = self.read("runs")
            runs = runs[runs["run_id"] != row["run_id"]] if not runs.empty else runs
            self._write("runs", pd.concat([runs, pd.DataFrame([row], columns=RUN_COLUMNS)], ignore_index=True))
            return row

    def _publish_details(self, fresh: list[Outcome]) -> None:
        if not fresh:
            return
        shas = {o.input.sha256 for o in fresh}
        rows: dict[str, list[dict]] = {name: [] for name in DETAIL_TABLES}
        done: set[str] = set()
        for o in fresh:
            if o.input.sha256 in done:
                continue
            done.add(o.input.sha256)
            tables = read_result(self.out, o.work_id).get("tables", {})
            for name in DETAIL_TABLES:
                rows[name].extend({"sha256": o.input.sha256, **r} for r in tables.get(name, []))
        for name in DETAIL_TABLES:
            current = self.read(name)
            if not current.empty:
                current = current[~current["sha256"].isin(shas)]
            added = pd.DataFrame(rows[name])
            if current.empty and added.empty:
                if self.table_path(name).exists():
                    continue
                added = pd.DataFrame(columns=["sha256"])
            self._write(name, pd.concat([current, added], ignore_index=True) if not current.empty else added)

    def _mark_repeated(self, files: pd.DataFrame, outcomes: list[Outcome]) -> None:
        """A discovery failure the catalog already records as it is (same class and reason) is
        not news: kept as recorded, like a permanent failure not retried."""
        if files.empty:
            return
        previous = {(r.source_root, r.path): (r.error_stage, r.error_message) for r in files.itertuples()}
        for o in outcomes:
            if o.state == "failed" and o.result.get("stage") == "discover":
                if previous.get(o.input.key) == ("discover", o.result.get("error_message")):
                    o.result["unchanged"] = True

    def _merge_files(self, files, run, outcomes, walked_roots, quarantined) -> pd.DataFrame:
        seen = {o.input.key for o in outcomes}
        previous = {}
        if not files.empty:
            previous = {(r["source_root"], r["path"]): r for r in files.to_dict("records")}
        # Folders this run could not list: what the catalog knows below them stays as it is.
        unlisted = [posixpath.join(*o.input.key) for o in outcomes if o.result.get("stage") == "discover"]

        def gone(key: tuple[str, str]) -> bool:
            where = posixpath.join(*key)
            return any(inside(where, root) for root in walked_roots) and not any(inside(where, u) for u in unlisted)

        rows = {key: row for key, row in previous.items() if key not in seen and not gone(key)}
        for o in outcomes:
            base = {
                "path": o.input.path,
                "source_root": o.input.source_root,
                "sha256": o.input.sha256,
                "format": o.input.format,
                "size": o.input.size,
                "mtime_ns": o.input.mtime_ns,
                "work_id": o.work_id,
                **_previous_version(previous.get(o.input.key), o.input.sha256),
            }
            if (o.state == "unchanged" or o.result.get("unchanged")) and o.input.key in previous:
                rows[o.input.key] = {**previous[o.input.key], **base}
                continue
            row = {
                **base,
                "run_id": run["run_id"],
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
                record = read_result(self.out, o.work_id)
                row.update(
                    {k: v for k, v in record.get("summary", {}).items() if k not in base},
                    status="ok",
                    outputs=[f"outputs/{o.work_id}/{x['file']}" for x in record.get("outputs", [])],
                    warnings=list(record.get("warnings", [])),
                    error_class=None,
                    error_message=None,
                    error_stage=None,
                    error_permanent=None,
                    error_limit=None,
                    quarantine=None,
                )
            rows[o.input.key] = row
        frame = pd.DataFrame(list(rows.values()))
        ordered = FILE_COLUMNS + sorted(c for c in frame.columns if c not in FILE_COLUMNS)
        return frame.reindex(columns=ordered).sort_values(["source_root", "path"], ignore_index=True)

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

    def _append_errors(self, run: dict, failed: list[Outcome], quarantined: dict) -> None:
        if not failed:
            return
        rows = [
            {
                "run_id": run["run_id"],
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
        errors = self.read("errors")
        if not errors.empty:  # a republished run replaces its own rows
            errors = errors[errors["run_id"] != run["run_id"]]
        added = pd.DataFrame(rows, columns=ERROR_COLUMNS)
        self._write("errors", pd.concat([errors, added], ignore_index=True) if not errors.empty else added)

    def _sweep_temporaries(self) -> None:
        """Remove half-written tables and quarantine copies of a publisher killed mid-write. Only
        publishers write there, each under the lock we hold, so every temporary is abandoned."""
        for folder in (self.dir, self.out / QUARANTINE_DIR):
            for tmp in folder.glob(".*.tmp-*") if folder.is_dir() else []:
                tmp.unlink(missing_ok=True)

    def _prune(self, files: pd.DataFrame) -> None:
        """Drop detail rows and quarantine copies no recorded file refers to any more."""
        live = set(files.loc[files["status"] == "ok", "sha256"]) if not files.empty else set()
        for name in DETAIL_TABLES:
            path = self.table_path(name)
            if not path.exists():
                continue
            keys = pd.read_parquet(path, columns=["sha256"])["sha256"]  # cheap: one column
            if not keys.isin(live).all():
                table = self.read(name)
                self._write(name, table[table["sha256"].isin(live)])
        qdir = self.out / QUARANTINE_DIR
        if qdir.is_dir():
            kept = set(files["quarantine"].dropna()) if not files.empty else set()
            for entry in qdir.iterdir():
                base = to_text(entry.name.removesuffix(".error.json"))
                if not entry.name.startswith(".") and f"{QUARANTINE_DIR}/{base}" not in kept:
                    entry.unlink()


def _previous_version(prior: dict | None, sha256: str | None) -> dict:
    """`previous_sha256` and `previous_work_id` of a path now holding `sha256`: the content it
    held before when that differs, else what its row said (unknown content changes nothing)."""
    if prior is None:
        return {"previous_sha256": None, "previous_work_id": None}
    before = _text_or_none(prior.get("sha256"))
    if before is not None and sha256 and before != sha256:
        return {"previous_sha256": before, "previous_work_id": _text_or_none(prior.get("work_id"))}
    return {
        "previous_sha256": _text_or_none(prior.get("previous_sha256")),
        "previous_work_id": _text_or_none(prior.get("previous_work_id")),
    }


def _text_or_none(value) -> str | None:
    return value if isinstance(value, str) else None  # NaN and None of a missing cell


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
