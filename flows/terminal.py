"""What `cadpipe run` shows a person at a terminal, and what it leaves for cron to mail.

- stdout: the summary at the end (a table, the failures of this run each once, a line for the
  known ones, the drawings that changed, warnings, where the catalog, the report, the gallery and
  the register are), or with `--json` one JSON object.
- stderr: the progress bar, only when stderr is a terminal, and Prefect's log lines (not with
  `--quiet` or `--json`). Prefect's console handler prints through the bar's Rich console while the
  bar is drawn, so the two never overwrite each other; per-file lines are left to the JSON log
  and the summary (cron mail gets no line per file), and nothing in them is read as Rich markup.

File names, drawing text and library messages are data: they are printed as `Text`, never markup.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from documents.contracts import FileOutcome

# Log events the summary already tells (or the JSON log keeps): not repeated on the console.
SUMMARISED = ("file.processed", "file.failed", "run.finished", "run.refused", "source.empty")
CHANGES_SHOWN = 20  # changed drawings named in the summary; the report has every one


def stderr_console() -> Console:
    return Console(stderr=True, markup=False, highlight=False, soft_wrap=True)


def labelled(label: str, style: str, message: object) -> Text:
    """`label` in `style`, then `message` as plain text: file names, drawing content and library
    errors are data, never Rich markup (a `[/x]` in a message would otherwise raise)."""
    return Text.assemble((label, style), " ", str(message))


def progress_bar(console: Console, shown: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not shown,
    )


class ProgressBar:
    """Feeds Rich's progress bar from the batch's progress events (thread-safe). Failures are
    counted on the bar and named once, in the summary."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("discovering", total=None)
        self.todo = 0
        self.failed = 0
        self.lock = threading.Lock()

    def planned(self, total: int, todo: int) -> None:
        with self.lock:
            self.todo = todo
            self.progress.update(self.task, total=total, description=self._description())

    def file_done(self, path: str, outcome: FileOutcome | None) -> None:
        with self.lock:
            if outcome is not None and outcome.status == "failed":
                self.failed += 1
            self.progress.update(self.task, advance=1, description=self._description())

    def _description(self) -> str:
        failed = f", {self.failed} failed" if self.failed else ""
        return f"{self.todo} to process{failed}"


class _Through:
    """Stands in for the Rich console of Prefect's console handler: prints each log line as plain
    text through ours (the bar's), so Rich draws it above the bar."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def print(self, message: object, **kwargs: Any) -> None:
        self.console.print(Text(str(message)), **kwargs)


class Shown(logging.Filter):
    """Log records for the console: none when quiet, never what the summary tells."""

    def __init__(self, quiet: bool) -> None:
        super().__init__()
        self.quiet = quiet

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.quiet and record.__dict__.get("event") not in SUMMARISED


def _prefect_console_handlers() -> list[logging.Handler]:
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger()] + [
        logger for logger in logging.Logger.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    found: dict[int, logging.Handler] = {}
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, PrefectConsoleHandler):
                found[id(handler)] = handler
    return list(found.values())


@contextlib.contextmanager
def prefect_logs_through(console: Console, quiet: bool) -> Iterator[None]:
    """While inside: Prefect's console log lines go through `console` (none when `quiet`)."""
    handlers = _prefect_console_handlers()
    shown = Shown(quiet)
    saved = []
    for handler in handlers:
        saved.append((handler, handler.console))  # type: ignore[attr-defined]
        handler.console = _Through(console)  # type: ignore[attr-defined]
        handler.addFilter(shown)
    try:
        yield
    finally:
        for handler, original in saved:
            handler.console = original  # type: ignore[attr-defined]
            handler.removeFilter(shown)


def print_summary(summary: dict, out: Console | None = None) -> None:
    """The end of a run: counts, this run's failures (each once), known failures, warnings."""
    out = out or Console(markup=False, highlight=False, soft_wrap=True)
    table = Table(title=Text(f"cadpipe run {summary['run_id']}"), show_header=True)
    for column in ("files seen", "processed", "unchanged", "failed"):
        table.add_column(column, justify="right")
    failed = Text(str(summary["failed"]), style="red") if summary["failed"] else Text("0")
    table.add_row(
        str(summary["files_seen"]), str(summary["processed"]), str(summary["unchanged"] + summary["reused"]), failed
    )
    out.print(table)
    found = summary.get("failed_files")
    if found is None:  # a summary without the split (a run of an older version)
        found = [{"error_message": m, "known": False} for m in summary.get("failures", [])]
    counted_known = summary.get("fail_on") == "any"
    for failure in found:
        if not failure["known"] or counted_known:
            label = "known failure" if failure["known"] else "failed"
            out.print(Text("  ").append(labelled(label, "red", failure["error_message"])))
    known = sum(1 for f in found if f["known"])
    if known and not counted_known:
        noun = "known failure" if known == 1 else "known failures"
        out.print(
            Text("  ").append(
                labelled(f"{known} {noun}", "yellow", "(failed before, unchanged since; `cadpipe failures` lists them)")
            )
        )
    if summary.get("deferred"):
        out.print(Text("  ").append(labelled("not processed:", "red", summary.get("message", ""))))
    changes = summary.get("changes") or []
    for change in changes[:CHANGES_SHOWN]:
        out.print(Text("  ").append(labelled("changed", "yellow", f"{change['path']}: {change['summary']}")))
    if len(changes) > CHANGES_SHOWN:
        out.print(Text(f"  and {len(changes) - CHANGES_SHOWN} more changed drawings (the report lists them)"))
    for warning in summary.get("warnings", []):
        out.print(labelled("warning:", "yellow", warning))
    out.print(Text(f"catalog: {os.path.join(summary['out'], 'catalog')}"))
    if summary.get("documents"):
        out.print(Text(f"report:  {os.path.join(summary['out'], summary['documents'][0])}"))
        out.print(Text(f"gallery: {os.path.join(summary['out'], 'docs', 'gallery.html')}"))
    deliverables = summary.get("deliverables") or {}
    register = os.path.join(summary["out"], "register.xlsx")
    if os.path.isfile(register):
        out.print(Text(f"register: {register}"))
    for problem in deliverables.get("problems", []):
        out.print(Text("  ").append(labelled("deliverables", "yellow", problem)))


def print_json(summary: dict) -> None:
    """The summary as one JSON object on one line of stdout."""
    print(json.dumps(summary, ensure_ascii=False, default=str, separators=(",", ":")), flush=True)


def print_failures(found: list, out_dir: str, as_json: bool = False) -> None:
    """`cadpipe failures`: every current failure, oldest first, with its age, class and reason."""
    from engine.failures import age

    found = sorted(found, key=lambda f: (f.since or "", f.source_root, f.path))
    if as_json:
        print(json.dumps([f.to_dict() | {"age": age(f.since)} for f in found], ensure_ascii=False, default=str))
        return
    out = Console(markup=False, highlight=False, soft_wrap=True)
    catalog = os.path.join(out_dir, "catalog")
    if not found:
        out.print(Text(f"no failures recorded in {catalog}"))
        return
    permanent = sum(f.permanent for f in found)
    out.print(
        Text(
            f"{len(found)} failed {'file' if len(found) == 1 else 'files'} in {catalog} "
            f"({permanent} permanent: not tried again until the file, the options or cadpipe change)"
        )
    )
    ages = [age(f.since) for f in found]
    classes = [f.error_class or "" for f in found]
    width_age, width_class = max(map(len, ages)), max(map(len, classes))
    for f, when, error_class in zip(found, ages, classes):  # one line each, for reading and grep
        kind = "permanent" if f.permanent else "retried  "
        where = f"{f.source_root.rstrip('/')}/{f.error_message}"
        out.print(Text(f"  {when:>{width_age}}  {error_class:<{width_class}}  {kind}  {where}"))
