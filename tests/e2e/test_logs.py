"""Structured JSON logs: the sink on its own, then a real batch under Prefect's test harness."""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from flows import logs
from tests.conftest import REPO

SAMPLE = REPO / "data" / "samples" / "gear.dxf"


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def broken_dxf(manifest) -> str:
    """The smallest corpus DXF that ezdxf cannot load even with recovery: a permanent failure."""
    rows = [r for r in manifest if r["format"] == "dxf" and r["ezdxf_load"] == "fail"]
    return min(rows, key=lambda r: int(r["bytes"]))["path"]


def test_each_record_is_one_json_line_with_the_fixed_fields(tmp_path):
    logger = logging.getLogger("cadpipe.test")
    with logs.configure(tmp_path, "run-1") as sink:
        logger.info("hello %s", "world", extra={"event": "demo", "path": "/x/a.dxf", "sha256": "ab", "duration_ms": 12})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("went wrong", extra={"event": "demo.error", "error_class": "ValueError"})
    assert sink.path == tmp_path / "logs" / "run-1.jsonl"
    first, second = read_lines(sink.path)
    assert list(first)[: len(logs.FIELDS)] == list(logs.FIELDS)
    assert first["event"] == "demo" and first["level"] == "INFO" and first["message"] == "hello world"
    assert (first["run_id"], first["path"], first["sha256"], first["duration_ms"]) == ("run-1", "/x/a.dxf", "ab", 12)
    assert first["flow_run_id"] is None and first["task_run_id"] is None, "outside Prefect there are no run ids"
    assert first["timestamp"].endswith("+00:00")
    assert second["level"] == "ERROR" and second["error_class"] == "ValueError"
    assert "ValueError: boom" in second["exception"]


def test_a_sink_takes_only_its_own_runs_records_and_stops_when_closed(tmp_path):
    logger = logging.getLogger("cadpipe.test")
    sink = logs.configure(tmp_path, "mine")
    elsewhere = threading.Thread(target=logger.warning, args=("from a thread outside the run",))
    elsewhere.start()
    elsewhere.join()
    inside = threading.Thread(target=contextvars.copy_context().run, args=(logger.warning, "from the run's thread"))
    inside.start()
    inside.join()
    other = contextvars.Context().run(logs.configure, tmp_path, "other")  # a second run, its own context
    logger.warning("still mine")
    sink.close()
    logger.warning("after close")
    other.close()
    assert [line["message"] for line in read_lines(sink.path)] == ["from the run's thread", "still mine"]
    assert not (tmp_path / "logs" / "other.jsonl").read_text()


def test_stdout_on_request(tmp_path, capsys):
    with logs.configure(tmp_path, "loud", stdout=True):
        logging.getLogger("cadpipe.test").info("to both", extra={"event": "demo"})
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed == read_lines(tmp_path / "logs" / "loud.jsonl")
    assert printed[0]["message"] == "to both"


@pytest.fixture(scope="module")
def logged_batch(tmp_path_factory, corpus_dir, manifest, prefect_harness):
    from flows.batch import batch

    lib = tmp_path_factory.mktemp("library")
    shutil.copy(SAMPLE, lib / "gear.dxf")
    shutil.copy(corpus_dir / broken_dxf(manifest), lib / "broken.dxf")
    out = tmp_path_factory.mktemp("out")
    state = batch(sources=[str(lib)], out=str(out), workers=2, return_state=True)
    summary = state.result(raise_on_failure=False)
    return {"lib": lib, "out": out, "summary": summary, "lines": read_lines(logs.log_path(out, summary["run_id"]))}


def test_a_batch_writes_per_file_events_with_run_and_task_ids(logged_batch):
    lines, summary, lib = logged_batch["lines"], logged_batch["summary"], logged_batch["lib"]
    assert all(set(logs.FIELDS) <= set(line) for line in lines)
    assert {line["run_id"] for line in lines} == {summary["run_id"]}
    events = {line["event"]: line for line in lines if line["event"].startswith("file.")}
    done, failed = events["file.processed"], events["file.failed"]
    assert done["path"] == str(lib / "gear.dxf")
    assert done["sha256"] == hashlib.sha256(SAMPLE.read_bytes()).hexdigest()
    assert isinstance(done["duration_ms"], int) and done["error_class"] is None and done["stage"] is None
    assert failed["path"] == str(lib / "broken.dxf")
    assert failed["level"] == "WARNING" and failed["stage"] == "load" and failed["error_class"]
    for line in (done, failed):
        assert line["task_run_id"] and line["subflow_run_id"], "per-file events carry the chunk task's ids"
    assert {line["flow_run_id"] for line in lines} == {summary["flow_run_id"]}, "the run's own flow run"
    assert {line.get("subflow_run_id") for line in lines} - {None} != {summary["flow_run_id"]}
    finished = [line for line in lines if line["event"] == "run.finished"]
    assert len(finished) == 1 and finished[0]["flow_run_id"] == summary["flow_run_id"]
    assert "1 processed, 0 unchanged, 1 failed; failed in this run: broken.dxf: load: " in finished[0]["message"]


def test_the_same_messages_reach_the_prefect_api(logged_batch):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    failed = next(line for line in logged_batch["lines"] if line["event"] == "file.failed")
    finished = next(line for line in logged_batch["lines"] if line["event"] == "run.finished")

    def messages(flow_run_id: str, wanted: str) -> list[str]:
        seen: list[str] = []
        deadline = time.monotonic() + 300  # Prefect sends logs in batches every few seconds
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                records = client.read_logs(
                    log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200
                )
                seen = [r.message for r in records]
                if wanted in seen:
                    break
                time.sleep(0.5)
        return seen

    # The chunk's task run (in the cadpipe-chunks subflow) logs the file; the run's own flow run
    # names it in its last line, which a query of that flow run's logs finds.
    assert failed["message"] in messages(failed["subflow_run_id"], failed["message"]), "the UI shows the failure"
    assert finished["message"] in messages(finished["flow_run_id"], finished["message"])
    assert "broken.dxf: load: " in finished["message"]


def test_nothing_is_logged_after_the_run(logged_batch):
    before = logs.log_path(logged_batch["out"], logged_batch["summary"]["run_id"]).read_text()
    logging.getLogger("cadpipe.test").warning("later")
    assert logs.log_path(logged_batch["out"], logged_batch["summary"]["run_id"]).read_text() == before


def test_prefect_set_to_warnings_still_leaves_every_line_in_the_json_log(tmp_path, corpus_dir, manifest, cli_env):
    """PREFECT_LOGGING_LEVEL says what Prefect shows and sends; the JSON log is the run's record
    and has its INFO lines all the same (it was empty: Prefect's run loggers made none)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    lib, out = tmp_path / "library", tmp_path / "out"
    lib.mkdir()
    shutil.copy(SAMPLE, lib / "gear.dxf")
    shutil.copy(corpus_dir / broken_dxf(manifest), lib / "broken.dxf")
    env = {**cli_env, "PREFECT_LOGGING_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "flows.cli", "run", str(lib), "--out", str(out), "--workers", "1"]
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]  # broken.dxf failed
    [log] = (out / "logs").glob("*.jsonl")
    lines = read_lines(log)
    events = [(line["event"], Path(line["path"]).name if line["path"] else None) for line in lines]
    assert ("file.processed", "gear.dxf") in events and ("file.failed", "broken.dxf") in events, events
    assert [e for e, _ in events].count("run.finished") == 1, events
    shown = proc.stdout + proc.stderr
    assert "| INFO" not in shown, shown[-3000:]  # the console as asked (INFO lines at the default)
    # ... and the API: the failure, no INFO line (each flow run's logs are sent before the exit).
    failed = next(line for line in lines if line["event"] == "file.failed")
    flow_runs = {line["flow_run_id"] for line in lines} | {line.get("subflow_run_id") for line in lines} - {None}
    with get_client(sync_client=True) as client:
        records = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=list(flow_runs))))
    assert failed["message"] in [r.message for r in records]
    assert all(r.level >= logging.WARNING for r in records), [(r.level, r.message) for r in records]
