"""Signed webhooks against a real local HTTP receiver that checks the signature on its own."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from engine.config import load_config
from flows.notify import notify_run, signature

SECRET = "s3cr3t-for-tests-0f9a"


class Receiver:
    """An HTTP endpoint that verifies `X-Cadpipe-Signature` with its own secret, as a real
    consumer would: 204 when valid and fresh, 401 otherwise; `fail_first` answers 503 first."""

    def __init__(self, secret: str, fail_first: int = 0) -> None:
        self.secret = secret
        self.fail_first = fail_first
        self.requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                timestamp = self.headers.get("X-Cadpipe-Timestamp", "")
                expected = (
                    "sha256="
                    + hmac.new(receiver.secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
                )
                valid = hmac.compare_digest(expected, self.headers.get("X-Cadpipe-Signature", ""))
                fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) < 300
                entry = {"headers": dict(self.headers), "body": json.loads(body), "valid": valid and fresh}
                receiver.requests.append(entry)
                if len(receiver.requests) <= receiver.fail_first:
                    status = 503
                else:
                    status = 204 if entry["valid"] else 401
                entry["status"] = status
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def events(self) -> list[str]:
        return [r["body"]["event"] for r in self.requests]


def free_url() -> str:
    """A loopback URL where nothing listens."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()
    return f"http://127.0.0.1:{port}/hook"


def config(tmp_path: Path, *, secret_env: str = "CADPIPE_TEST_SECRET", secret_block: str = "", **urls) -> object:
    lines = ["[output]", 'root = "out"', "[dxf]", 'outputs = ["svg"]', "[webhooks]"]
    for key, value in urls.items():
        lines.append(f"{key} = {json.dumps(value)}")
    lines += [
        f'secret_env = "{secret_env}"',
        f'secret_block = "{secret_block}"',
        "attempts = 3",
        "backoff_s = 0.05",
        "timeout_s = 60.0",  # a loaded machine may be slow to answer; a refused connection fails at once
    ]
    path = tmp_path / "cadpipe.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_config(path)


def summary(out: Path, failed: int = 0) -> dict:
    return {
        "run_id": "20260101T000000Z-abcdef12",
        "flow_run_id": None,
        "started_at": "2026-01-01T00:00:00.000+00:00",
        "finished_at": "2026-01-01T00:00:05.000+00:00",
        "sources": ["/lib"],
        "pipeline_version": "test",
        "files_seen": 3,
        "processed": 3 - failed,
        "reused": 0,
        "unchanged": 0,
        "failed": failed,
        "out": str(out),
        "failures": [f"/lib/f{i}.dxf: load: bad" for i in range(failed)],
        "documents": [],
    }


@pytest.fixture
def secret_env(monkeypatch):
    monkeypatch.setenv("CADPIPE_TEST_SECRET", SECRET)


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    body = b'{"a":1}'
    assert (
        signature("k", "1700000000", body)
        == "sha256=" + hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    )
    assert signature("k", "1700000000", body) != signature("k", "1700000001", body)


def test_a_completed_run_is_delivered_signed_and_the_receiver_verifies_it(tmp_path, secret_env):
    with Receiver(SECRET) as receiver:
        cfg = config(tmp_path, batch_completed=[receiver.url], batch_failed=[receiver.url])
        notify_run(cfg, summary(cfg.out))
    [request] = receiver.requests
    assert request["valid"] and request["status"] == 204
    body, headers = request["body"], request["headers"]
    assert body["event"] == "batch.completed" and headers["X-Cadpipe-Event"] == "batch.completed"
    assert body["run_id"] == "20260101T000000Z-abcdef12"
    assert body["counts"] == {"files_seen": 3, "processed": 3, "reused": 0, "unchanged": 0, "failed": 0}
    assert body["failures"] == []
    assert body["outputs"]["catalog"] == str(cfg.out / "catalog")
    assert body["outputs"]["log"] == str(cfg.out / "logs" / "20260101T000000Z-abcdef12.jsonl")
    assert headers["X-Cadpipe-Delivery"] and headers["Content-Type"] == "application/json"


def test_a_wrong_secret_is_rejected_and_the_failure_is_only_logged(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("CADPIPE_TEST_SECRET", "not-the-receivers-secret")
    caplog.set_level(logging.DEBUG)
    with Receiver(SECRET) as receiver:
        cfg = config(tmp_path, batch_completed=[receiver.url])
        notify_run(cfg, summary(cfg.out))  # does not raise
    [request] = receiver.requests  # 401 is final: no retry
    assert not request["valid"] and request["status"] == 401
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "not delivered: HTTP 401" in error.getMessage() and "/hook" in error.getMessage()
    assert "not-the-receivers-secret" not in caplog.text


def test_transient_failures_are_retried_with_backoff(tmp_path, secret_env):
    with Receiver(SECRET, fail_first=2) as receiver:
        cfg = config(tmp_path, batch_completed=[receiver.url])
        notify_run(cfg, summary(cfg.out))
    assert [r["status"] for r in receiver.requests] == [503, 503, 204]
    assert all(r["valid"] for r in receiver.requests), "every attempt is signed afresh"
    assert len({r["headers"]["X-Cadpipe-Delivery"] for r in receiver.requests}) == 1, "one delivery, three attempts"


def test_an_unreachable_receiver_is_logged_after_the_last_attempt(tmp_path, secret_env, caplog):
    caplog.set_level(logging.INFO)
    url = free_url()
    cfg = config(tmp_path, batch_completed=[url + "?token=abc"])
    notify_run(cfg, summary(cfg.out))
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(retries) == 2 and len(errors) == 1
    assert "ConnectError" in errors[0].getMessage()
    assert "token=abc" not in caplog.text, "query strings (tokens) stay out of the logs"


def test_without_a_secret_nothing_is_sent_and_the_reason_is_logged(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("CADPIPE_TEST_SECRET", raising=False)
    caplog.set_level(logging.INFO)
    with Receiver(SECRET) as receiver:
        cfg = config(tmp_path, batch_completed=[receiver.url])
        notify_run(cfg, summary(cfg.out))
    assert receiver.requests == []
    assert "no signing secret" in caplog.text and "$CADPIPE_TEST_SECRET" in caplog.text


def test_no_urls_means_no_requests_and_no_secret_needed(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("CADPIPE_TEST_SECRET", raising=False)
    cfg = config(tmp_path)
    notify_run(cfg, summary(cfg.out))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
