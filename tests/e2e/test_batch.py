"""The batch end to end over the real corpus, under a real (test harness) Prefect server."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pandas as pd
import pymupdf
import pytest

from engine.config import load_config
from flows import batch_steps
from flows.batch import batch
from tests.conftest import REPO, catalog_table, delta_duckdb
from tests.hostile_inputs import drawing, endless_drawing
from tests.time_limits import calibrated_timeout

pytestmark = pytest.mark.usefixtures("prefect_harness")
TABLES = ["files", "layouts", "layers", "entities", "blocks", "texts", "refs", "bom", "errors", "runs"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(src: Path, out: Path, **kw):
    state = batch(sources=[str(src)], out=str(out), workers=2, return_state=True, **kw)
    return state, state.result(raise_on_failure=False)


def files_table(out: Path) -> pd.DataFrame:
    return catalog_table(out, "files")


def test_every_corpus_drawing_ends_ok_or_failed_with_a_reason(corpus_batch):
    files = files_table(corpus_batch["out"])
    expected = {Path(r["path"]).name: r for r in corpus_batch["rows"]}
    assert sorted(files["path"]) == sorted(expected), "every input recorded, none lost, none twice"
    assert set(files["status"]) <= {"ok", "failed"}
    for row in files.itertuples():
        manifest_row = expected[row.path]
        assert row.sha256 == manifest_row["sha256"]
        if row.status == "failed":
            assert row.error_class and row.error_stage
            assert row.error_message.startswith(f"{row.path}: {row.error_stage}: ")
        if manifest_row["format"] == "dwg":
            assert row.status == "ok", f"{row.path}: {row.error_message}"
            assert row.dwg_reader == "pycadkit" and row.dwg_reader_version == "0.5.1"
            kinds = {Path(o).suffix for o in row.outputs}
            assert (
                kinds == {".svg", ".pdf", ".png"}
                and row.layout_count >= 1
                and row.dxf_version == manifest_row["dxf_version"][:6]
            )
        elif manifest_row["ezdxf_load"] == "fail":
            assert row.status == "failed" and row.error_permanent
        else:
            assert row.status == "ok", f"{row.path}: {row.error_message}"
    summary = corpus_batch["summary"]
    assert summary["files_seen"] == len(expected)
    assert summary["processed"] + summary["failed"] == len(expected)


def test_a_dwg_and_its_dxf_twin_give_the_same_layers_layouts_texts_and_bom(corpus_batch):
    """sample_AC1032.dwg and sample_AC1032_binary.dxf are one drawing saved twice (see test_dwg.py
    for the entity counts and their tolerance)."""
    out = corpus_batch["out"]
    files = files_table(out).set_index("path")
    dwg, dxf = (
        files.loc[name, "sha256"] for name in ("samples__sample_AC1032.dwg", "samples__sample_AC1032_binary.dxf")
    )

    def rows(table: str, columns: list[str]) -> list[tuple]:
        frame = catalog_table(out, f"{table}")
        return [
            sorted(map(tuple, frame.loc[frame["sha256"] == sha, columns].itertuples(index=False))) for sha in (dwg, dxf)
        ]

    layouts = rows("layouts", ["name", "is_model", "tab_order"])
    assert layouts[0] == layouts[1] and len(layouts[0]) == 4
    layers = rows("layers", ["name", "defined", "true_color", "linetype", "is_on", "is_frozen", "is_locked"])
    assert layers[0] == layers[1] and len(layers[0]) == 19
    texts = rows("texts", ["layout", "dxftype", "layer", "tag", "text"])
    assert texts[0] == texts[1] and any(t[1] == "ATTRIB" for t in texts[0])
    bom = rows("bom", ["block_name", "block_path", "layout", "qty", "attributes", "source", "level"])
    assert bom[0] == bom[1] and len(bom[0]) == 2, "BOM rows from the block attributes"
    assert files.loc["samples__sample_AC1032.dwg", "dwg_unsupported_count"] == 31


def test_the_flow_run_fails_visibly_after_publishing_everything(corpus_batch):
    state, summary = corpus_batch["state"], corpus_batch["summary"]
    assert state.is_failed(), "a batch with failed files ends Failed in Prefect"
    assert f"{summary['failed']} failed" in state.message
    runs = catalog_table(corpus_batch["out"], "runs")
    assert list(runs["run_id"]) == [summary["run_id"]] and runs["flow_run_id"].notna().all()


def _heartbeats(api_url: str, flow_run_ids: list[str]) -> list[dict]:
    """The heartbeat events recorded of these flow runs (the server records events in batches)."""
    body = {
        "filter": {
            "event": {"name": ["prefect.flow-run.heartbeat"]},
            "any_resource": {"id": [f"prefect.flow-run.{i}" for i in flow_run_ids]},
        },
        "limit": 50,
    }
    return httpx.post(f"{api_url}/events/filter", json=body, timeout=30).raise_for_status().json()["events"]


def test_the_batch_flow_run_sends_heartbeats_and_its_chunks_subflow_none(corpus_batch, prefect_harness):
    """A server that lasts reads the batch's heartbeats to mark a run whose process died; the
    subflow of its chunks lives in the same process and sends none (each held up its end)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    parent = str(corpus_batch["state"].state_details.flow_run_id)
    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent]))
        )
    assert len(children) == 1, children
    deadline = time.monotonic() + 60
    while not _heartbeats(prefect_harness, [parent]):
        assert time.monotonic() < deadline, f"no heartbeat of the batch's flow run {parent}"
        time.sleep(1)
    assert _heartbeats(prefect_harness, [str(children[0].id)]) == []


def test_outputs_are_valid_documents(corpus_batch):
    out = corpus_batch["out"]
    files = files_table(out)
    ok = files[files["status"] == "ok"]
    checked = {"svg": 0, "pdf": 0, "png": 0}
    for outputs in ok["outputs"]:
        names = [Path(o).name for o in outputs]
        assert "model.svg" in names and "model.pdf" in names and "model.png" in names
        for rel in outputs:
            path = out / rel
            kind = path.suffix[1:]
            if kind == "svg":
                assert ET.parse(path).getroot().tag.endswith("svg")
            elif kind == "pdf":
                with pymupdf.open(path) as pdf:
                    assert pdf.page_count == 1
                    width, height = pdf[0].rect.width, pdf[0].rect.height
                    assert abs(width - 420 / 25.4 * 72) < 1 and abs(height - 297 / 25.4 * 72) < 1  # A3 landscape
            elif kind == "png":
                pix = pymupdf.Pixmap(str(path))
                assert pix.width > 0 and pix.height > 0
            checked[kind] += 1
    assert all(count >= len(ok) for count in checked.values())


def test_failed_inputs_are_quarantined_with_a_report_and_originals_are_untouched(corpus_batch):
    out, lib = corpus_batch["out"], corpus_batch["lib"]
    files = files_table(out)
    failed = files[files["status"] == "failed"]
    assert len(failed) == sum(r["ezdxf_load"] == "fail" for r in corpus_batch["rows"]) > 0  # unparseable DXFs
    for row in failed.itertuples():
        copy = out / row.quarantine
        assert sha256(copy) == row.sha256
        report = json.loads(Path(f"{copy}.error.json").read_text())
        assert report["path"] == row.path and report["error_message"] == row.error_message
        assert report["stage"] == row.error_stage
    for row in corpus_batch["rows"]:  # nothing in the library was changed, moved or deleted
        assert sha256(lib / Path(row["path"]).name) == row["sha256"]
    errors = catalog_table(out, "errors")
    assert len(errors) == len(failed)


def test_the_catalog_reads_in_pandas_and_duckdb_without_duplicates(corpus_batch):
    out = corpus_batch["out"]
    con = delta_duckdb()
    for table in TABLES:
        path = out / "catalog" / table
        frame = catalog_table(out, table)
        [(count,)] = con.sql(f"select count(*) from delta_scan('{path}')").fetchall()
        assert count == len(frame), table
    files = files_table(out)
    assert not files.duplicated(["source_root", "path"]).any()
    layers = catalog_table(out, "layers")
    assert not layers.duplicated(["sha256", "name"]).any()
    joined = con.sql(
        f"select f.path, count(*) from delta_scan('{out}/catalog/files') f "
        f"join delta_scan('{out}/catalog/layers') l using (sha256) group by 1"
    ).fetchall()
    assert len(joined) == (files["status"] == "ok").sum()


def test_an_unchanged_rerun_processes_nothing(corpus_batch):
    out, lib = corpus_batch["out"], corpus_batch["lib"]
    before = {t: catalog_table(out, f"{t}") for t in TABLES if t not in ("runs", "errors")}
    state, summary = run(lib, out)
    assert summary["processed"] == 0 and summary["reused"] == 0
    assert summary["unchanged"] + summary["failed"] == len(corpus_batch["rows"])
    assert summary["failed"] == corpus_batch["summary"]["failed"], "permanent failures are not retried"
    for table, frame in before.items():
        after = catalog_table(out, f"{table}")
        assert len(after) == len(frame), f"{table} gained or lost rows on an unchanged rerun"
    runs = catalog_table(out, "runs")
    assert len(runs) == 2


SMALL = [
    "files/ezdxf/examples_dxf__text_alignments.dxf",
    "files/cadquery/tests__testdata__gear.dxf",
    "files/trimesh/models__2D__250_cycloidal.DXF",
]
GEAR = "tests__testdata__gear.dxf"


def test_the_files_started_before_the_flow_run_are_the_ones_its_chunks_take(tmp_path):
    src = tmp_path / "library"
    src.mkdir()
    for seed in (1, 2, 3):
        (src / f"d{seed}.dxf").write_bytes(drawing(seed))
    out = tmp_path / "out"
    # What `cadpipe run` does before Prefect: plan, hand the plan over, start its files.
    cfg = load_config(None, sources=[str(src)], out=str(out), overrides={"run": {"workers": 2}})
    planned = batch_steps.plan_run(cfg)
    batch_steps.hand_over(cfg, planned)
    batch_steps.start_files_early(cfg, planned)
    state, summary = run(src, out)
    assert batch_steps.drop_early_files(cfg) == 0, "a chunk took every file started early: none left over"
    assert state.is_completed() and summary["processed"] == 3
    assert sorted(files_table(out)["status"]) == ["ok", "ok", "ok"]


def test_a_changed_file_alone_is_reprocessed(corpus_copy, tmp_path):
    lib = corpus_copy(*SMALL)
    out = tmp_path / "out"
    _, first = run(lib, out)
    assert first["processed"] == 3
    target = lib / GEAR
    target.write_bytes(b"999\nrevised\n" + target.read_bytes())
    _, second = run(lib, out)
    assert (second["processed"], second["unchanged"]) == (1, 2)
    files = files_table(out)
    assert files.loc[files["path"] == GEAR, "sha256"].item() == sha256(target)
    assert files.loc[files["path"] == GEAR, "run_id"].item() == second["run_id"]
    assert len(files) == 3


def test_a_moved_file_is_not_rendered_again_and_its_path_is_updated(corpus_copy, tmp_path):
    lib = corpus_copy(*SMALL)
    out = tmp_path / "out"
    run(lib, out)
    old = files_table(out).set_index("path")
    (lib / "archive").mkdir()
    (lib / GEAR).rename(lib / "archive" / "gear-v1.dxf")
    _, summary = run(lib, out)
    assert summary["processed"] == 0 and summary["reused"] == 1 and summary["unchanged"] == 2
    files = files_table(out).set_index("path")
    assert GEAR not in files.index
    moved = files.loc["archive/gear-v1.dxf"]
    assert moved["work_id"] == old.loc[GEAR, "work_id"]
    assert list(moved["outputs"]) == list(old.loc[GEAR, "outputs"])


def test_changed_options_redo_the_work_declaratively(corpus_copy, tmp_path):
    lib = corpus_copy(SMALL[0])
    out = tmp_path / "out"
    run(lib, out)
    config = tmp_path / "c.toml"
    config.write_text('[dxf]\noutputs = ["svg"]\n')
    _, summary = run(lib, out, config=str(config))
    assert summary["processed"] == 1
    [outputs] = files_table(out)["outputs"]
    assert [Path(o).name for o in outputs] == ["model.svg", "model.thumb.png"]


def test_a_timeout_is_recorded_and_the_batch_goes_on(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "endless.dxf").write_bytes(endless_drawing())
    (lib / "small.dxf").write_bytes(drawing(1))
    # The limit comes from this run: ten times what a small drawing takes here, at least 2 s.
    timeout_s = calibrated_timeout(tmp_path, load_config(), factor=10, floor=2.0)
    config = tmp_path / "c.toml"
    config.write_text(f"[limits]\ntimeout_s = {timeout_s}\n[retries]\nattempts = 2\nbackoff_s = 0.1\n")
    state, summary = run(lib, tmp_path / "out", config=str(config))
    assert state.is_failed()
    files = files_table(tmp_path / "out").set_index("path")
    endless = files.loc["endless.dxf"]
    assert endless["status"] == "failed" and endless["error_class"] == "Timeout" and endless["attempts"] == 2
    assert endless["error_limit"] == timeout_s
    assert not endless["error_permanent"], "a timeout is transient: the next run tries again"
    assert files.loc["small.dxf", "status"] == "ok"


def test_a_dwg_named_dxf_is_recognised_and_read_as_dwg(corpus_dir, tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    dwg = corpus_dir / "files/acadsharp/samples__dynamic-blocks__BLOCKVISIBILITYPARAMETER.dwg"
    shutil.copy2(dwg, lib / "plan.dxf")
    shutil.copy2(dwg, lib / "plan.dwg")
    _, summary = run(lib, tmp_path / "out")
    files = files_table(tmp_path / "out").set_index("path")
    named_dxf = files.loc["plan.dxf"]
    assert named_dxf["format"] == "dwg" and named_dxf["status"] == "ok", named_dxf["error_message"]
    assert named_dxf["dwg_reader"] == "pycadkit"
    assert named_dxf["work_id"] == files.loc["plan.dwg", "work_id"], "same content, same work, whatever the name"
    entities = catalog_table(tmp_path / "out", "entities")
    assert entities.loc[entities["sha256"] == named_dxf["sha256"], "count"].sum() == named_dxf["entity_count"] == 4


def test_the_cli_prints_a_summary_and_exits_non_zero_on_failure(corpus_copy, tmp_path, cli_env):
    lib = corpus_copy(SMALL[0])
    (lib / "broken.dxf").write_text("0\nSECTION\n2\nENTITIES\n0\nLINE\n8\n0\n10\nnot a number\n")
    cmd = [sys.executable, "-m", "flows.cli", "run", str(lib), "--out", str(tmp_path / "out"), "--workers", "1"]
    proc = subprocess.run(cmd, cwd=REPO, env=cli_env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "broken.dxf: load:" in proc.stdout
    assert "files seen" in proc.stdout
    (lib / "broken.dxf").unlink()
    proc = subprocess.run(cmd, cwd=REPO, env=cli_env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]


def test_a_config_mistake_exits_2_with_the_option_named(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[dxf]\npng_dpy = 100\n")
    proc = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", "--config", str(config), "--out", str(tmp_path / "o")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2
    assert "dxf.png_dpy" in proc.stderr


def test_a_missing_source_exits_2_before_any_work(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", str(tmp_path / "nope"), "--out", str(tmp_path / "o")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2 and "input not found" in proc.stderr
    assert not (tmp_path / "o").exists()
