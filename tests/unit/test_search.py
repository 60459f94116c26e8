"""Full-text search: the SQLite FTS5 index on records written as a worker writes them (real
SQLite, real files in a temporary folder, no Prefect)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from engine.catalog import Catalog
from engine.search_index import SearchError, index_path, match_expression, search, update_index


def write_record(out: Path, wid: str, sha: str, texts=(), bom=(), summary=None) -> None:
    folder = out / "outputs" / wid
    folder.mkdir(parents=True)
    record = {
        "work_id": wid,
        "sha256": sha,
        "summary": summary or {},
        "tables": {"texts": list(texts), "bom": list(bom)},
        "outputs": [{"layout": "Model", "format": "svg", "file": "model.svg", "empty": False}],
        "options": {"title_block": {"tags": {"project": ["PROJ"]}}},
    }
    (folder / "result.json").write_text(json.dumps(record), encoding="utf-8")


def text(handle, value, dxftype="TEXT", tag=None, layout="Model"):
    return {"layout": layout, "dxftype": dxftype, "handle": handle, "layer": "0", "tag": tag, "text": value}


def publish(out: Path, *rows: tuple[str, str, str]) -> None:
    """The catalog's files table: (path, sha256, work_id) rows, all ok."""
    files = [{"source_root": "/lib", "path": p, "sha256": s, "work_id": w, "status": "ok"} for p, s, w in rows]
    Catalog(out).write("files", pd.DataFrame(files))


@pytest.fixture
def indexed(tmp_path):
    out = tmp_path / "out"
    write_record(
        out,
        "w1",
        "s1",
        texts=[
            text("2A", "Hex bolt M6x20 DIN 933"),
            text("2B", "Schraube gehärtet", dxftype="MTEXT", layout="block:DETAIL"),
            text("2C", "C-17", dxftype="ATTRIB", tag="PART_NO"),
        ],
        bom=[
            {
                "part_number": "C-17",
                "description": "Clamp",
                "qty": 2.0,
                "handle": "3A",
                "layout": "Model",
                "attributes": json.dumps({"PART_NO": "C-17", "FINISH": "zinc plated"}),
            }
        ],  # fmt: skip
        summary={"title": "Clamp assembly", "revision": "B", "project": "Hydro 7", "title_block_layout": "Model"},
    )
    write_record(out, "w2", "s2", texts=[text("5", "Nut M6")])
    publish(out, ("a.dxf", "s1", "w1"), ("copy/a.dxf", "s1", "w1"), ("b.dxf", "s2", "w2"))
    assert update_index(out) == {"added": 2, "removed": 0, "entries": 8, "missing": 0}
    return out


def test_words_are_prefixes_and_accents_and_case_do_not_matter(indexed):
    hits = search(indexed, "m6 bolt")
    assert [(h.path, h.handle, h.scope, h.label) for h in hits] == [
        ("a.dxf", "2A", "texts", "TEXT"),
        ("copy/a.dxf", "2A", "texts", "TEXT"),  # one content, two paths
    ]
    assert hits[0].snippet == "Hex «bolt» «M6x20» DIN 933"
    assert hits[0].output == str(indexed / "outputs" / "w1" / "model.svg")
    assert [h.handle for h in search(indexed, "gehartet")] == ["2B", "2B"]  # ä folded
    assert search(indexed, "gehartet")[0].output is None  # in a block definition: no layout render
    assert {h.path for h in search(indexed, "M6")} == {"a.dxf", "copy/a.dxf", "b.dxf"}


def test_scopes_and_a_quoted_phrase(indexed):
    assert {h.scope for h in search(indexed, "C-17")} == {"attributes", "bom"}
    assert [h.label for h in search(indexed, "C-17", ["bom"])][:1] == ["BOM row C-17"]
    assert [h.handle for h in search(indexed, "zinc", ["bom"])] == ["3A", "3A"]  # raw attribute values
    assert [h.label for h in search(indexed, "hydro", ["title"])][:1] == ["title: project"]  # a configured column
    assert search(indexed, "clamp", ["texts"]) == []
    assert len(search(indexed, '"DIN 933"')) == 2 and search(indexed, '"933 DIN"') == []


@pytest.mark.parametrize("query", ['" OR "', "NEAR(a b)", "a AND", "*", "col:value", "'\""])
def test_search_syntax_is_text_never_an_fts_operator(indexed, query):
    try:
        search(indexed, query)
    except SearchError as exc:
        assert "nothing to search for" in str(exc)
    assert match_expression('M6 "DIN 933" x"y') == '"M6"* "DIN 933" "x""y"*'


def test_the_index_follows_the_catalog(indexed):
    write_record(indexed, "w3", "s3", texts=[text("9", "Washer M6")])
    publish(indexed, ("a.dxf", "s1", "w1"), ("b.dxf", "s3", "w3"))  # b.dxf changed, copy/ gone
    assert update_index(indexed) == {"added": 1, "removed": 1, "entries": 1, "missing": 0}
    assert [(h.path, h.text) for h in search(indexed, "M6") if h.path == "b.dxf"] == [("b.dxf", "Washer M6")]
    assert "copy/a.dxf" not in {h.path for h in search(indexed, "bolt")}
    with sqlite3.connect(index_path(indexed)) as db:
        assert db.execute("select count(*) from entries where sha256 = 's2'").fetchone() == (0,)


def test_a_damaged_index_is_built_again(indexed):
    index_path(indexed).write_bytes(b"not a database")
    update_index(indexed)
    assert len(search(indexed, "bolt")) == 2
    assert [p.name for p in index_path(indexed).parent.iterdir() if ".tmp-" in p.name] == []


def test_no_index_is_an_error_that_says_what_to_do(tmp_path):
    with pytest.raises(SearchError, match="cadpipe run"):
        search(tmp_path, "bolt")
    with pytest.raises(SearchError, match="unknown scope"):
        search(tmp_path, "bolt", ["everything"])
