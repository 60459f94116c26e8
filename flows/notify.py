"""Tell other systems about a finished run: signed webhooks.

Events: `batch.completed` (every file ok, or only known failures: engine/failures.py),
`batch.failed` (a file failed in this run, or any file with `[run] fail_on = "any"`; or part of the
batch could not run) and `file.failed` (one POST per such failed file), each to the URLs
configured for it in `[webhooks]`. The body is JSON; the
headers `X-Cadpipe-Timestamp` (Unix seconds) and `X-Cadpipe-Signature: sha256=<hex HMAC-SHA256 of
"<timestamp>.<body>">` let the receiver check it came from us and is fresh. The secret comes from an
environment variable or a Prefect Secret block; it is never logged (nothing here logs headers).

A delivery is retried with exponential backoff on network errors, 408, 429 and 5xx; other answers
are final. A failed delivery is logged and never fails the batch.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from engine.catalog import CATALOG_DIR, CHANGE_COLUMNS, QUARANTINE_DIR, Catalog
from engine.version import OUTPUT_VERSION
from flows.logs import log_path

if TYPE_CHECKING:
    import httpx

EVENTS = {"batch.completed": "batch_completed", "batch.failed": "batch_failed", "file.failed": "file_failed"}
RETRY_STATUS = {408, 429}
# A `changes` row as a receiver gets it: the counts and sentence; the paths and the title
# changes are made readable by _change; the work ids and times stay in the catalog.
_CHANGE_KEPT_IN_CATALOG = (
    "run_id",
    "work_id_before",
    "work_id_after",
    "title_changes",
    "diff",
    "overlays",
    "detected_at",
)
CHANGE_FIELDS = tuple(c for c in CHANGE_COLUMNS if c not in _CHANGE_KEPT_IN_CATALOG)
FAILURE_FIELDS = ("path", "source_root", "sha256", "stage", "error_class", "error_message", "permanent", "quarantine")
COUNTS = ("files_seen", "processed", "reused", "unchanged", "failed", "new_failures", "known_failures", "deferred")


class SecretMissing(RuntimeError):
    """Webhooks are configured but their signing secret is not available."""


@dataclass(frozen=True)
class WebhookSettings:
    urls: dict[str, list[str]]  # event -> URLs
    secret_env: str = "CADPIPE_WEBHOOK_SECRET"
    secret_block: str = ""
    timeout_s: float = 10.0
    attempts: int = 4
    backoff_s: float = 1.0

    @classmethod
    def from_config(cls, cfg) -> WebhookSettings:
        raw = cfg.raw["webhooks"]
        return cls(
            urls={event: list(raw[key]) for event, key in EVENTS.items()},
            secret_env=raw["secret_env"],
            secret_block=raw["secret_block"],
            timeout_s=raw["timeout_s"],
            attempts=max(1, raw["attempts"]),
            backoff_s=raw["backoff_s"],
        )

    def secret(self) -> str:
        """The signing secret: the environment variable first, else the Prefect Secret block."""
        if self.secret_env and os.environ.get(self.secret_env):
            return os.environ[self.secret_env]
        if self.secret_block:
            from prefect.blocks.system import Secret

            from flows import prefect_api

            if not prefect_api.reachable():  # a Secret block lives on the server (a minute of retries)
                raise SecretMissing(f"Secret block {self.secret_block!r} not read: {prefect_api.lost_message()}")

            value = prefect_api.synchronous(Secret.load(self.secret_block)).get()
            if value:
                return str(value)
        where = " or ".join(
            filter(
                None,
                [
                    self.secret_env and f"${self.secret_env}",
                    self.secret_block and f"Secret block {self.secret_block!r}",
                ],
            )
        )
        raise SecretMissing(f"webhooks are configured but no signing secret is set ({where or 'nothing configured'})")


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256 over `<timestamp>.<body>` with the secret."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def redact(url: str) -> str:
    """A URL fit for logs: no credentials, no query (tokens often live there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def _logger() -> logging.Logger | logging.LoggerAdapter:
    """The run logger inside a flow (so the Prefect UI shows deliveries), else ours."""
    if "prefect" not in sys.modules:  # a run without Prefect (flows/batch_steps.py)
        return logging.getLogger("cadpipe.notify")
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("cadpipe.notify")


def payloads(out: Path | str, summary: dict) -> list[tuple[str, dict]]:
    """(event, body) of every event a finished run sends, before looking at which have URLs."""
    out = Path(out)
    failures = _failures(out, summary)
    outputs = {
        "root": str(out),
        "catalog": str(out / CATALOG_DIR),
        "quarantine": str(out / QUARANTINE_DIR),
        "log": str(log_path(out, summary["run_id"])),
        "documents": [str(out / d) for d in summary.get("documents") or []],
    }
    run = {
        "run_id": summary["run_id"],
        "flow_run_id": summary.get("flow_run_id"),
        "started_at": summary.get("started_at"),
        "finished_at": summary.get("finished_at"),
        "sources": summary.get("sources", []),
        "pipeline_version": summary.get("pipeline_version"),
    }
    counts = {k: summary.get(k, 0) for k in COUNTS}
    failed = summary.get("exit_code", 1 if summary.get("failed") else 0) != 0
    event = "batch.failed" if failed else "batch.completed"
    fail_on = summary.get("fail_on", "any")
    changes = [_change(out, row) for row in summary.get("changes") or []]
    messages = [
        {
            "event": event,
            **run,
            "message": summary.get("message"),
            "fail_on": fail_on,
            "counts": counts,
            "failures": failures,
            "changes": changes,
            "outputs": outputs,
        },
    ]
    counted = [f for f in failures if fail_on == "any" or not f.get("known")]
    messages += [{"event": "file.failed", **run, "file": failure, "outputs": outputs} for failure in counted]
    return [(m["event"], m) for m in messages]


def _failures(out: Path, summary: dict) -> list[dict]:
    """This run's failed files, each marked `known` (failed before, unchanged) or not; from the
    summary, or else from the catalog's errors table (published before we are called)."""
    if not summary.get("failed"):
        return []
    if "failed_files" in summary:
        return [
            {**{k: f.get(k) for k in FAILURE_FIELDS}, "known": bool(f.get("known"))} for f in summary["failed_files"]
        ]
    errors = Catalog(out).read("errors")
    if errors.empty:
        return [{"error_message": message} for message in summary.get("failures", [])]
    rows = errors[errors["run_id"] == summary["run_id"]]
    return [{k: (None if _isna(row.get(k)) else row.get(k)) for k in FAILURE_FIELDS} for row in rows.to_dict("records")]


def _change(out: Path, row: dict) -> dict:
    """A drawing that came back with new content (a `changes` row), for a receiver: the title
    fields before and after as an object, the diff and overlays as paths."""
    entry = {k: (None if _isna(row.get(k)) else row.get(k)) for k in CHANGE_FIELDS}
    try:
        entry["title_changes"] = json.loads(row.get("title_changes") or "{}")
    except (TypeError, ValueError):
        entry["title_changes"] = {}
    entry["diff"] = str(out / row["diff"]) if row.get("diff") else None
    entry["overlays"] = [str(out / path) for path in row.get("overlays") or []]
    return entry


def _isna(value) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def deliver(
    client: httpx.Client,
    url: str,
    event: str,
    body: bytes,
    secret: str,
    settings: WebhookSettings,
    logger: logging.Logger | logging.LoggerAdapter,
) -> bool:
    """POST one signed event, retrying transient failures; True when the receiver took it (2xx)."""
    delivery = str(uuid.uuid4())
    where = redact(url)
    fields = {"event": "webhook.failed", "webhook_event": event}
    reason = ""
    for attempt in range(1, settings.attempts + 1):
        timestamp = str(int(time.time()))  # signed afresh: receivers reject stale timestamps
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"cadpipe/{OUTPUT_VERSION}",
            "X-Cadpipe-Event": event,
            "X-Cadpipe-Delivery": delivery,
            "X-Cadpipe-Timestamp": timestamp,
            "X-Cadpipe-Signature": signature(secret, timestamp, body),
        }
        import httpx

        try:
            response = client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            reason, retry = f"{type(exc).__name__}: {exc}", True
        else:
            if response.is_success:
                logger.info(
                    "webhook %s delivered to %s (attempt %d)",
                    event,
                    where,
                    attempt,
                    extra={"event": "webhook.delivered", "webhook_event": event},
                )
                return True
            reason = f"HTTP {response.status_code}"
            retry = response.status_code >= 500 or response.status_code in RETRY_STATUS
        if not retry or attempt == settings.attempts:
            break
        delay = settings.backoff_s * 2 ** (attempt - 1)
        logger.warning(
            "webhook %s to %s: attempt %d failed (%s); retrying in %.1f s",
            event,
            where,
            attempt,
            reason,
            delay,
            extra={**fields, "event": "webhook.retry"},
        )
        time.sleep(delay)
    logger.error("webhook %s to %s not delivered: %s", event, where, reason, extra=fields)
    return False


def notify_run(cfg, summary: dict) -> None:
    """Send the run's events; a failed delivery is logged and never fails the batch."""
    _send(cfg, lambda: payloads(summary.get("out") or cfg.out, summary))


def notify_crash(cfg, run: dict, error: BaseException) -> None:
    """`batch.failed` for a run that could not finish (its files' states are unknown): the error
    instead of counts, so a receiver hears about it as it would about failed files."""
    message: dict[str, Any] = {
        "event": "batch.failed",
        **{k: run.get(k) for k in ("run_id", "flow_run_id", "started_at", "sources", "pipeline_version")},
        "finished_at": None,
        "counts": None,
        "failures": [],
        "error": f"{type(error).__name__}: {error}",
        "outputs": {"root": str(cfg.out), "log": str(log_path(cfg.out, run["run_id"]))},
    }
    _send(cfg, lambda: [("batch.failed", message)])


def _send(cfg, build) -> None:
    settings = WebhookSettings.from_config(cfg)
    if not any(settings.urls.values()):
        return
    logger = _logger()
    try:
        secret = settings.secret()
        messages = build()
    except Exception as exc:
        logger.error("webhooks not sent: %s", exc, extra={"event": "webhook.failed"})
        return
    unreachable: set[tuple[str, str]] = set()  # after one lost file.failed delivery, spare the rest
    skipped: dict[str, int] = {}
    import httpx  # here: a second of a run's CPU, for runs that send webhooks only

    with httpx.Client(timeout=settings.timeout_s, follow_redirects=False) as client:
        for event, message in messages:
            body = json.dumps(message, ensure_ascii=False, default=str, separators=(",", ":")).encode()
            for url in settings.urls[event]:
                if (event, url) in unreachable:
                    skipped[url] = skipped.get(url, 0) + 1
                    continue
                try:
                    delivered = deliver(client, url, event, body, secret, settings, logger)
                except Exception as exc:
                    logger.error(
                        "webhook %s to %s not delivered: %s", event, redact(url), exc, extra={"event": "webhook.failed"}
                    )
                    delivered = False
                if not delivered and event == "file.failed":
                    unreachable.add((event, url))
    for url, count in skipped.items():
        logger.error(
            "webhook file.failed to %s: %d more events not sent after a failed delivery",
            redact(url),
            count,
            extra={"event": "webhook.failed", "webhook_event": "file.failed"},
        )
