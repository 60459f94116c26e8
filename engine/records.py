"""What the catalog records of one input, as discovery, the plan and the watcher look it up.

A `FileRecord` is the part of a `files` row (engine/catalog_store.py) that decides what a run
does with a path: skip re-hashing it (same size and modification time), leave it alone (same work
identity, done or failed for good), or try it again. Imports nothing of the pipeline, so every
engine module may use it.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, fields
from datetime import datetime


@dataclass(frozen=True)
class FileRecord:
    """One input's latest recorded state: its `files` row's identity, stat and outcome."""

    source_root: str  # text form of the folder the file is known under
    path: str  # below it, POSIX, text form
    status: str  # ok | failed
    work_id: str | None = None  # None for what discovery could not read
    sha256: str | None = None
    format: str | None = None
    size: int | None = None
    mtime_ns: int | None = None
    error_class: str | None = None
    error_stage: str | None = None
    error_message: str | None = None
    error_permanent: bool = False
    error_limit: float | None = None  # the limit a failure hit: timeout_s (Timeout), memory_mb (MemoryLimit)
    quarantine: str | None = None
    processed_at: datetime | None = None  # when the row was last written by a run that processed it
    run_id: str | None = None  # that run
    # The content the path held before its latest one, and that content's work: what the
    # revision diff (engine/revision_diff.py) compares; kept as recorded while the content stays.
    previous_sha256: str | None = None
    previous_work_id: str | None = None
    # A failure another attempt may pass: not permanent (a timeout, an I/O error), or a
    # MemoryLimit under a cap lower than the one asked about (Catalog.recorded(memory_mb)).
    retryable: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.source_root, self.path)

    @property
    def location(self) -> str:
        """The absolute path (text form), whatever root the file is known under."""
        return posixpath.join(self.source_root, self.path)

    def same_stat(self, size: int, mtime_ns: int) -> bool:
        """The file's stat is as recorded (a record without one, of an entry discovery could not
        stat, matches any: there is nothing newer to compare)."""
        return self.size is None or (self.size, self.mtime_ns) == (size, mtime_ns)

    def recorded_during(self, run_id: str, since: datetime | None) -> bool:
        """Written by another run since `since` (this run's start): a concurrent writer (the
        watcher beside a nightly batch) recorded it while this run was working."""
        return (
            since is not None and self.run_id != run_id and self.processed_at is not None and self.processed_at >= since
        )

    def readable_as_recorded(self) -> bool:
        """The record names the content and format discovery may take on a matching stat."""
        return None not in (self.sha256, self.format, self.size, self.mtime_ns)


# The `files` columns a record is read from, in the order of its fields (Catalog reads them so).
RECORD_COLUMNS = tuple(f.name for f in fields(FileRecord) if f.name != "retryable")
