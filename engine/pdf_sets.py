"""PDF sets: one merged PDF per set of drawings (engine/library.py says what a set is).

`OUT/sets/<set>/<set>.pdf` holds every sheet of the set's drawings (each drawing's paperspace
layouts that drew something, else its modelspace; see deliverables.Sheet) in drawing-number
order, each page at its own size, with a bookmark per drawing named by its number and title
(and one per sheet below it when it has several). `OUT/sets/<set>/manifest.json` lists the
members with their work ids and pages, and the drawings of the set that failed (left out, with
the reason). Both are written again only when a member changed: its content (work id), its
place, its number or title, or the sheets it has; a set that could not take a sheet is tried
again by the next run.
"""

from __future__ import annotations

import json
from pathlib import Path

from converters.pdf_set import MergeResult, SetEntry, SetSheet, merge_pdf_set
from documents.atomic import atomic_path
from documents.names import native_path, to_native
from engine.catalog import now_iso
from engine.library import Built, Drawing, DrawingSet, Library, State, fingerprint, write_file_for

VERSION = "1"  # bump when the layout of a set changes: every set is built again
MANIFEST = "manifest.json"


def set_pdf(drawing_set: DrawingSet) -> str:
    return f"{drawing_set.folder}/{drawing_set.slug}.pdf"


def build_set(library: Library, drawing_set: DrawingSet, state: State, built: Built) -> str | None:
    """Write the set's PDF and manifest when a member changed; return the PDF's path relative to
    OUT, or None when the set has no page to show."""
    out = library.out
    members: list[tuple[Drawing, SetEntry]] = []
    for member in drawing_set.members:
        sheets = []
        for sheet in member.sheets:
            file = sheet.files.get("pdf") or sheet.files.get("svg")
            if file:
                sheets.append(SetSheet(native_path(str(out)) / to_native(file), sheet.layout))
        if sheets:
            members.append((member, SetEntry(member.bookmark, tuple(sheets))))
        else:
            built.problems.append(f"set {drawing_set.label}: {member.location} has no PDF or SVG page to add")
    if not members:
        return None
    pdf, manifest = set_pdf(drawing_set), f"{drawing_set.folder}/{MANIFEST}"
    key = fingerprint(
        VERSION,
        drawing_set.label,
        [(m.key(), m.bookmark, [s.label for s in e.sheets]) for m, e in members],
        [m.key() for m in drawing_set.left_out],
    )
    if state.fresh(pdf, key) and state.fresh(manifest, key):
        built.unchanged += 1
        return pdf
    result = merge_pdf_set([e for _, e in members], write_file_for(out, pdf), title=drawing_set.label)
    if not result.pages:
        built.problems += result.problems
        return None
    _write_manifest(write_file_for(out, manifest), drawing_set, members, result)
    complete = key if not result.problems else "incomplete"  # tried again next run
    state.made(pdf, complete)
    state.made(manifest, complete)
    built.written += [pdf, manifest]
    built.problems += [f"set {drawing_set.label}: {p}" for p in result.problems]
    return pdf


def _write_manifest(
    target: Path, drawing_set: DrawingSet, members: list[tuple[Drawing, SetEntry]], result: MergeResult
) -> None:
    placed = []
    for index, (member, _) in enumerate(members):
        first, pages = result.placed.get(index, (None, 0))
        placed.append(
            {
                "source_root": member.source_root,
                "path": member.path,
                "drawing_number": member.number,
                "title": member.title,
                "revision": member.fields.get("revision"),
                "sha256": member.sha256,
                "work_id": member.work_id,
                "sheets": [s.layout for s in member.sheets],
                "first_page": first,
                "pages": pages,
            }
        )
    manifest = {
        "set": drawing_set.label,
        "name": drawing_set.slug,
        "pdf": f"{drawing_set.slug}.pdf",
        "pages": result.pages,
        "built_at": now_iso(),
        "members": placed,
        "left_out": [{"path": d.location, "status": d.status, "reason": d.error} for d in drawing_set.left_out],
        "problems": result.problems,
    }
    with atomic_path(target) as tmp:
        Path(tmp).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
