"""Full-text search over the library: an SQLite FTS5 index at `OUT/catalog/search.sqlite`.

Built at publish from each recorded content's result record (the one the catalog is built from),
incrementally: contents no file holds any more are dropped, new ones added, the rest left as they
are. One entry per searchable thing, each with the drawing content, layout, handle and the
output it shows in:

- `texts`: TEXT and MTEXT (in layouts and in block definitions), plain text;
- `attributes`: ATTRIB values of block references, with their tag;
- `bom`: BOM rows: every value column and the raw attribute values;
- `title`: title-block fields (title, number, revision ...).

Why SQLite FTS5 and not DuckDB's `fts` extension: FTS5 is in Python's standard library (nothing to
download or pin; DuckDB's extension must come from the network or a `duckdb-ext-*` wheel pinned
to the exact DuckDB version), it ranks with BM25, answers prefix queries from a prefix index, can
be updated row by row (DuckDB's `PRAGMA create_fts_index` rebuilds the whole index from a table),
and the index is one file any SQLite client reads. Updates run in one SQLite transaction, under
the catalog's lock: a reader sees the index before a publish or after it.

Words match as prefixes, accents and case ignored: `M6 bolt` finds "Hex bolt M6x20"; a quoted
phrase must appear as written (`"DIN 933"`). Every word must occur in the same entry.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from engine.catalog import CATALOG_DIR, Catalog
from engine.work import RESULT_FILE, work_dir
from extractors.title_block import DEFAULT_TITLE_TAG_MAP

INDEX_FILE = "search.sqlite"
SCHEMA_VERSION = "1"
SCOPES = ("texts", "attributes", "bom", "title")
# BOM columns that are bookkeeping or numbers, not words to find: every other column is.
_BOM_NOT_TEXT = {"sha256", "handle", "level", "insert_count", "source", "attributes", "block_path", "layout"}
_BOM_NOT_TEXT |= {"qty", "mass", "parent"}
_PREFERRED_RENDER = ("svg", "pdf", "png")
_SCHEMA = """
create table meta(key text primary key, value text);
create table contents(sha256 text primary key, work_id text not null, first_row integer, last_row integer);
create table paths(source_root text not null, path text not null, sha256 text not null, work_id text not null);
create index paths_sha on paths(sha256);
create virtual table entries using fts5(
    text, scope unindexed, sha256 unindexed, layout unindexed, handle unindexed, label unindexed,
    link unindexed, tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3'
);
"""


class SearchError(RuntimeError):
    """The index is missing or the query cannot be understood."""


@dataclass(frozen=True)
class Entry:
    scope: str
    text: str
    layout: str | None
    handle: str | None
    label: str  # what it is: "TEXT", "ATTRIB REV", "BOM row B-100", "title: revision"
    link: str | None  # the output it shows in, relative to OUT


@dataclass(frozen=True)
class Hit:
    rank: float  # BM25, lower is better
    source_root: str
    path: str
    sha256: str
    scope: str
    label: str
    layout: str | None
    handle: str | None
    text: str
    snippet: str  # the text around the match, each matched word in «»
    output: str | None  # absolute path of the output the entry shows in
    datasheet: str  # absolute path of the drawing's datasheet

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def index_path(out: Path | str) -> Path:
    return Path(out) / CATALOG_DIR / INDEX_FILE


# What a content contributes.


def entries_of(record: dict) -> list[Entry]:
    """The searchable entries of one result record (engine/work.py's result.json)."""
    links = _layout_links(record)
    tables = record.get("tables", {})
    entries = []
    for row in tables.get("texts", []):
        text = _text(row.get("text"))
        if not text:
            continue
        layout = row.get("layout")
        link = links.get(layout) if layout else None
        if row.get("dxftype") == "ATTRIB":
            tag = _text(row.get("tag"))
            entries.append(Entry("attributes", text, layout, row.get("handle"), f"ATTRIB {tag}".strip(), link))
        else:
            entries.append(Entry("texts", text, layout, row.get("handle"), str(row.get("dxftype") or "TEXT"), link))
    for row in tables.get("bom", []):
        values = [_text(v) for c, v in row.items() if c not in _BOM_NOT_TEXT and isinstance(v, str)]
        try:
            raw = json.loads(row.get("attributes") or "{}")
        except (TypeError, ValueError):
            raw = {}
        values += [_text(v) for v in raw.values()] if isinstance(raw, dict) else []
        text = " ".join(dict.fromkeys(v for v in values if v))  # each value once, in order
        if text:
            name = _text(row.get("part_number")) or _text(row.get("item_no")) or _text(row.get("block_name"))
            layout = row.get("layout")
            entries.append(Entry("bom", text, layout, row.get("handle"), f"BOM row {name}".strip(), links.get(layout)))
    summary = record.get("summary", {})
    layout = summary.get("title_block_layout")
    for column in [*DEFAULT_TITLE_TAG_MAP, *_extra_title_columns(record)]:
        text = _text(summary.get(column))
        if text:
            entries.append(Entry("title", text, layout, None, f"title: {column}", links.get(layout)))
    return entries


def _extra_title_columns(record: dict) -> list[str]:
    tags = record.get("options", {}).get("title_block", {}).get("tags", {}) or {}
    return [c for c in tags if c not in DEFAULT_TITLE_TAG_MAP]


def _layout_links(record: dict) -> dict[str, str]:
    """Layout name -> its render (SVG first), relative to OUT."""
    found: dict[str, dict[str, str]] = {}
    for o in record.get("outputs", []):
        if o.get("layout"):
            found.setdefault(o["layout"], {})[o["format"]] = o["file"]
    wid = record.get("work_id")
    links = {}
    for layout, files in found.items():
        for fmt in _PREFERRED_RENDER:
            if fmt in files:
                links[layout] = f"outputs/{wid}/{files[fmt]}"
                break
    return links


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return " ".join(str(value).split())


# Keeping the index up to date.


@contextlib.contextmanager
def _connect(path: Path, readonly: bool = False) -> Iterator[sqlite3.Connection]:
    uri = f"{path.resolve().as_uri()}?mode={'ro' if readonly else 'rwc'}"
    connection = sqlite3.connect(uri, uri=True, isolation_level=None)
    try:
        yield connection
    finally:
        connection.close()


def _usable(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        with _connect(path, readonly=True) as db:
            row = db.execute("select value from meta where key = 'schema'").fetchone()
            return row is not None and row[0] == SCHEMA_VERSION
    except sqlite3.Error:
        return False


def update_index(out: Path | str, files: pd.DataFrame | None = None) -> dict[str, int]:
    """Bring the index in line with the catalog's `files` table; return what it did.

    Runs under the catalog lock (publishers write one after the other); an index that is missing,
    unreadable or of another schema is built afresh beside it and renamed into place."""
    out = Path(out)
    catalog = Catalog(out)
    with catalog.lock():
        if files is None:  # the columns that say which content each recorded path holds
            files = catalog.read("files", columns=["source_root", "path", "status", "sha256", "work_id"])
        path = index_path(out)
        if _usable(path):
            return _update(out, path, files)
        tmp = path.with_name(f".{INDEX_FILE}.tmp-{os.getpid()}")
        tmp.unlink(missing_ok=True)
        try:
            with _connect(tmp) as db:
                db.executescript(_SCHEMA)
                db.execute("insert into meta values ('schema', ?)", (SCHEMA_VERSION,))
            done = _update(out, tmp, files)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return done


def _live(files: pd.DataFrame) -> pd.DataFrame:
    if files.empty:
        return pd.DataFrame(columns=["source_root", "path", "sha256", "work_id"])
    ok = files[(files["status"] == "ok") & files["sha256"].notna() & files["work_id"].notna()]
    return ok[["source_root", "path", "sha256", "work_id"]]


def _update(out: Path, path: Path, files: pd.DataFrame) -> dict[str, int]:
    live = _live(files)
    wanted = dict(zip(live["sha256"], live["work_id"]))
    done = {"added": 0, "removed": 0, "entries": 0, "missing": 0}
    with _connect(path) as db:
        db.execute("begin immediate")
        try:
            held = dict(db.execute("select sha256, work_id from contents"))
            for sha, wid in held.items():
                if wanted.get(sha) != wid:
                    first, last = db.execute(
                        "select first_row, last_row from contents where sha256 = ?", (sha,)
                    ).fetchone()
                    if first is not None:
                        db.execute("delete from entries where rowid between ? and ?", (first, last))
                    db.execute("delete from contents where sha256 = ?", (sha,))
                    done["removed"] += 1
            for sha, wid in wanted.items():
                if held.get(sha) == wid:
                    continue
                record = _record(out, wid)
                if record is None:  # outputs deleted by hand: nothing to index
                    done["missing"] += 1
                    continue
                first = last = None
                for e in entries_of(record):
                    cursor = db.execute(
                        "insert into entries(text, scope, sha256, layout, handle, label, link) values (?,?,?,?,?,?,?)",
                        (e.text, e.scope, sha, e.layout, e.handle, e.label, e.link),
                    )
                    first = cursor.lastrowid if first is None else first
                    last = cursor.lastrowid
                    done["entries"] += 1
                db.execute("insert into contents values (?, ?, ?, ?)", (sha, wid, first, last))
                done["added"] += 1
            db.execute("delete from paths")
            db.executemany("insert into paths values (?, ?, ?, ?)", live.itertuples(index=False, name=None))
            db.execute("commit")
        except BaseException:
            db.execute("rollback")
            raise
    return done


def _record(out: Path, wid: str) -> dict | None:
    try:
        return json.loads((work_dir(out, wid) / RESULT_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


# Asking it.

_TERM = re.compile(r'"([^"]*)"|(\S+)')


def match_expression(query: str) -> str:
    """The FTS5 query of what a person typed: each word a prefix, a quoted phrase as written,
    every one required. Operators and punctuation are text, never FTS5 syntax."""
    terms = []
    for phrase, word in _TERM.findall(query):
        text = (phrase or word).strip()
        if not re.search(r"\w", text):
            continue
        quoted = '"' + text.replace('"', '""') + '"'
        terms.append(quoted if phrase else quoted + "*")
    if not terms:
        raise SearchError(f"nothing to search for in {query!r}")
    return " ".join(terms)


def search(out: Path | str, query: str, scopes: Iterable[str] = (), limit: int = 50) -> list[Hit]:
    """The entries matching `query`, best first (BM25), one hit per path holding the content."""
    out = Path(out)
    scopes = list(scopes)
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise SearchError(f"unknown scope {', '.join(unknown)}; expected one of {', '.join(SCOPES)}")
    expression = match_expression(query)
    path = index_path(out)
    if not path.is_file():
        raise SearchError(f"no search index at {path}: run `cadpipe run` on the library first")
    sql = (
        "select bm25(entries), sha256, scope, label, layout, handle, text,"
        " snippet(entries, 0, '«', '»', '...', 16), link from entries where entries match ?"
    )
    params: list[Any] = [expression]
    if scopes:
        sql += f" and scope in ({', '.join('?' for _ in scopes)})"
        params += scopes
    sql += " order by bm25(entries), rowid limit ?"
    params.append(limit)
    with _connect(path, readonly=True) as db:
        try:
            rows = db.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:  # should not happen: every term is quoted
            raise SearchError(f"cannot search for {query!r}: {exc}") from exc
        held: dict[str, list[tuple[str, str]]] = {}
        for sha in {r[1] for r in rows}:
            held[sha] = db.execute(
                "select source_root, path from paths where sha256 = ? order by source_root, path", (sha,)
            ).fetchall()
    hits = []
    for rank, sha, scope, label, layout, handle, text, snippet, link in rows:
        for source_root, where in held.get(sha, []):
            hits.append(
                Hit(
                    rank=round(rank, 6),
                    source_root=source_root,
                    path=where,
                    sha256=sha,
                    scope=scope,
                    label=label,
                    layout=layout,
                    handle=handle,
                    text=text,
                    snippet=snippet,
                    output=str(out / link) if link else None,
                    datasheet=str(out / "docs" / "files" / f"{sha}.html"),
                )
            )
    return hits[:limit]


def client_entries(out: Path | str, per_content: int, text_chars: int) -> dict[str, list[list[Any]]]:
    """sha256 -> [[scope, label, layout, handle, text], ...] for the HTML pages' own search: at
    most `per_content` entries per drawing, each text cut at `text_chars` (the command line
    searches everything)."""
    path = index_path(out)
    if not path.is_file():
        return {}
    grouped: dict[str, list[list[Any]]] = {}
    with _connect(path, readonly=True) as db:
        for sha, scope, label, layout, handle, text in db.execute(
            "select sha256, scope, label, layout, handle, text from entries order by rowid"
        ):
            rows = grouped.setdefault(sha, [])
            if len(rows) < per_content:
                rows.append([scope, label, layout, handle, text[:text_chars]])
    return grouped
