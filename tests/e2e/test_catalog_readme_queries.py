"""Every query and command of the README's "The catalog" section runs as written, with DuckDB,
Polars and pandas, on a catalog of a DXF-only run and on one with models, each made by two real
batches (the first one "last night"). That its table documentation is the declared schemas:
tests/unit/test_catalog_readme.py."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.catalog_store import TABLES
from tests.conftest import REPO, catalog_table
from tests.docs_drawings import broken_drawing, frame_drawing, pump_drawing
from tests.unit.test_catalog_readme import blocks

STEP_MODELS = (
    "files/cadquery/tests__testdata__red_cube_blue_cylinder.step",
    "files/occt-import-js/test__testfiles__cax-if__dm1-pe-214.stp",  # an assembly of 8 products
)


# Two catalogs made by real runs.


def _batch(lib: Path, out: Path) -> dict:
    from flows.batch import batch

    state = batch(sources=[str(lib)], out=str(out), workers=2, return_state=True)
    return state.result(raise_on_failure=False)


def _age_history(out: Path, when: datetime) -> None:
    """Make every commit so far look as if it happened at `when` (Delta Lake reads a version's
    time from its commit file's modification time)."""
    stamp = when.timestamp()
    for log in (out / "catalog").glob("*/_delta_log/*.json"):
        os.utime(log, (stamp, stamp))


@pytest.fixture(scope="module", params=["dxf-only", "with-models"])
def catalog(request, tmp_path_factory, corpus_dir, prefect_harness):
    """`<dir>/out` after a run "last night" (an hour before 00:00 UTC today) and one now that
    added a drawing (and, with models, a model)."""
    base = tmp_path_factory.mktemp(request.param)
    lib, out = base / "library", base / "out"
    lib.mkdir()
    pump_drawing(lib / "pump.dxf")
    frame_drawing(lib / "frame.dxf")
    broken_drawing(lib / "broken.dxf")
    shutil.copy2(REPO / "data" / "samples" / "gear.dxf", lib / "gear.dxf")
    if request.param == "with-models":
        shutil.copy2(corpus_dir / STEP_MODELS[0], lib / "cube.step")
    first = _batch(lib, out)
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    _age_history(out, midnight - timedelta(hours=1))
    shutil.copy2(REPO / "data" / "samples" / "text_alignments.dxf", lib / "texts.dxf")
    if request.param == "with-models":
        shutil.copy2(corpus_dir / STEP_MODELS[1], lib / "assembly.stp")
    second = _batch(lib, out)
    return {"dir": base, "out": out, "first": first, "second": second, "kind": request.param}


def test_the_runs_recorded_what_the_queries_read(catalog):
    first, second = catalog["first"], catalog["second"]
    assert first["failed"] == 1 and second["failed"] == 1, "broken.dxf fails, permanently"
    assert second["processed"] == (2 if catalog["kind"] == "with-models" else 1)
    assert second["unchanged"] == first["processed"], "nothing processed twice"


def test_every_readme_query_runs_on_the_catalog(catalog, monkeypatch):
    monkeypatch.chdir(catalog["dir"])  # the README's paths are out/catalog/...
    namespace: dict = {}
    setup, *queries = blocks("python")
    exec(setup, namespace)  # the DuckDB connection with the delta extension, offline
    con = namespace["con"]
    for block in blocks("sql"):
        for statement in (s.strip() for s in block.split(";")):
            relation = con.sql(statement) if statement else None
            if relation is not None:  # attach has no result
                relation.fetchall()
    results = {}
    for query in queries:
        scope: dict = {}
        exec(query, scope)
        results.update(scope)
    out = catalog["out"]
    now = catalog_table(out, "files")
    assert results["files"].shape[0] == len(now) and str(results["files"]["attempts"].dtype) == "Int64"
    assert set(results["failed"]["path"]) == {"broken.dxf"}
    assert results["per_format"]["files"].sum() == len(now)
    assert results["texts"].height == len(catalog_table(out, "texts").merge(now[["sha256", "path"]], on="sha256"))
    # As of last night: the first run's files; what changed since: what the second run added.
    added = {"texts.dxf"} | ({"assembly.stp"} if catalog["kind"] == "with-models" else set())
    assert results["then"].height == len(now) - len(added)
    assert len(results["then_pandas"]) == len(now) - len(added)
    assert {path for path, _ in results["changed"]} == added


def test_every_readme_catalog_command_runs_as_written(catalog):
    commands = [line.split("#")[0].strip() for block in blocks("sh") for line in block.splitlines()]
    commands = [c for c in commands if c.startswith(".venv/bin/cadpipe catalog")]  # all of them
    assert len(commands) >= 6
    for command in commands:
        argv = shlex.split(command)
        argv[0] = str(REPO / argv[0])
        done = subprocess.run(argv, cwd=catalog["dir"], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{command}: {done.stderr[-2000:]}"
        assert done.stdout.strip(), f"{command} printed nothing"
    listed = subprocess.run(
        [str(REPO / ".venv/bin/cadpipe"), "catalog", "history", "--out", "out", "--table", "runs"],
        cwd=catalog["dir"],
        capture_output=True,
        text=True,
    ).stdout
    assert catalog["first"]["run_id"] in listed and catalog["second"]["run_id"] in listed
    exported = catalog["dir"] / "catalog-parquet"
    assert {p.stem for p in exported.glob("*.parquet")} == set(TABLES)
    assert (catalog["dir"] / "catalog-xlsx" / "catalog.xlsx").is_file()
