"""Structured logs: one JSON object per line, per run, in `OUT/logs/<run_id>.jsonl`.

The batch logs through Prefect's run loggers as before, so every message still reaches the Prefect
UI through Prefect's API handler; `configure` adds a second handler to the same loggers for the
duration of one run. A run's handler takes only records emitted in that run's context (a context
variable, which Prefect copies into the threads of its task runs), so two runs in one process, such
as a watcher's, never mix their lines.

Fields of every line: timestamp, level, event, run_id, flow_run_id, task_run_id, path, sha256,
stage, duration_ms, error_class, message (null when not applicable); a few more where known
(work_id, attempt, reused, exception, subflow_run_id). `flow_run_id` is the run's own flow run
(the one in the catalog's `runs` table), also on the lines of its `cadpipe-chunks` subflow, whose
id is `subflow_run_id`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from documents.contracts import FileOutcome

LOGS_DIR = "logs"
FIELDS = (
    "timestamp",
    "level",
    "event",
    "run_id",
    "flow_run_id",
    "task_run_id",
    "path",
    "sha256",
    "stage",
    "duration_ms",
    "error_class",
)
EXTRA_FIELDS = ("work_id", "attempt", "reused")
# Prefect's run loggers (flow and task runs) and ours (webhooks, watcher) when called in a run.
LOGGERS = ("prefect.flow_runs", "prefect.task_runs", "cadpipe")

# For results the flow process learns after the fact (Dask chunks, failed chunks): JSON lines only,
# since the Prefect UI already has them from the Dask worker or the chunk's failure.
local_logger = logging.getLogger("cadpipe.files")

_active: contextvars.ContextVar[RunLog | None] = contextvars.ContextVar("cadpipe_run_log", default=None)


def log_path(out: Path | str, run_id: str) -> Path:
    return Path(out) / LOGS_DIR / f"{run_id}.jsonl"


class JsonLineFormatter(logging.Formatter):
    """A log record as one line of JSON with the fixed fields first."""

    def __init__(self, run_id: str | None = None, flow_run_id: str | None = None) -> None:
        super().__init__()
        self.run_id = run_id
        self.flow_run_id = flow_run_id  # the run's flow run, not a subflow's

    def format(self, record: logging.LogRecord) -> str:
        get = record.__dict__.get
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "event": get("event") or "message",
            "run_id": get("run_id") or self.run_id,
        }
        for name in FIELDS[4:]:
            entry[name] = get(name)
        own = get("flow_run_id")
        if self.flow_run_id:
            entry["flow_run_id"] = self.flow_run_id
        entry["message"] = record.getMessage()
        if own and self.flow_run_id and str(own) != self.flow_run_id:
            entry["subflow_run_id"] = str(own)
        for name in EXTRA_FIELDS:
            if get(name) is not None:
                entry[name] = get(name)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class RunLog:
    """The JSON sink of one run; use as a context manager or call `close()`."""

    def __init__(self, out: Path | str, run_id: str, stdout: bool = False, flow_run_id: str | None = None) -> None:
        self.run_id = run_id
        self.path = log_path(out, run_id)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        formatter = JsonLineFormatter(run_id, flow_run_id)
        # Appending lines is the one write that is not atomic: a reader sees whole lines so far.
        self.handlers: list[logging.Handler] = [logging.FileHandler(self.path, mode="a", encoding="utf-8")]
        if stdout:
            self.handlers.append(logging.StreamHandler(sys.stdout))
        for handler in self.handlers:
            handler.setLevel(logging.INFO)
            handler.setFormatter(formatter)
            handler.addFilter(self._accept)
        self._token = _active.set(self)
        ours = logging.getLogger("cadpipe")
        if ours.level == logging.NOTSET:  # else the root's WARNING would drop our INFO records
            ours.setLevel(logging.INFO)
        _make_info_records()
        for name in LOGGERS:
            for handler in self.handlers:
                logging.getLogger(name).addHandler(handler)
        self.closed = False

    def _accept(self, record: logging.LogRecord) -> bool:
        if _active.get() is not self:
            return False
        if record.__dict__.get("flow_run_id") is None:  # our own loggers: add the run's ids
            record.flow_run_id, record.task_run_id = _prefect_ids()
        return True

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for name in LOGGERS:
            for handler in self.handlers:
                logging.getLogger(name).removeHandler(handler)
        for handler in self.handlers:
            if isinstance(handler, logging.FileHandler):
                handler.close()
            else:
                handler.flush()
        try:
            _active.reset(self._token)
        except ValueError:  # closed from another context than the one that opened it
            if _active.get() is self:
                _active.set(None)

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def configure(out: Path | str, run_id: str, stdout: bool = False, flow_run_id: str | None = None) -> RunLog:
    """Start writing this run's JSON log lines (to `OUT/logs/<run_id>.jsonl`, and stdout if asked);
    `flow_run_id` is the run's own flow run, named on every line.

    Takes effect at once; the returned object detaches it (`close()`, or leave its `with` block).
    """
    return RunLog(out, run_id, stdout, flow_run_id)


def _make_info_records() -> None:
    """Prefect's run loggers take their level from PREFECT_LOGGING_LEVEL; set above INFO, they
    never made their INFO records (each file's line, the run's end), and the JSON log was empty.
    They then make them, and Prefect's own handlers that the records reach (the API's, the
    console's) keep the level asked of them: that setting still says what Prefect shows and sends."""
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logger = logging.getLogger(name)
        level = logger.getEffectiveLevel()
        if level <= logging.INFO:
            continue
        node: logging.Logger | None = logger
        while node is not None:
            for handler in node.handlers:
                handler.setLevel(max(handler.level, level))
            node = node.parent if node.propagate else None
        logger.setLevel(logging.INFO)


def _prefect_ids() -> tuple[str | None, str | None]:
    if "prefect" not in sys.modules:  # a run without Prefect (flows/batch_steps.py): no run ids
        return None, None
    from prefect.context import FlowRunContext, TaskRunContext

    task = TaskRunContext.get()
    flow = FlowRunContext.get()
    flow_run_id = flow.flow_run.id if flow and flow.flow_run else (task.task_run.flow_run_id if task else None)
    task_run_id = task.task_run.id if task else None
    return (str(flow_run_id) if flow_run_id else None, str(task_run_id) if task_run_id else None)


class FileRef(Protocol):
    """Which file: a worker job, or what discovery could not take."""

    @property
    def source_root(self) -> str: ...
    @property
    def path(self) -> str: ...


def file_fields(job: FileRef, outcome: FileOutcome) -> dict[str, Any]:
    """The structured fields of one file's final outcome."""
    failed = not outcome.ok
    return {
        "event": "file.failed" if failed else "file.processed",
        "path": str(Path(job.source_root) / job.path),
        "sha256": getattr(job, "sha256", None),
        "work_id": getattr(job, "work_id", None),
        "stage": outcome.stage if failed else None,
        "duration_ms": outcome.duration_ms,
        "error_class": outcome.error_class if failed else None,
        "attempt": outcome.attempt,
        "reused": outcome.reused if not failed else None,
    }


def file_event(logger: logging.Logger | logging.LoggerAdapter, job: FileRef, outcome: FileOutcome) -> None:
    """Log one finished file through a run logger: a warning with the reason when it failed."""
    fields = file_fields(job, outcome)
    if fields["event"] == "file.failed":
        logger.warning("failed: %s", outcome.error_message, extra=fields)
    else:
        logger.info("processed %s", job.path, extra=fields)
