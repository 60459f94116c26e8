"""The README's "The catalog" section against the code: its table documentation is the declared
schemas (engine/catalog_store.py), and it shows the queries and commands that
tests/e2e/test_catalog_readme_queries.py runs as written on catalogs of real batches."""

from __future__ import annotations

import re

import pyarrow as pa

from engine.catalog_store import TABLES
from tests.conftest import REPO

TYPE_NAMES = {
    pa.string(): "string",
    pa.int64(): "int64",
    pa.float64(): "float64",
    pa.bool_(): "bool",
    pa.timestamp("us", tz="UTC"): "timestamp[us, UTC]",
    pa.list_(pa.string()): "list<string>",
}


def catalog_section() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("\n## The catalog\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def documented_tables() -> dict[str, dict[str, str]]:
    """table -> column -> type, from the README's `**`table`**` headings and their tables."""
    tables: dict[str, dict[str, str]] = {}
    current = None
    for line in catalog_section().splitlines():
        heading = re.match(r"^\*\*`(\w+)`\*\*:", line)
        if heading:
            current = tables.setdefault(heading.group(1), {})
            continue
        if current is None or not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        for name in re.findall(r"`(\w+)`", cells[0]):
            assert name not in current, f"README documents {name!r} twice"
            current[name] = cells[1]
    return tables


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", catalog_section(), re.S)


def test_the_readme_documents_every_table_and_column_with_its_declared_type():
    documented = documented_tables()
    assert set(documented) == set(TABLES), "tables documented in the README are the declared ones"
    for name, spec in TABLES.items():
        declared = {f.name: TYPE_NAMES[f.type] for f in spec.schema}
        assert list(documented[name]) == list(declared), f"{name}: README columns, in the declared order"
        assert documented[name] == declared, f"{name}: README types"


def test_the_readme_shows_queries_for_duckdb_polars_pandas_and_history():
    python = "\n".join(blocks("python"))
    assert blocks("sql") and "delta_scan(" in "".join(blocks("sql"))
    for needle in ("pl.scan_delta", "pl.read_delta", "to_pandas", "load_as_version", "duckdb.sql"):
        assert needle in python, needle
    commands = "\n".join(blocks("sh"))
    assert "catalog history" in commands and "--as-of" in commands
    for fmt in ("parquet", "csv", "xlsx"):
        assert f"--format {fmt}" in commands


def test_the_readme_queries_never_show_the_rows_of_superseded_contents(tmp_path, monkeypatch):
    """The README's queries, run as written on a catalog whose detail tables still hold the rows
    of a changed drawing's previous content and of a removed file's (left for maintenance)."""
    import os
    from datetime import UTC, datetime, timedelta

    from engine.catalog_store import CatalogStore
    from tests.catalog_store_proc import sha
    from tests.unit.test_catalog_store import drawing_row, publish_one

    store = CatalogStore(tmp_path / "out" / "catalog")
    publish_one(store, "night", [drawing_row("a.dxf", sha("a1")), drawing_row("b.dxf", sha("b1"))], texts=3)
    night = (datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(hours=1)).timestamp()
    for log in store.root.glob("*/_delta_log/*.json"):  # the first run "last night"
        os.utime(log, (night, night))
    publish_one(store, "now", [drawing_row("a.dxf", sha("a2"))], texts=1, removed=[("/lib", "b.dxf")])
    stale = {sha("a1"), sha("b1")}
    assert stale <= set(store.read("texts", superseded=True)["sha256"].to_pylist()), "stored until maintenance"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    setup, *queries = blocks("python")
    exec(setup, namespace)
    con = namespace["con"]
    [layers_query, *_] = [s.strip() for block in blocks("sql") for s in block.split(";") if s.strip()]
    assert "join delta_scan('out/catalog/layers')" in layers_query
    assert con.sql(layers_query).fetchall() == [("a.dxf", "0", 3)]
    for block in blocks("sql"):
        for statement in (s.strip() for s in block.split(";")):
            relation = con.sql(statement) if statement else None
            rows = relation.fetchall() if relation is not None else []
            assert not stale & {v for row in rows for v in row if isinstance(v, str)}, statement
    results: dict = {}
    for query in queries:
        scope: dict = {}
        exec(query, scope)
        results.update(scope)
    assert set(results["texts"]["sha256"]) == {sha("a2")} and results["texts"].height == 1
    assert set(results["layers"]["sha256"]) == {sha("a2")}
