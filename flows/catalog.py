"""The catalog: Parquet tables under `OUT/catalog/`, the record of every input's latest state.

Each table is one Parquet file that `pandas.read_parquet` and DuckDB read directly. Publishing runs
under an exclusive lock (a nightly batch and a drop-folder run may share an output root), rewrites
each table into a temporary file and renames it into place, detail tables first and `files` last:
a crash between two renames leaves detail rows the next run replaces, never a `files` row that
points at missing details. Detail tables are keyed by content (`sha256`), so a file present under
two paths, or moved, has its details once.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import pandas as pd

from flows.discover import InputFile, KnownFile
from flows.work import read_result

CATALOG_DIR = "catalog"
QUARANTINE_DIR = "quarantine"
DETAIL_TABLES = ("layouts", "layers", "entities", "blocks", "texts", "refs", "bom")

FILE_COLUMNS = [
    "path", "source_root", "sha256", "format", "status", "error_class", "error_message", "error_stage",
    "error_permanent",
    "outputs", "warnings", "quarantine", "processed_at", "run_id", "pipeline_version", "work_id",
    "size", "mtime_ns", "attempts", "duration_ms",
]  # fmt: skip
RUN_COLUMNS = [
    "run_id", "flow_run_id", "started_at", "finished_at", "sources", "files_seen", "processed",
    "unchanged", "failed", "reused", "pipeline_version", "config",
]  # fmt: skip
ERROR_COLUMNS = [
    "run_id", "path", "source_root", "sha256", "stage", "error_class", "error_message", "attempts",
    "permanent", "quarantine", "failed_at",
]  # fmt: skip


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class Outcome:
    """The final state of one input in one run."""

    input: InputFile
    work_id: str
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
        return {
            (r.source_root, r.path): KnownFile(int(r.size), int(r.mtime_ns), r.sha256, r.format)
            for r in files[["source_root", "path", "size", "mtime_ns", "sha256", "format"]].itertuples()
        }

    def recorded(self) -> dict[tuple[str, str], tuple[str, str, bool]]:
        """(source_root, path) -> (work_id, status, retryable)."""
        files = self.read("files")
        if files.empty:
            return {}
        retryable = (files["status"] == "failed") & ~files["error_permanent"].fillna(False).astype(bool)
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

    def publish(self, run: dict, outcomes: list[Outcome], walked_roots: list[str]) -> dict:
        """Record every outcome of a run; return the run row. Safe to repeat."""
        with self.lock():
            self._sweep_temporaries()
            files = self.read("files")
            fresh = [o for o in outcomes if o.state in ("processed", "reused")]
            self._publish_details(fresh)
            failed = [o for o in outcomes if o.state == "failed" and not o.result.get("unchanged")]
            quarantined = {id(o): self._quarantine(o) for o in failed}
            self._append_errors(run, failed, quarantined)
            files = self._merge_files(files, run, outcomes, walked_roots, quarantined)
            self._write("files", files)
            self._prune(files)
            counts = {state: sum(o.state == state for o in outcomes) for state in ("processed", "reused", "unchanged", "failed")}
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

    def _merge_files(self, files, run, outcomes, walked_roots, quarantined) -> pd.DataFrame:
        seen = {o.input.key for o in outcomes}
        previous = {}
        if not files.empty:
            previous = {(r["source_root"], r["path"]): r for r in files.to_dict("records")}
        rows = {key: row for key, row in previous.items() if key not in seen and key[0] not in walked_roots}
        for o in outcomes:
            base = {
                "path": o.input.path,
                "source_root": o.input.source_root,
                "sha256": o.input.sha256,
                "format": o.input.format,
                "size": o.input.size,
                "mtime_ns": o.input.mtime_ns,
                "work_id": o.work_id,
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
                    quarantine=None,
                )
            rows[o.input.key] = row
        frame = pd.DataFrame(list(rows.values()))
        ordered = FILE_COLUMNS + sorted(c for c in frame.columns if c not in FILE_COLUMNS)
        return frame.reindex(columns=ordered).sort_values(["source_root", "path"], ignore_index=True)

    def _quarantine(self, o: Outcome) -> str | None:
        """Copy a failed input and its error report into OUT/quarantine/; the original stays."""
        qdir = self.out / QUARANTINE_DIR
        qdir.mkdir(parents=True, exist_ok=True)
        name = f"{o.input.sha256[:16]}-{Path(o.input.path).name}"
        target = qdir / name
        try:
            if not target.exists():
                tmp = qdir / f".{name}.tmp-{os.getpid()}"
                shutil.copyfile(o.input.abs_path, tmp)
                os.replace(tmp, target)
        except OSError:
            return None  # the input vanished or is unreadable: the error report still says why
        report = {
            "path": o.input.path,
            "source_root": o.input.source_root,
            "sha256": o.input.sha256,
            "format": o.input.format,
            **{k: o.result.get(k) for k in ("stage", "error_class", "error_message", "permanent", "attempt")},
            "traceback": o.result.get("traceback"),
            "failed_at": now_iso(),
        }
        tmp = qdir / f".{name}.error.json.tmp-{os.getpid()}"
        tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, qdir / f"{name}.error.json")
        return f"{QUARANTINE_DIR}/{name}"

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
                base = entry.name.removesuffix(".error.json")
                if not entry.name.startswith(".") and f"{QUARANTINE_DIR}/{base}" not in kept:
                    entry.unlink()

