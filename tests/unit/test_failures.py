"""New and known failures (engine/failures.py), on catalog rows as publishing leaves them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from engine.catalog import Catalog
from engine.catalog_store import Publication
from engine.failures import Failure, Verdict, age, failures, known_keys
from engine.records import FileRecord


@dataclass
class Item:
    key: tuple[str, str]


@dataclass
class Outcome:
    input: Item
    state: str
    result: dict = field(default_factory=dict)


T0 = datetime(2026, 1, 1, tzinfo=UTC)


def files_rows(*rows: dict) -> list[dict]:
    """`files` rows as the catalog reads them (times as datetimes)."""
    base = {
        "source_root": "/lib",
        "sha256": "s",
        "status": "failed",
        "error_stage": "load",
        "error_class": "InputError",
        "error_permanent": True,
        "quarantine": None,
        "processed_at": T0,
    }
    return [{**base, **row} for row in rows]


def test_a_failure_recorded_by_an_earlier_run_and_unchanged_is_known():
    rows = files_rows(
        {"path": "old.dxf", "run_id": "r1", "error_message": "old.dxf: load: bad"},
        {"path": "new.dxf", "run_id": "r2", "error_message": "new.dxf: load: bad"},
        {"path": "retried.dxf", "run_id": "r2", "error_message": "retried.dxf: load: bad"},
    )
    recorded = {
        (r["source_root"], r["path"]): FileRecord(r["source_root"], r["path"], "failed", run_id=r["run_id"])
        for r in rows
    }
    outcomes = [
        Outcome(Item(("/lib", "old.dxf")), "failed", {"unchanged": True}),  # not retried: permanent, unchanged
        Outcome(Item(("/lib", "new.dxf")), "failed", {}),  # failed in this run
        # failed in an earlier attempt of this same run (a Retry of its flow run): still news
        Outcome(Item(("/lib", "retried.dxf")), "failed", {"unchanged": True}),
    ]
    assert known_keys(recorded, outcomes, "r2") == {("/lib", "old.dxf")}


def test_failures_carry_since_from_the_errors_table():
    files = files_rows({"path": "a.dxf", "run_id": "r2", "error_message": "a.dxf: load: bad"})
    errors = [
        {"source_root": "/lib", "path": "a.dxf", "sha256": "s", "error_class": "InputError", "failed_at": t}
        for t in (T0 + timedelta(days=1), T0)
    ] + [
        {
            "source_root": "/lib",
            "path": "a.dxf",
            "sha256": "x",
            "error_class": "InputError",
            "failed_at": T0 - timedelta(days=300),
        }
    ]
    [found] = failures(files, errors, known={("/lib", "a.dxf")})
    assert found.known and found.since == "2026-01-01T00:00:00.000+00:00", "the other content's failure is not its age"


def test_the_catalog_reads_failures_and_flow_runs_through_its_store(tmp_path):
    """Catalog.failures and run_of_flow_run read the Delta tables (engine/catalog_store.py)."""
    catalog = Catalog(tmp_path)
    failed = {
        "path": "a.dxf",
        "source_root": "/lib",
        "sha256": "a" * 64,
        "status": "failed",
        "error_class": "InputError",
        "error_message": "a.dxf: load: bad",
        "error_stage": "load",
        "error_permanent": True,
        "run_id": "r1",
        "flow_run_id": "f1",
        "processed_at": T0,
    }
    error = {k: failed[k] for k in ("run_id", "flow_run_id", "path", "source_root", "sha256", "error_class")}
    run = {"run_id": "r1", "flow_run_id": "f1", "attempt": 1, "new_failures": 1, "known_failures": 0, "deferred": 0}
    with catalog.lock():
        catalog.store.open_for_write()
        catalog.store.publish(
            Publication(
                "r1",
                files=[failed, {**failed, "path": "b.dxf", "status": "ok", "sha256": "b" * 64}],
                errors=[{**error, "failed_at": T0}],
                run=run,
            )
        )
    [found] = catalog.failures()
    assert (found.path, found.known, found.since, found.run_id) == (
        "a.dxf",
        False,
        "2026-01-01T00:00:00.000+00:00",
        "r1",
    )
    assert catalog.failures([("/lib", "b.dxf")]) == []
    assert catalog.run_of_flow_run("f1") == "r1" and catalog.run_of_flow_run("f2") is None
    [row] = catalog.read("runs").to_dict("records")
    assert (row["attempt"], row["new_failures"], row["deferred"]) == (1, 1, 0)


def failure(path: str, known: bool) -> Failure:
    return Failure(path, "/lib", "s", "load", "InputError", f"{path}: load: bad", True, None, known, None, "r1")


def test_the_verdict_counts_what_fail_on_says():
    known, new = failure("old.dxf", True), failure("new.dxf", False)
    counts = {"files_seen": 3, "processed": 1, "reused": 0, "unchanged": 1, "failed": 2}
    assert Verdict.of("new", [known]).exit_code == 0 and not Verdict.of("new", [known]).failed
    assert Verdict.of("any", [known]).exit_code == 1
    assert Verdict.of("new", [known, new]).exit_code == 1
    assert Verdict.of("new", [], deferred=4, deferred_reason="worker lost").exit_code == 3
    message = Verdict.of("new", [known, new]).message(counts)
    assert message == (
        "3 files: 1 processed, 1 unchanged, 2 failed; failed in this run: new.dxf: load: bad; "
        "1 known failure (failed before, unchanged)"
    )
    many = [failure(f"f{i}.dxf", False) for i in range(7)]
    assert Verdict.of("new", many).message(counts).endswith("f4.dxf: load: bad; and 2 more")


def test_age_reads_for_people():
    now = datetime(2026, 1, 10, tzinfo=UTC)
    assert age((now - timedelta(seconds=40)).isoformat(), now) == "40 s"
    assert age((now - timedelta(minutes=12)).isoformat(), now) == "12 min"
    assert age((now - timedelta(hours=5)).isoformat(), now) == "5 h"
    assert age((now - timedelta(days=1)).isoformat(), now) == "1 day"
    assert age((now - timedelta(days=3, hours=2)).isoformat(), now) == "3 days"
    assert age(None, now) == "?" and age("not a time", now) == "?"
