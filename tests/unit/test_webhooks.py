"""Signed webhooks against a real local HTTP receiver that checks the signature on its own."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from engine.config import load_config
from flows.notify import notify_run, signature
from tests.conftest import REPO

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
        "timeout_s = 5.0",
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


# Through a real batch under Prefect's harness.


@pytest.fixture(scope="module")
def library(tmp_path_factory, corpus_dir, manifest) -> Path:
    lib = tmp_path_factory.mktemp("library")
    shutil.copy(REPO / "data" / "samples" / "gear.dxf", lib / "gear.dxf")
    broken = min(
        (r for r in manifest if r["format"] == "dxf" and r["ezdxf_load"] == "fail"), key=lambda r: int(r["bytes"])
    )
    shutil.copy(corpus_dir / broken["path"], lib / "broken.dxf")
    return lib


def test_a_batch_with_a_failed_file_sends_batch_failed_and_file_failed(
    tmp_path, library, secret_env, prefect_harness, caplog
):
    from flows.batch import batch

    caplog.set_level(logging.DEBUG)
    with Receiver(SECRET) as good, Receiver("another-secret") as wrong:
        cfg = config(
            tmp_path,
            batch_completed=[good.url],
            batch_failed=[good.url, wrong.url],
            file_failed=[good.url],
        )
        state = batch(sources=[str(library)], out=str(cfg.out), config=str(cfg.path), workers=2, return_state=True)
        result = state.result(raise_on_failure=False)
    assert isinstance(result, dict) and result["failed"] == 1, "a rejected delivery does not fail the batch"
    assert sorted(good.events()) == ["batch.failed", "file.failed"]
    assert all(r["valid"] for r in good.requests)
    assert [(r["body"]["event"], r["status"]) for r in wrong.requests] == [("batch.failed", 401)]
    body = next(r["body"] for r in good.requests if r["body"]["event"] == "batch.failed")
    assert body["run_id"] == result["run_id"] and body["flow_run_id"] == result["flow_run_id"]
    assert body["counts"]["failed"] == 1 and body["counts"]["processed"] == 1
    [failure] = body["failures"]
    assert failure["path"] == "broken.dxf" and failure["source_root"] == str(library)
    assert failure["stage"] == "load" and failure["permanent"] is True
    assert (cfg.out / failure["quarantine"]).is_file(), "the failure points at its quarantine copy"
    assert Path(body["outputs"]["log"]).is_file() and Path(body["outputs"]["catalog"]).is_dir()
    file_body = next(r["body"] for r in good.requests if r["body"]["event"] == "file.failed")
    assert file_body["file"] == failure
    json_log = Path(body["outputs"]["log"]).read_text()
    assert "webhook.delivered" in json_log and "webhook.failed" in json_log
    assert SECRET not in json_log and SECRET not in caplog.text, "the secret never reaches a log"


def test_the_secret_can_come_from_a_prefect_secret_block(tmp_path, monkeypatch, prefect_harness):
    from prefect.blocks.system import Secret

    monkeypatch.delenv("CADPIPE_TEST_SECRET", raising=False)
    Secret(value=SECRET).save("cadpipe-webhook-test", overwrite=True)
    with Receiver(SECRET) as receiver:
        cfg = config(tmp_path, secret_block="cadpipe-webhook-test", batch_completed=[receiver.url])
        notify_run(cfg, summary(cfg.out))
    assert [r["valid"] for r in receiver.requests] == [True]


def test_a_batch_that_cannot_finish_sends_batch_failed_with_the_error(tmp_path, library, secret_env, prefect_harness):
    from flows.batch import batch

    with Receiver(SECRET) as receiver:
        cfg = config(tmp_path, batch_failed=[receiver.url])
        cfg.out.mkdir()
        (cfg.out / "catalog").write_text("a file where the catalog folder belongs")  # nothing can be published
        state = batch(sources=[str(library)], out=str(cfg.out), config=str(cfg.path), workers=1, return_state=True)
    assert state.is_failed() or state.is_crashed()
    [request] = receiver.requests
    body = request["body"]
    assert request["valid"] and body["event"] == "batch.failed" and body["counts"] is None
    assert body["error"].startswith("FileExistsError") and "catalog" in body["error"]
    [log] = (cfg.out / "logs").glob("*.jsonl")
    events = [json.loads(line) for line in log.read_text().splitlines()]
    [crash] = [e for e in events if e["event"] == "run.crashed"]
    assert crash["level"] == "ERROR" and crash["run_id"] == body["run_id"] == log.stem
