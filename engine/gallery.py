"""The gallery of every drawing in the catalog, the thumbnails of the reports, and the search
index the HTML pages load (no Prefect; engine/docs.py writes what is built here).

Thumbnails are the `<stem>.thumb.png` the worker made from each layout's render
(converters/placement.py); the catalog's `outputs` column lists them, so nothing here opens a
drawing or a result record.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

import pandas as pd

from converters.datasheet import href, is_missing, native_href
from converters.gallery_page import ChangeBadge, Gallery, GalleryCard, Thumbnail
from engine.search_index import client_entries

THUMBNAIL_SUFFIX = ".thumb.png"
_VIEW_FIRST = (".png", ".svg", ".pdf")  # what a thumbnail links to: the lightest full render first
CLIENT_ENTRIES = 400  # entries per drawing in the pages' own search index
CLIENT_TEXT_CHARS = 200


def thumbnails(outputs: Iterable[str] | None, root: str, model_empty: bool = False) -> list[Thumbnail]:
    """The thumbnails among a file's outputs (paths relative to OUT), the modelspace first unless
    it is empty, each linked to its full render."""
    files = [] if outputs is None or is_missing(outputs) else [str(o) for o in outputs]
    found = []
    for path in files:
        if not path.endswith(THUMBNAIL_SUFFIX):
            continue
        stem = path[: -len(THUMBNAIL_SUFFIX)]
        full = next((stem + ext for ext in _VIEW_FIRST if stem + ext in files), path)
        found.append(Thumbnail(_label(PurePosixPath(stem).name), href(root, path), href(root, full)))
    model = [t for t in found if t.label == "Model"]
    others = [t for t in found if t.label != "Model"]
    return others + model if model_empty and others else model + others


def _label(stem: str) -> str:
    if stem == "model":
        return "Model"
    return stem.removeprefix("layout-")


def empty_models(layouts: pd.DataFrame) -> set[str]:
    """Contents whose modelspace holds nothing (their paperspace layout is the better picture)."""
    if layouts.empty or "is_model" not in layouts.columns:
        return set()
    model = layouts[layouts["is_model"].fillna(False).astype(bool)]
    return set(model.loc[model["entity_count"].fillna(0) == 0, "sha256"])


def _shown_paths(files: pd.DataFrame) -> dict[tuple[str, str], str]:
    several = files["source_root"].nunique() > 1
    return {(r, p): posixpath.join(r, p) if several else p for r, p in zip(files["source_root"], files["path"])}


def _latest_changes(changes: pd.DataFrame) -> dict[tuple[str, str], dict]:
    if changes.empty:
        return {}
    latest = {}
    for r in changes.sort_values("detected_at", kind="stable").to_dict("records"):
        latest[(r["source_root"], r["path"])] = r
    return latest


def _value(value: Any) -> Any:
    return None if is_missing(value) else value


def build_gallery(
    files: pd.DataFrame,
    layouts: pd.DataFrame,
    changes: pd.DataFrame,
    run_id: str | None,
    index_href: str | None,
    index_note: str = "",
    root: str = "../",
) -> Gallery:
    """The gallery page of every file in the catalog; `root` leads from the page to OUT."""
    cards: list[GalleryCard] = []
    folders: dict[str, int] = {}
    if not files.empty:
        shown = _shown_paths(files)
        empty = empty_models(layouts)
        latest = _latest_changes(changes)
        for row in files.to_dict("records"):
            key = (row["source_root"], row["path"])
            path = shown[key]
            folder = posixpath.dirname(path)
            sha = _value(row.get("sha256"))
            ok = row.get("status") == "ok"
            card = GalleryCard(
                path=path,
                name=posixpath.basename(path),
                folder=folder,
                status="ok" if ok else "failed",
                format=_value(row.get("format")),
                sha256=sha,
                title=_value(row.get("title")),
                drawing_number=_value(row.get("drawing_number")),
                revision=_value(row.get("revision")),
                datasheet=href(root, f"docs/files/{sha}.html") if ok and sha else None,
                thumbnails=thumbnails(row.get("outputs"), root, sha in empty) if ok else [],
                error_class=None if ok else _value(row.get("error_class")),
                error_stage=None if ok else _value(row.get("error_stage")),
                error_message=None if ok else _value(row.get("error_message")),
                quarantine=_quarantine_href(row, root) if not ok else None,
            )
            change = latest.get(key)
            if ok and change is not None and change["sha256_after"] == sha:
                overlays = [] if is_missing(change.get("overlays")) else list(change["overlays"])
                card.change = ChangeBadge(
                    summary=str(change.get("summary") or ""),
                    overlay=href(root, overlays[0]) if overlays else None,
                    diff=href(root, change["diff"]) if _value(change.get("diff")) else None,
                )
            cards.append(card)
            for parent in _folders_of(folder):
                folders[parent] = folders.get(parent, 0) + 1
    cards.sort(key=lambda c: (c.status != "failed", c.path))
    return Gallery(
        cards=cards,
        folders=sorted(folders.items()),
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        run_id=run_id,
        report_href="index.html",
        script_href="gallery.js",
        index_href=index_href,
        index_note=index_note,
    )


def _quarantine_href(row: dict, root: str) -> str | None:
    quarantine = _value(row.get("quarantine"))
    return native_href(root, f"{quarantine}.error.json") if quarantine else None


def _folders_of(folder: str) -> list[str]:
    """The folder and every folder above it ("" is the top)."""
    parents = [""]
    parts = [p for p in folder.split("/") if p]
    for i in range(1, len(parts) + 1):
        parents.append("/".join(parts[:i]))
    if folder.startswith("/"):
        parents = [""] + ["/" + p for p in parents[1:]]
    return parents


def index_script(out, per_content: int = CLIENT_ENTRIES, text_chars: int = CLIENT_TEXT_CHARS) -> tuple[str, str]:
    """(the search-index.js the pages load, a note when it is bounded) from the SQLite index."""
    entries = client_entries(out, per_content, text_chars)
    bounded = any(len(rows) >= per_content for rows in entries.values())
    body = json.dumps({"version": 1, "entries": entries}, ensure_ascii=False, separators=(",", ":"))
    note = ""
    if bounded:
        note = (
            f"The search box looks at up to {per_content} texts, attributes and BOM rows per drawing; "
            "`cadpipe search` looks at all of them."
        )
    return f"window.cadpipeSearchIndex = {body};\n", note
