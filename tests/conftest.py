"""Shared fixtures: the real corpus beside the repository, copied before anything touches it."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("CADPIPE_CORPUS", REPO.parent / "shared" / "corpus")).resolve()


def catalog_table(out: Path | str, name: str) -> pd.DataFrame:
    """A catalog table (a Delta table under OUT/catalog/) as a pandas user reads it."""
    from deltalake import DeltaTable

    return DeltaTable(Path(out) / "catalog" / name).to_pandas()


def delta_duckdb():
    """DuckDB with the delta extension of the duckdb-ext-delta package: no network needed."""
    import duckdb

    from engine.catalog_store import duckdb_extension_directory

    con = duckdb.connect(
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "extension_directory": duckdb_extension_directory(),
        }
    )
    con.execute("LOAD delta")
    return con


def corpus_manifest() -> list[dict[str, str]]:
    with open(CORPUS / "manifest.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not (CORPUS / "manifest.csv").exists():
        pytest.fail(f"corpus not found at {CORPUS}; set CADPIPE_CORPUS")
    return CORPUS


@pytest.fixture(scope="session")
def manifest() -> list[dict[str, str]]:
    return corpus_manifest()


@pytest.fixture
def corpus_copy(tmp_path: Path, corpus_dir: Path):
    """Copy selected corpus files (paths relative to the corpus root) into a temporary folder."""

    def copy(*relative: str, dest: Path | None = None) -> Path:
        target = dest or tmp_path / "corpus"
        for rel in relative:
            out = target / Path(rel).name
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(corpus_dir / rel, out)
        return target

    return copy


# Prefect: no telemetry from a machine without a route out; a generous start-up for 2 cores.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


@pytest.fixture(scope="session")
def prefect_harness():
    """One real (temporary) Prefect server for the whole session: flows run against it."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="session")
def corpus_batch(tmp_path_factory, corpus_dir, manifest, prefect_harness):
    """Every DXF and DWG of the corpus, in one library, processed once by the batch flow and
    shared by the tests that read its catalog and outputs (none of them changes the library)."""
    from flows.batch import batch

    lib = tmp_path_factory.mktemp("library")
    rows = [r for r in manifest if r["format"] in ("dxf", "dxf-binary", "dwg")]
    for row in rows:
        shutil.copy2(corpus_dir / row["path"], lib / Path(row["path"]).name)
    out = tmp_path_factory.mktemp("out")
    state = batch(sources=[str(lib)], out=str(out), workers=2, return_state=True)
    return {"lib": lib, "out": out, "rows": rows, "state": state, "summary": state.result(raise_on_failure=False)}
