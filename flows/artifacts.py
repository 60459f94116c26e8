"""Prefect artifacts of a run: a progress bar while it runs, then a markdown summary, a table of
its failures and a table of the library's BOM roll-up (both bounded: the catalog has all rows).

Keys are fixed, so the Prefect UI shows each artifact's history across runs under one name.
The progress artifact listens to flows.progress and is updated at most every ~2 s or 5 %, not
per file: a run of 10,000 files must not send 10,000 updates to the server.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pandas as pd
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from documents.contracts import FileOutcome
from engine.catalog import Catalog, Outcome
from engine.rollups import WHERE_USED_TABLE
from flows import prefect_api, progress

PROGRESS_KEY = "cadpipe-progress"
SUMMARY_KEY = "cadpipe-run-summary"
FAILURES_KEY = "cadpipe-failures"
ROLLUP_KEY = "cadpipe-bom-rollup"
FAILURE_ROWS = 200
ROLLUP_ROWS = 100
SUMMARY_FAILURES = 50  # named with their reasons in the summary (the failures table has more)

log = logging.getLogger("cadpipe.artifacts")


@dataclass
class Throttle:
    """When a progress value is worth sending: the first one, 100 %, and after that only when it
    moved `min_step` points or `min_interval_s` passed since the last one sent."""

    min_interval_s: float = 2.0
    min_step: float = 5.0
    last_value: float | None = None
    last_time: float = 0.0

    def due(self, value: float, now: float) -> bool:
        if self.last_value is None:
            return True
        if value == self.last_value:
            return False
        return value >= 100.0 or value - self.last_value >= self.min_step or now - self.last_time >= self.min_interval_s

    def sent(self, value: float, now: float) -> None:
        self.last_value, self.last_time = value, now


class ProgressReporter:
    """A flows.progress listener keeping one Prefect progress artifact current.

    `planned` (called in the flow) creates the artifact, linked to the flow run; `file_done` may
    be called from any chunk thread and only counts: a background thread sends the updates, so a
    slow or vanished API server (each call retried for a minute) never holds up a file, and no
    lock is held while it is called. A failed update is logged and the run goes on: a progress
    bar is not worth a file's result.
    """

    FINISH_WAIT_S = 10.0  # the final value is worth this much of the run's end, not more

    def __init__(
        self, key: str = PROGRESS_KEY, throttle: Throttle | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.key = key
        self.throttle = throttle or Throttle()
        self.clock = clock
        self.artifact_id: UUID | None = None
        self.total = 0
        self.done = 0
        self._changes = threading.Condition()  # guards the counters below; never held across a call
        self._counted = 0  # file_done calls so far
        self._handled = 0  # ... of which the sender has looked at
        self._closing = False
        self._sender: threading.Thread | None = None

    @property
    def percent(self) -> float:
        return 100.0 if self.total <= 0 else round(min(self.done, self.total) * 100.0 / self.total, 1)

    def description(self) -> str:
        return f"{min(self.done, self.total)} of {self.total} files done"

    def planned(self, total: int, todo: int) -> None:
        with self._changes:
            self.total, self.done = total, 0
            self.throttle = Throttle(self.throttle.min_interval_s, self.throttle.min_step)
        if not prefect_api.reachable():  # creating it would be retried for a minute
            log.warning("progress artifact %s not created: %s", self.key, prefect_api.lost_message())
            return
        try:
            self.artifact_id = prefect_api.synchronous(
                create_progress_artifact(self.percent, key=self.key, description=self.description())
            )
        except Exception as exc:
            log.warning("progress artifact %s not created: %s", self.key, exc)
            return
        self.throttle.sent(self.percent, self.clock())
        if self._sender is None:  # the sender talks to the same API as this flow (its settings)
            context = contextvars.copy_context()
            self._sender = threading.Thread(
                target=context.run, args=(self._send_loop,), daemon=True, name=f"progress-{self.key}"
            )
            self._sender.start()

    def file_done(self, path: str, outcome: FileOutcome | None) -> None:
        with self._changes:
            self.done += 1
            self._counted += 1
            self._changes.notify_all()

    def flush(self) -> None:
        """Wait until the sender has dealt with every file counted so far."""
        with self._changes:
            sender = self._sender
            if sender is not None:
                self._changes.wait_for(lambda: self._handled == self._counted or not sender.is_alive())

    def finish(self) -> None:
        """Send the final value, whatever the throttle says; wait for it at most FINISH_WAIT_S."""
        with self._changes:
            self._closing = True
            self._changes.notify_all()
        if self._sender is not None:
            self._sender.join(self.FINISH_WAIT_S)

    def _send_loop(self) -> None:
        while True:
            with self._changes:
                self._changes.wait_for(lambda: self._handled != self._counted or self._closing)
                counted, final = self._counted, self._closing and self._handled == self._counted
                value, description = self.percent, self.description()
            now = self.clock()
            if final or self.throttle.due(value, now):
                self._send(value, description, now)
            with self._changes:
                self._handled = counted
                self._changes.notify_all()
            if final:
                return

    def _send(self, value: float, description: str, now: float) -> None:
        if self.artifact_id is None:  # not created: nothing to update (the sender starts after it is)
            return
        try:
            update_progress_artifact(self.artifact_id, value, description=description)
        except Exception as exc:
            log.warning("progress artifact %s not updated to %.1f %%: %s", self.key, value, exc)
            return
        self.throttle.sent(value, now)


_tracking_lock = threading.Lock()
_tracking: Callable[[], None] | None = None


def track_progress(key: str = PROGRESS_KEY) -> Callable[[], None]:
    """Subscribe a ProgressReporter for one batch; the returned function sends the final value and
    unsubscribes it. A reporter left subscribed by a run that raised is dropped here, so it never
    reports the next run of this process."""
    global _tracking
    reporter = ProgressReporter(key)
    with _tracking_lock:
        if _tracking is not None:
            _tracking()
        unsubscribe = progress.subscribe(reporter)

        def stop() -> None:
            global _tracking
            unsubscribe()
            with _tracking_lock:
                if _tracking is unsubscribe:
                    _tracking = None
            reporter.finish()

        _tracking = unsubscribe
    return stop


def create_run_artifacts(out: Path | str, summary: dict, outcomes: list[Outcome]) -> dict[str, UUID]:
    """The summary, failures and BOM roll-up artifacts of a finished run; returns key -> id."""
    catalog = Catalog(out)
    failures = failure_rows(catalog, outcomes, summary["run_id"])
    rollup = rollup_rows(catalog.read(WHERE_USED_TABLE))
    ids = {
        SUMMARY_KEY: create_markdown_artifact(
            summary_markdown(summary, failures, len(rollup)),
            key=SUMMARY_KEY,
            description=f"cadpipe run {summary['run_id']}",
        ),
        FAILURES_KEY: create_table_artifact(
            failures[:FAILURE_ROWS],
            key=FAILURES_KEY,
            description=_bounded("failed files of this run", len(failures), FAILURE_ROWS),
        ),
        ROLLUP_KEY: create_table_artifact(
            rollup[:ROLLUP_ROWS],
            key=ROLLUP_KEY,
            description=_bounded("part numbers of the library by drawings using them", len(rollup), ROLLUP_ROWS),
        ),
    }
    return {key: prefect_api.synchronous(created) for key, created in ids.items()}


def failure_rows(catalog: Catalog, outcomes: list[Outcome], run_id: str | None = None) -> list[dict[str, Any]]:
    """This run's failed inputs, as recorded in the catalog, sorted by path: new ones first, then
    those `known` (recorded by an earlier run, unchanged since: engine/failures.py)."""
    keys = {o.input.key for o in outcomes if o.state == "failed"}
    if not keys:
        return []
    known = catalog.known_failures(outcomes, run_id) if run_id else set()
    rows = [
        {
            "path": f.path,
            "stage": f.stage,
            "error": f.error_class,
            "reason": f.error_message,
            "permanent": f.permanent,
            "known": f.known,
            "quarantine": f.quarantine,
        }
        for f in catalog.failures(keys, known)
    ]
    return sorted(rows, key=lambda r: (r["known"], r["path"]))


def rollup_rows(where_used: pd.DataFrame) -> list[dict[str, Any]]:
    if where_used.empty:
        return []
    columns = ["part_number", "description", "drawings", "total_qty", "unit", "qty_unknown"]
    frame = where_used[columns].astype(object).where(where_used[columns].notna(), None)
    return frame.to_dict("records")


def summary_markdown(summary: dict, failures: list[dict], part_numbers: int) -> str:
    """The run's story for the person reading it in Prefect's UI: the verdict, the counts, and
    every failure of this run by name with its reason (known ones apart)."""
    out = Path(summary["out"])
    names = ("files_seen", "processed", "reused", "unchanged", "failed")
    counts = [summary.get(k, 0) for k in names]
    lines = [f"# cadpipe run {md(summary['run_id'])}", ""]
    if summary.get("message"):
        lines += [md(summary["message"]), ""]
    lines += [
        "| files | processed | reused | unchanged | failed |",
        "|---:|---:|---:|---:|---:|",
        "| " + " | ".join(str(c) for c in counts) + " |",
        "",
        f"- Output root: {md(str(out))}",
        f"- Batch report: {md(str(out / 'docs' / 'index.html'))}",
        f"- Gallery of every drawing: {md(str(out / 'docs' / 'gallery.html'))}",
        f"- Part numbers in the library: {part_numbers} (table artifact `{ROLLUP_KEY}`)",
    ]
    changes = summary.get("changes") or []
    if changes:
        lines += ["", f"## {len(changes)} changed since their last version", ""]
        lines += [f"- {md(c['path'])}: {md(str(c['summary']))}" for c in changes[:SUMMARY_FAILURES]]
        if len(changes) > SUMMARY_FAILURES:
            lines.append(f"- and {len(changes) - SUMMARY_FAILURES} more")
    new = [f for f in failures if not f.get("known")]
    known = [f for f in failures if f.get("known")]
    if new:
        lines += ["", f"## {len(new)} failed in this run (table artifact `{FAILURES_KEY}`)", ""]
        lines += _listed(new)
    if known:
        noun = "known failure" if len(known) == 1 else "known failures"
        lines += ["", f"## {len(known)} {noun}: failed before, unchanged since (not news)", ""]
        lines += _listed(known)
    if summary.get("deferred"):
        lines += ["", f"## {summary['deferred']} not processed: left for the next run", ""]
    return "\n".join(lines) + "\n"


def _listed(failures: list[dict]) -> list[str]:
    lines = [f"- {md(f['path'])}: {md(str(f['reason']))}" for f in failures[:SUMMARY_FAILURES]]
    if len(failures) > SUMMARY_FAILURES:
        lines.append(f"- and {len(failures) - SUMMARY_FAILURES} more")
    return lines


_MD_SPECIAL = str.maketrans(
    {c: "\\" + c for c in "\\`*_{}[]()#+-.!|~"} | {"<": "&lt;", ">": "&gt;", "&": "&amp;", "\n": " ", "\r": " "}
)


def md(text: str) -> str:
    """Drawing-derived text as literal markdown text: no markup, no links, no HTML."""
    return text.translate(_MD_SPECIAL)


def _bounded(what: str, total: int, shown: int) -> str:
    return f"{what}: the first {shown} of {total}" if total > shown else f"{what}: {total}"
