"""A PDF set: the sheets of many drawings merged into one PDF, with bookmarks, by PyMuPDF.

Each sheet's page is copied as it is (vector content, fonts, its own page size: an A1 page stays
A1 beside an A4 one); nothing is rasterised or scaled. Bookmarks: one per drawing (its label,
pointing at its first page), and under it one per sheet when a drawing has several. A sheet
given as SVG (a configuration without PDF outputs) is converted by MuPDF, as the renderer does.

A sheet that cannot be read is left out and named in `MergeResult.problems`; the set is written
with the rest. The file is written under a temporary name and renamed into place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pymupdf

from documents.atomic import atomic_path


@dataclass(frozen=True)
class SetSheet:
    file: Path  # a PDF (every page of it is taken) or an SVG (one page)
    label: str  # the sheet's bookmark when its drawing has several (the layout name)


@dataclass(frozen=True)
class SetEntry:
    bookmark: str  # "D-101 Pump assembly"
    sheets: tuple[SetSheet, ...]


@dataclass
class MergeResult:
    pages: int = 0
    bookmarks: list[tuple[int, str, int]] = field(default_factory=list)  # (level, title, 1-based page)
    placed: dict[int, tuple[int, int]] = field(default_factory=dict)  # entry index -> (first page, pages)
    problems: list[str] = field(default_factory=list)


def merge_pdf_set(entries: Sequence[SetEntry], target: Path | str, title: str = "") -> MergeResult:
    """Write the set to `target` (nothing when no sheet could be read); returns what went in."""
    result = MergeResult()
    merged = pymupdf.open()
    try:
        for index, entry in enumerate(entries):
            first: int | None = None
            sheets: list[tuple[int, str]] = []
            for sheet in entry.sheets:
                start = merged.page_count
                try:
                    _append(merged, sheet.file)
                except Exception as exc:  # a damaged or vanished sheet: the rest of the set still goes out
                    result.problems.append(f"{entry.bookmark}: sheet {sheet.label!r} ({sheet.file}) left out: {exc}")
                    continue
                if merged.page_count == start:
                    result.problems.append(f"{entry.bookmark}: sheet {sheet.label!r} ({sheet.file}) has no page")
                    continue
                first = start + 1 if first is None else first
                sheets.append((start + 1, sheet.label))
            if first is None:
                continue
            result.placed[index] = (first, merged.page_count - first + 1)
            result.bookmarks.append((1, entry.bookmark, first))
            if len(sheets) > 1:
                result.bookmarks += [(2, label, page) for page, label in sheets]
        result.pages = merged.page_count
        if not result.pages:
            return result
        merged.set_toc([list(b) for b in result.bookmarks])
        merged.set_metadata({"title": title, "creator": "cadpipe", "producer": f"PyMuPDF {pymupdf.VersionBind}"})
        with atomic_path(Path(target)) as tmp:
            merged.save(str(tmp), garbage=3, deflate=True)
    finally:
        merged.close()
    return result


def _append(merged: pymupdf.Document, file: Path) -> None:
    if file.suffix.lower() == ".svg":
        with pymupdf.open(file) as svg:
            pdf_bytes = svg.convert_to_pdf()
        with pymupdf.open("pdf", pdf_bytes) as src:
            merged.insert_pdf(src)
        return
    with pymupdf.open(file) as src:
        if not src.is_pdf:
            raise ValueError("not a PDF")
        merged.insert_pdf(src)
