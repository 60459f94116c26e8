"""Failures told apart: news for the person who reads the run in the morning, or known already.

A failure is **known** when the catalog recorded it in an earlier run and nothing that could change
it has changed since: the same content, options and pipeline version (a permanent failure that is
therefore not tried again, engine/plan.py), or the same discovery failure for the same reason.
Every other failure is **new**: the file failed in this run. A retry of the same flow run is the
same run, so what it failed with the first time is still new.

`[run] fail_on` says which failures make a run fail (exit 1, flow run Failed, `batch.failed`):
`"new"` (the default: red only for news) or `"any"`. Known failures are always counted and shown
("1 known failure"), and `cadpipe failures` lists every current failure with its age.

Files of a chunk that could not run (an orchestration fault, not the files' fault) are neither:
they are **deferred**, left unrecorded for the next run, and the run is incomplete (exit 3).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

FAIL_ON = ("new", "any")
SHOWN = 5  # failures named in a one-line message (state message, summary line); the rest counted


class _Outcome(Protocol):  # engine.catalog.Outcome, without importing the catalog (it imports us)
    state: str
    result: dict

    @property
    def input(self) -> Any: ...


@dataclass(frozen=True)
class Failure:
    """One file recorded as failed, as the catalog has it."""

    path: str
    source_root: str
    sha256: str | None
    stage: str | None
    error_class: str | None
    error_message: str
    permanent: bool
    quarantine: str | None
    known: bool  # failed before this run and unchanged since
    since: str | None  # when it first failed this way (ISO 8601, UTC)
    run_id: str | None  # the run that recorded it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Recorded(Protocol):  # engine.records.FileRecord: what the catalog records of a file
    run_id: str | None


def known_keys(
    recorded: Mapping[tuple[str, str], _Recorded], outcomes: Iterable[_Outcome], run_id: str
) -> set[tuple[str, str]]:
    """(source_root, path) of this run's known failures. `recorded`: the catalog's records
    (Catalog.records()) before or after publishing: a known failure keeps the row of the run
    that recorded it."""
    known = set()
    for o in outcomes:
        if o.state == "failed" and o.result.get("unchanged"):
            record = recorded.get(o.input.key)
            if record is not None and record.run_id not in (None, run_id):
                known.add(o.input.key)
    return known


def _value(value: Any) -> Any:
    """A catalog value as JSON has it: missing as None, a time as ISO 8601 text (UTC)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds")
    return value


def _first_failed(errors: Iterable[Mapping[str, Any]]) -> dict[tuple, str]:
    """(source_root, path, sha256, error_class) -> the earliest `failed_at` in the errors rows."""
    first: dict[tuple, str] = {}
    for row in errors:
        key = (row["source_root"], row["path"], row["sha256"], row["error_class"])
        failed_at = _value(row["failed_at"])
        if failed_at and (key not in first or failed_at < first[key]):
            first[key] = failed_at
    return first


def failures(
    files: Iterable[Mapping[str, Any]],
    errors: Iterable[Mapping[str, Any]],
    keys: set[tuple[str, str]] | None = None,
    known: set[tuple[str, str]] = frozenset(),  # type: ignore[assignment]
) -> list[Failure]:
    """The failed ones of `files` rows (those of `keys` only, if given), sorted by path; `errors`
    rows say since when each has failed this way. Catalog.failures reads both from the catalog."""
    first = _first_failed(errors)
    found = []
    for row in files:
        if row["status"] != "failed":
            continue
        key = (row["source_root"], row["path"])
        if keys is not None and key not in keys:
            continue
        row = {k: _value(v) for k, v in row.items()}
        since = first.get((row["source_root"], row["path"], row["sha256"], row["error_class"]))
        found.append(
            Failure(
                path=row["path"],
                source_root=row["source_root"],
                sha256=row["sha256"],
                stage=row["error_stage"],
                error_class=row["error_class"],
                error_message=row["error_message"] or f"{row['path']}: failed",
                permanent=bool(row["error_permanent"]),
                quarantine=row["quarantine"],
                known=key in known,
                since=since or row.get("processed_at"),
                run_id=row["run_id"],
            )
        )
    return sorted(found, key=lambda f: (f.source_root, f.path))


@dataclass(frozen=True)
class Verdict:
    """What a finished run says: its failures, which of them count, and its exit code."""

    fail_on: str
    new: tuple[Failure, ...] = ()
    known: tuple[Failure, ...] = ()
    deferred: int = 0  # files of chunks that could not run: left for the next run
    deferred_reason: str | None = None

    @classmethod
    def of(
        cls,
        fail_on: str,
        found: list[Failure],
        deferred: int = 0,
        deferred_reason: str | None = None,
    ) -> Verdict:
        return cls(
            fail_on,
            tuple(f for f in found if not f.known),
            tuple(f for f in found if f.known),
            deferred,
            deferred_reason,
        )

    @property
    def counted(self) -> tuple[Failure, ...]:
        """The failures that make this run fail, per `fail_on`."""
        return self.new if self.fail_on == "new" else self.new + self.known

    @property
    def failed(self) -> bool:
        return bool(self.counted) or self.incomplete

    @property
    def incomplete(self) -> bool:
        return self.deferred > 0

    @property
    def exit_code(self) -> int:
        """0 ok, 1 a file failed (per fail_on), 3 part of the batch could not run."""
        return 3 if self.incomplete else 1 if self.counted else 0

    def message(self, counts: dict[str, Any]) -> str:
        """One line: the counts, then what failed (the first few by name), then known failures."""
        text = (
            f"{counts['files_seen']} files: {counts['processed']} processed, "
            f"{counts['reused'] + counts['unchanged']} unchanged, {counts['failed']} failed"
        )
        if self.new:
            text += f"; failed in this run: {_named(self.new)}"
        if self.known:
            text += f"; {plural(len(self.known), 'known failure')} (failed before, unchanged)"
            if self.fail_on == "any":
                text += f": {_named(self.known)}"
        if self.deferred:
            text += f"; {plural(self.deferred, 'file')} not processed, left for the next run"
            if self.deferred_reason:
                text += f" ({self.deferred_reason})"
        return text


def _named(found: tuple[Failure, ...]) -> str:
    text = "; ".join(f.error_message for f in found[:SHOWN])
    return text + (f"; and {len(found) - SHOWN} more" if len(found) > SHOWN else "")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def age(since: str | None, now: datetime | None = None) -> str:
    """How long ago an ISO 8601 time was, for people: `40 s`, `12 min`, `5 h`, `3 days`."""
    if not since:
        return "?"
    try:
        then = datetime.fromisoformat(since)
    except ValueError:
        return "?"
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    seconds = max(0.0, ((now or datetime.now(UTC)) - then).total_seconds())
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            value = int(seconds // size)
            return plural(value, unit) if unit == "day" else f"{value} {unit}"
    return f"{int(seconds)} s"
