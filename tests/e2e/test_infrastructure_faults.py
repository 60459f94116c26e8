"""Infrastructure faults are not input faults: a chunk that cannot run (here: a chunk sent to run as
a Dask chunk where there is no Dask worker, a real orchestration error) is retried by Prefect, then
its files are left as they were recorded, not failed, not quarantined, and the cause is logged
once; the next run processes them."""

from __future__ import annotations

import dataclasses
import logging
import shutil

import pytest
from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from engine.catalog import Catalog, Outcome
from engine.config import load_config
from engine.executor import run_settings
from flows.batch import batch, chunks_subflow, discover_and_plan
from flows.outcomes import summary_of
from tests.conftest import REPO, catalog_table

pytestmark = pytest.mark.usefixtures("prefect_harness")
SAMPLES = REPO / "data" / "samples"


class Recorded(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_chunk_that_cannot_run_leaves_its_files_for_the_next_run(tmp_path):
    library, out = tmp_path / "lib", tmp_path / "out"
    library.mkdir()
    for name in ("gear.dxf", "text_alignments.dxf"):
        shutil.copy(SAMPLES / name, library / name)
    assert batch(sources=[str(library)], out=str(out), workers=1, return_state=True).is_completed()
    (library / "gear.dxf").write_bytes(b"999\nrevised\n" + (library / "gear.dxf").read_bytes())  # changed
    shutil.copy(SAMPLES / "hatch_pattern.dxf", library / "new.dxf")  # not recorded yet
    before = catalog_table(out, "files").set_index("path")

    cfg = load_config(None, sources=[str(library)], out=str(out), overrides={"run": {"workers": 1}})
    settings = dataclasses.replace(run_settings(cfg, "a-run"), runner="dask")  # on a Dask worker: there is none

    @flow(name="chunks-that-cannot-run")
    def chunks_here():
        _, plan = discover_and_plan(cfg)
        jobs = [item.to_job(str(out)) for item in plan.todo]
        [results] = chunks_subflow([jobs], settings, ThreadPoolTaskRunner(max_workers=2))
        return plan, results

    recorded = Recorded()
    logging.getLogger("prefect.flow_runs").addHandler(recorded)
    try:
        plan, results = chunks_here()
    finally:
        logging.getLogger("prefect.flow_runs").removeHandler(recorded)
    assert sorted(item.input.path for item in plan.todo) == ["gear.dxf", "new.dxf"]
    assert [r.status for r in results] == ["deferred", "deferred"]
    [cause] = [r for r in recorded.records if getattr(r, "event", None) == "chunk.failed"]
    assert "No worker found" in cause.getMessage(), "the cause logged once, not once per file"
    assert "left for the next run" in cause.getMessage()

    # Published as the batch publishes them: the two files are left as they were recorded.
    outcomes = [Outcome(item.input, item.work_id, "deferred", r.record()) for item, r in zip(plan.todo, results)]
    outcomes += [Outcome(item.input, item.work_id, "unchanged") for item in plan.unchanged]
    run = {"run_id": "20990101T000000Z-deferred", "flow_run_id": None, "pipeline_version": "x", "config": "x"}
    row = Catalog(out).publish(run, outcomes, [str(library)])
    assert (row["files_seen"], row["deferred"], row["failed"]) == (3, 2, 0)
    after = catalog_table(out, "files").set_index("path")
    assert "new.dxf" not in after.index, "no record: the next run takes it"
    kept = ["sha256", "work_id", "run_id", "status", "processed_at", "size", "mtime_ns"]
    assert after.loc["gear.dxf", kept].tolist() == before.loc["gear.dxf", kept].tolist(), "its record as it was"
    assert set(after["status"]) == {"ok"}
    assert not (out / "quarantine").exists() or not any((out / "quarantine").iterdir()), "nothing quarantined"

    # The next run processes both.
    summary = summary_of(batch(sources=[str(library)], out=str(out), workers=1, return_state=True).result())
    assert summary is not None
    assert (summary["processed"], summary["failed"], summary["deferred"]) == (2, 0, 0)
