"""What both layers share: where the repository and the corpus are, and the layer of each test.

Tests live in `tests/unit` (no corpus, no Prefect server, no browser, no LibreCAD: seconds) or
`tests/e2e` (the real corpus, Prefect's test harness or a real server, a browser, the command line
in subprocesses, LibreCAD); the folder gives a test its marker, so `pytest -m unit` and
`pytest tests/unit` select the same tests. The e2e fixtures are in tests/e2e/conftest.py.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("CADPIPE_CORPUS", REPO.parent / "shared" / "corpus")).resolve()
TESTS = Path(__file__).resolve().parent
LAYERS = ("unit", "e2e")
NO_CORPUS = f"corpus not found at {CORPUS} (set CADPIPE_CORPUS): the end-to-end tests are skipped"

# Prefect: no telemetry from a machine without a route out; a generous start-up for 2 cores.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def corpus_available() -> bool:
    return (CORPUS / "manifest.csv").is_file()


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


def layer_of(path: Path) -> str | None:
    """`unit` or `e2e` for a test file below that folder, None for one anywhere else."""
    try:
        first = Path(path).resolve().relative_to(TESTS).parts[0]
    except (ValueError, IndexError):
        return None
    return first if first in LAYERS else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    outside = sorted({str(item.path.relative_to(REPO)) for item in items if layer_of(item.path) is None})
    if outside:
        raise pytest.UsageError(
            f"tests outside tests/unit and tests/e2e: {', '.join(outside)}; move each into the layer it "
            "belongs to (README, Development)"
        )
    items.sort(key=lambda item: layer_of(item.path) != "unit")  # the fast layer first; stable within each
    skip = None if corpus_available() else pytest.mark.skip(reason=NO_CORPUS)
    for item in items:
        layer = layer_of(item.path)
        item.add_marker(layer)
        if layer == "e2e" and skip is not None:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    # Counted from the reports, not the stash: under pytest-xdist (`make test`) the workers
    # collect, and this process only sees their reports.
    reports = terminalreporter.stats.get("skipped", [])
    skipped = sum(1 for report in reports if NO_CORPUS in str(report.longrepr))
    if skipped:
        terminalreporter.write_line(f"{skipped} e2e tests skipped: {NO_CORPUS}", yellow=True, bold=True)
