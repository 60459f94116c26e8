"""Signed webhooks from real batches under Prefect's test harness, against the real local receiver
of tests/unit/test_webhooks.py: a failed file, a secret from a Prefect Secret block, a batch that
cannot finish."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from flows.notify import notify_run
from tests.conftest import REPO
from tests.unit.test_webhooks import SECRET, Receiver, config, summary

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


@pytest.fixture
def secret_env(monkeypatch):
    """The webhook secret the receiver checks, from the environment as the config names it."""
    monkeypatch.setenv("CADPIPE_TEST_SECRET", SECRET)


def test_a_batch_with_a_failed_file_sends_batch_failed_and_file_failed(
    tmp_path, library, secret_env, prefect_harness, caplog
):
    from flows.batch import batch

    caplog.set_level(logging.DEBUG)
    with Receiver(SECRET) as good, Receiver("another-secret") as wrong:
        cfg = config(tmp_path, batch_completed=[good.url], batch_failed=[good.url, wrong.url], file_failed=[good.url])
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
