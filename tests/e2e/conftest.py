"""The end-to-end fixtures: the real corpus beside the repository (copied before anything touches
it), one Prefect test-harness server for the session, and one batch over the corpus shared by the
tests that only read what it made."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CORPUS, NO_CORPUS, corpus_available, corpus_manifest


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not corpus_available():  # collection skips every e2e test then; this guards a direct call
        pytest.skip(NO_CORPUS)
    return CORPUS


@pytest.fixture(scope="session")
def manifest(corpus_dir) -> list[dict[str, str]]:
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


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[str]:
    """One real (temporary) Prefect server for the whole session: flows run against it. Yields
    its API URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield PREFECT_API_URL.value()


@pytest.fixture
def cli_env(prefect_harness: str) -> dict[str, str]:
    """The environment of a `cadpipe` command run in a subprocess: the session's Prefect server,
    so that the command starts no temporary server of its own (about 18 s each on 2 cores). The
    temporary server itself is tested by test_temporary_server.py and test_server_loss.py."""
    return {**os.environ, "PREFECT_API_URL": prefect_harness}


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
