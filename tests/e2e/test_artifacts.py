"""Prefect artifacts of a run, read back from a real (test harness) Prefect server."""

from __future__ import annotations

import json
import re
import shutil
from uuid import UUID

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterId

from flows import progress
from flows.artifacts import (
    FAILURES_KEY,
    PROGRESS_KEY,
    ROLLUP_KEY,
    SUMMARY_KEY,
    ProgressReporter,
    Throttle,
    md,
)
from tests.conftest import REPO, catalog_table
from tests.docs_drawings import broken_drawing, pump_drawing


def test_throttle_sends_on_5_points_or_after_2_seconds():
    throttle = Throttle()
    sent = []
    for value, now in [
        (0.0, 0.0),
        (1.0, 0.5),
        (4.9, 1.0),
        (5.0, 1.5),
        (6.0, 1.6),
        (6.5, 3.6),
        (6.5, 9.0),
        (7.0, 9.1),
        (100.0, 9.2),
    ]:
        if throttle.due(value, now):
            throttle.sent(value, now)
            sent.append(value)
    assert sent == [0.0, 5.0, 6.5, 7.0, 100.0]  # the first, +5 points, +2 s, +2 s, the end


def test_markdown_text_from_drawings_is_literal():
    text = md("<script>alert(1)</script> | [x](javascript:y) *b*\n# h")
    assert "<" not in text and ">" not in text and "\n" not in text
    assert re.search(r"(?<!\\)[|\[\]()*#]", text) is None, text


def read_artifacts(**filters) -> list:
    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(**filters))


def artifact_value(artifact_id: UUID):
    [artifact] = read_artifacts(id=ArtifactFilterId(any_=[artifact_id]))
    return artifact.data, artifact.description


def test_progress_reporter_updates_the_artifact_in_steps(prefect_harness):
    now = [0.0]

    @flow
    def progress_steps() -> list:
        reporter = ProgressReporter("cadpipe-test-progress", clock=lambda: now[0])
        reporter.planned(1000, 1000)
        seen = [artifact_value(reporter.artifact_id)]
        reporter.file_done("a", None)  # 0.1 %: not worth an update yet
        reporter.flush()  # updates are sent by the reporter's own thread
        seen.append(artifact_value(reporter.artifact_id))
        for _ in range(49):
            reporter.file_done("a", None)  # the 50th file: 5 %
        reporter.flush()
        seen.append(artifact_value(reporter.artifact_id))
        now[0] = 2.5
        reporter.file_done("a", None)  # 5.1 %, 2.5 s later
        reporter.flush()
        seen.append(artifact_value(reporter.artifact_id))
        reporter.file_done("a", None)  # 5.2 %, at once: not sent
        reporter.flush()
        seen.append(artifact_value(reporter.artifact_id))
        for _ in range(948):
            reporter.file_done("a", None)
        reporter.finish()
        seen.append(artifact_value(reporter.artifact_id))
        return seen

    assert progress_steps() == [
        (0.0, "0 of 1000 files done"),
        (0.0, "0 of 1000 files done"),
        (5.0, "50 of 1000 files done"),
        (5.1, "51 of 1000 files done"),
        (5.1, "51 of 1000 files done"),
        (100.0, "1000 of 1000 files done"),
    ]


@pytest.fixture(scope="module")
def run(tmp_path_factory, prefect_harness):
    from flows.batch import batch

    lib = tmp_path_factory.mktemp("lib")
    pump_drawing(lib / "pump.dxf")
    broken_drawing(lib / "broken.dxf")
    shutil.copy2(REPO / "data" / "samples" / "gear.dxf", lib / "gear.dxf")
    out = tmp_path_factory.mktemp("out")
    state = batch(sources=[str(lib)], out=str(out), workers=2, return_state=True)
    summary = state.result(raise_on_failure=False)
    artifacts = read_artifacts(flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(summary["flow_run_id"])]))
    return {"out": out, "summary": summary, "artifacts": {a.key: a for a in artifacts}}


def test_each_run_has_its_four_artifacts(run):
    artifacts = run["artifacts"]
    assert set(artifacts) == {PROGRESS_KEY, SUMMARY_KEY, FAILURES_KEY, ROLLUP_KEY}
    for key, _artifact in artifacts.items():
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", key)
    assert {k: a.type for k, a in artifacts.items()} == {
        PROGRESS_KEY: "progress",
        SUMMARY_KEY: "markdown",
        FAILURES_KEY: "table",
        ROLLUP_KEY: "table",
    }


def test_progress_artifact_ends_at_100(run):
    progress_artifact = run["artifacts"][PROGRESS_KEY]
    assert progress_artifact.data == 100.0
    assert progress_artifact.description == "3 of 3 files done"
    assert not any(isinstance(listener, ProgressReporter) for listener in progress._listeners), "unsubscribed"


def test_summary_markdown(run):
    summary, text = run["summary"], run["artifacts"][SUMMARY_KEY].data
    assert summary["run_id"].replace("-", "\\-") in text
    assert "| 3 | 2 | 0 | 0 | 1 |" in text  # files, processed, reused, unchanged, failed
    assert "broken\\.dxf" in text and "1 failed" in text
    assert "index\\.html" in text


def test_failures_table_names_the_reason(run):
    rows = json.loads(run["artifacts"][FAILURES_KEY].data)
    files = catalog_table(run["out"], "files").set_index("path")
    [row] = rows
    assert row["path"] == "broken.dxf" and row["stage"] == "load" and row["permanent"] is True
    assert row["reason"] == files.loc["broken.dxf", "error_message"] and "truncated DXF" in row["reason"]
    assert row["quarantine"] == files.loc["broken.dxf", "quarantine"]


def test_bom_rollup_table(run):
    rows = {r["part_number"]: r for r in json.loads(run["artifacts"][ROLLUP_KEY].data)}
    assert set(rows) == {"B-100", "N-200", "W-300"}
    assert (rows["B-100"]["total_qty"], rows["B-100"]["drawings"]) == (6.0, 1)
    assert rows["W-300"]["total_qty"] is None and rows["W-300"]["qty_unknown"] == 1
    assert rows["N-200"]["description"] == "<script>alert(1)</script>"  # data, shown as text by the UI
