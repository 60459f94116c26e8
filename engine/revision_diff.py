"""Revision diffs: what changed when a drawing (same path) came back with new content.

The catalog's `files` row of such a path names the content it held before (`previous_sha256`,
`previous_work_id`, set at publish by engine/catalog.py). After the publish, each revision not
yet recorded is compared from the two versions' records (`outputs/<work_id>/result.json`, the
record the catalog is built from) and renders:

- title-block fields before and after;
- BOM rows added, removed and changed (matched by insert handle, then by identical values, then
  by block path + part number + item number; field by field);
- layers added, removed and changed (colour, linetype, state, entity count), entity counts per
  layout and type that changed, layouts added and removed;
- per layout in both versions, an overlay PNG (converters/overlay.py): removed in red, added in
  green, both renders aligned on the drawing's coordinates.

Written to `OUT/changes/<before>-<after>/` (`diff.json` with every row and field, and
`overlay-<stem>.png` for each layout that looks different), keyed by the two work ids and
renamed into place complete, so a rerun finds it done; one row per revision goes to the
catalog table `changes` (declared in engine/catalog_store.py; engine/catalog.py CHANGE_COLUMNS),
appended in one commit per run. No Prefect here.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from engine.catalog import CHANGE_COLUMNS, Catalog, now_iso
from engine.work import RESULT_FILE, work_dir
from extractors.title_block import DEFAULT_TITLE_TAG_MAP

CHANGES_DIR = "changes"
DIFF_FILE = "diff.json"
_VECTOR_FIRST = ("svg", "pdf", "png")  # which render of a layout the overlay reads
_TITLE_EXTRA = ("title_block_name", "title_block_layout")
_BOM_IDENTITY = ("handle",)  # not compared: it is how a row is found again
_LAYER_FIELDS = ("defined", "color", "true_color", "linetype", "is_on", "is_frozen", "is_locked", "entity_count")


@dataclass(frozen=True)
class Revision:
    """A path whose content changed from `sha256_before` to `sha256_after`."""

    source_root: str
    path: str
    sha256_before: str
    sha256_after: str
    work_id_before: str | None
    work_id_after: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.source_root, self.path)

    @property
    def folder(self) -> str:
        """Where its diff goes, relative to OUT: one folder per pair of works."""
        before = (self.work_id_before or self.sha256_before)[:16]
        return f"{CHANGES_DIR}/{before}-{self.work_id_after[:16]}"


@dataclass
class FieldChange:
    field: str
    before: Any
    after: Any


@dataclass
class RowChange:
    name: str  # how a person finds the row: part number, item number or block, and handle
    fields: list[FieldChange]
    handle_before: str | None = None
    handle_after: str | None = None


@dataclass
class CountChange:
    layout: str
    dxftype: str
    before: int
    after: int


@dataclass
class LayoutDiff:
    layout: str
    overlay: str | None = None  # PNG relative to OUT; None when the layout looks the same
    pixels_removed: int = 0
    pixels_added: int = 0
    # Boxes (xmin, ymin, xmax, ymax) in the layout's units around each group of changed pixels.
    removed_regions: list[list[float]] = field(default_factory=list)
    added_regions: list[list[float]] = field(default_factory=list)
    # The overlay image's pixel (0, 0) is (x0, y1); `scale` pixels per unit.
    window: dict | None = None
    note: str | None = None  # why no overlay could be made


@dataclass
class RevisionDiff:
    revision: Revision
    compared: bool
    note: str | None = None
    title: list[FieldChange] = field(default_factory=list)
    bom_added: list[dict] = field(default_factory=list)
    bom_removed: list[dict] = field(default_factory=list)
    bom_changed: list[RowChange] = field(default_factory=list)
    layers_added: list[str] = field(default_factory=list)
    layers_removed: list[str] = field(default_factory=list)
    layers_changed: list[RowChange] = field(default_factory=list)
    entities: list[CountChange] = field(default_factory=list)
    layouts_added: list[str] = field(default_factory=list)
    layouts_removed: list[str] = field(default_factory=list)
    layouts: list[LayoutDiff] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


# Which revisions are waiting for a diff.


def pending_revisions(files: pd.DataFrame, changes: pd.DataFrame) -> list[Revision]:
    """Paths recorded ok with a content other than the one before it, whose latest `changes` row
    is not this very change (a path may go A -> B -> A -> B: each is news)."""
    if files.empty or "previous_sha256" not in files.columns:
        return []
    latest: dict[tuple[str, str], tuple[str, str]] = {}
    if not changes.empty:
        for r in changes.sort_values("detected_at", kind="stable").to_dict("records"):
            latest[(r["source_root"], r["path"])] = (r["sha256_before"], r["sha256_after"])
    wanted = files[(files["status"] == "ok") & files["previous_sha256"].notna()]
    revisions = []
    for r in wanted.to_dict("records"):
        if r["previous_sha256"] == r["sha256"]:
            continue
        if latest.get((r["source_root"], r["path"])) == (r["previous_sha256"], r["sha256"]):
            continue
        before_work = r.get("previous_work_id")
        revisions.append(
            Revision(
                r["source_root"],
                r["path"],
                r["previous_sha256"],
                r["sha256"],
                before_work if isinstance(before_work, str) else None,
                r["work_id"],
            )
        )
    return revisions


# Comparing two records.


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _same(a: Any, b: Any) -> bool:
    if _missing(a) and _missing(b):
        return True
    return a == b


def title_changes(before: dict, after: dict) -> list[FieldChange]:
    """Title-block fields (the default columns, a config's extra ones, the block) that differ."""
    columns = list(DEFAULT_TITLE_TAG_MAP)
    for record in (before, after):
        extra = record.get("options", {}).get("title_block", {}).get("tags", {}) or {}
        columns += [c for c in extra if c not in columns]
    columns += list(_TITLE_EXTRA)
    old, new = before.get("summary", {}), after.get("summary", {})
    return [FieldChange(c, old.get(c), new.get(c)) for c in columns if not _same(old.get(c), new.get(c))]


def _bom_values(row: dict) -> dict:
    values = {k: v for k, v in row.items() if k not in _BOM_IDENTITY}
    try:  # compared as tags and values, not as the JSON text's spelling
        values["attributes"] = json.loads(values["attributes"]) if values.get("attributes") else {}
    except (TypeError, ValueError):
        pass
    return values


def _bom_name(row: dict) -> str:
    for column in ("part_number", "item_no", "tag", "description"):
        if not _missing(row.get(column)) and str(row.get(column)).strip():
            return str(row[column])
    return str(row.get("block_path") or row.get("block_name") or "row")


def _keys(row: dict) -> list[Any]:
    """How a row is found in the other version, best first."""
    values = _bom_values(row)
    handle = row.get("handle")
    return [
        ("handle", row.get("block_path"), handle) if not _missing(handle) and handle else None,
        ("values", json.dumps(values, sort_keys=True, default=str)),
        ("part", row.get("block_path"), row.get("part_number"), row.get("item_no"))
        if not (_missing(row.get("part_number")) and _missing(row.get("item_no")))
        else None,
    ]


def bom_changes(before: list[dict], after: list[dict]) -> tuple[list[dict], list[dict], list[RowChange]]:
    """(added, removed, changed) BOM rows."""
    left = list(range(len(before)))
    right = list(range(len(after)))
    pairs: list[tuple[int, int]] = []
    for level in range(3):
        index: dict[Any, list[int]] = defaultdict(list)
        for j in right:
            key = _keys(after[j])[level]
            if key is not None:
                index[key].append(j)
        unmatched = []
        taken: set[int] = set()
        for i in left:
            key = _keys(before[i])[level]
            if key is not None and index.get(key):
                j = index[key].pop(0)
                pairs.append((i, j))
                taken.add(j)
            else:
                unmatched.append(i)
        left = unmatched
        right = [j for j in right if j not in taken]
    changed = []
    for i, j in sorted(pairs):
        old, new = _bom_values(before[i]), _bom_values(after[j])
        fields = [FieldChange(k, old.get(k), new.get(k)) for k in sorted(set(old) | set(new), key=_column_order)]
        fields = [f for f in fields if not _same(f.before, f.after)]
        if fields:
            changed.append(RowChange(_bom_name(after[j]), fields, before[i].get("handle"), after[j].get("handle")))
    return [after[j] for j in right], [before[i] for i in left], changed


def _column_order(column: str) -> tuple[int, str]:
    order = ["item_no", "part_number", "description", "qty", "unit", "material", "mass", "revision", "vendor"]
    return (order.index(column), column) if column in order else (len(order), column)


def layer_changes(before: list[dict], after: list[dict]) -> tuple[list[str], list[str], list[RowChange]]:
    old = {str(r.get("name")): r for r in before}
    new = {str(r.get("name")): r for r in after}
    changed = []
    for name in sorted(set(old) & set(new)):
        fields = [FieldChange(f, old[name].get(f), new[name].get(f)) for f in _LAYER_FIELDS]
        fields = [f for f in fields if not _same(f.before, f.after)]
        if fields:
            changed.append(RowChange(name, fields))
    return sorted(set(new) - set(old)), sorted(set(old) - set(new)), changed


def entity_changes(before: list[dict], after: list[dict]) -> list[CountChange]:
    def counts(rows: list[dict]) -> dict[tuple[str, str], int]:
        totals: dict[tuple[str, str], int] = defaultdict(int)
        for r in rows:
            totals[(str(r.get("layout")), str(r.get("dxftype")))] += int(r.get("count") or 0)
        return totals

    old, new = counts(before), counts(after)
    return [
        CountChange(layout, dxftype, old.get((layout, dxftype), 0), new.get((layout, dxftype), 0))
        for layout, dxftype in sorted(set(old) | set(new))
        if old.get((layout, dxftype), 0) != new.get((layout, dxftype), 0)
    ]


def compare_records(revision: Revision, before: dict, after: dict) -> RevisionDiff:
    """Everything but the overlays, from the two versions' result records."""
    old_tables, new_tables = before.get("tables", {}), after.get("tables", {})
    added, removed, changed = bom_changes(old_tables.get("bom", []), new_tables.get("bom", []))
    layers = layer_changes(old_tables.get("layers", []), new_tables.get("layers", []))
    old_layouts = [p["layout"] for p in before.get("pages", [])] or _layouts_of(before)
    new_layouts = [p["layout"] for p in after.get("pages", [])] or _layouts_of(after)
    return RevisionDiff(
        revision,
        compared=True,
        title=title_changes(before, after),
        bom_added=added,
        bom_removed=removed,
        bom_changed=changed,
        layers_added=layers[0],
        layers_removed=layers[1],
        layers_changed=layers[2],
        entities=entity_changes(old_tables.get("entities", []), new_tables.get("entities", [])),
        layouts_added=[name for name in new_layouts if name not in old_layouts],
        layouts_removed=[name for name in old_layouts if name not in new_layouts],
    )


def _layouts_of(record: dict) -> list[str]:
    names: list[str] = []
    for o in record.get("outputs", []):
        if o.get("layout") and o["layout"] not in names:
            names.append(o["layout"])
    return names


# Overlays.


def _render_of(record: dict, layout: str) -> tuple[str, str] | None:
    """(file, stem) of the layout's render the overlay reads: SVG, else PDF, else PNG."""
    files = {o["format"]: o["file"] for o in record.get("outputs", []) if o.get("layout") == layout}
    for fmt in _VECTOR_FIRST:
        if fmt in files:
            return files[fmt], Path(files[fmt]).stem
    return None


def layout_overlays(out: Path, revision: Revision, before: dict, after: dict, folder: Path) -> list[LayoutDiff]:
    """One overlay per layout in both versions, written into `folder` when it shows a change."""
    # Here, in the worker that makes the diff: MuPDF's import is a second of a run that makes none.
    from converters.overlay import OVERLAY_PX, open_page, overlay
    from converters.placement import Placement

    old_pages = {p["layout"]: Placement.from_dict(p.get("placement")) for p in before.get("pages", [])}
    new_pages = {p["layout"]: Placement.from_dict(p.get("placement")) for p in after.get("pages", [])}
    diffs = []
    for layout, new_placement in new_pages.items():
        if layout not in old_pages and before.get("pages"):
            continue  # an added layout: listed as such
        diff = LayoutDiff(layout)
        diffs.append(diff)
        old_placement = old_pages.get(layout)
        old_render, new_render = _render_of(before, layout), _render_of(after, layout)
        if not before.get("pages"):
            diff.note = "the earlier version's render has no placement record (made before pipeline version 3)"
            continue
        if old_render is None or new_render is None:
            diff.note = "no SVG, PDF or PNG render of this layout in both versions"
            continue
        if old_placement is None and new_placement is None:
            continue  # empty in both: nothing to see
        old_path = work_dir(out, revision.work_id_before or "") / old_render[0]
        new_path = work_dir(out, revision.work_id_after) / new_render[0]
        with open_page(old_path) as old_page, open_page(new_path) as new_page:
            result = overlay((old_page, old_placement), (new_page, new_placement), OVERLAY_PX)
        diff.pixels_removed, diff.pixels_added = result.pixels_removed, result.pixels_added
        diff.removed_regions = [list(box) for box in result.removed_regions]
        diff.added_regions = [list(box) for box in result.added_regions]
        diff.window = asdict(result.window)
        if result.changed:
            name = f"overlay-{new_render[1]}.png"
            (folder / name).write_bytes(result.png)
            diff.overlay = f"{revision.folder}/{name}"
    return diffs


# Building and recording.


def build_change(out: str, revision: Revision) -> dict:
    """The diff of one revision, written to OUT/<revision.folder>/diff.json (once: a diff
    already there is read back). Returns the diff as a dict (RevisionDiff.as_dict)."""
    root = Path(out)
    final = root / revision.folder
    if (final / DIFF_FILE).is_file():  # done before: for this path, or for a copy of it elsewhere
        return {**json.loads((final / DIFF_FILE).read_text(encoding="utf-8")), "revision": asdict(revision)}
    before = _record(root, revision.work_id_before)
    after = _record(root, revision.work_id_after)
    if after is None:
        return RevisionDiff(revision, False, "the new version's outputs are gone").as_dict()
    if before is None:
        why = "the earlier version failed or its outputs are gone: nothing to compare with"
        return RevisionDiff(revision, False, why).as_dict()
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    try:
        diff = compare_records(revision, before, after)
        diff.layouts = layout_overlays(root, revision, before, after, tmp)
        value = diff.as_dict()
        (tmp / DIFF_FILE).write_text(json.dumps(value, default=str, ensure_ascii=False, indent=1), encoding="utf-8")
        _readable_as(tmp, work_dir(root, revision.work_id_after))
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / DIFF_FILE).is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another run wrote the same diff first
        return value
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _readable_as(folder: Path, outputs: Path) -> None:
    """The diff is readable by whom the drawing's outputs are (made from the input's mode, never
    wider: engine/work.py), not more: mkdtemp made it private."""
    os.chmod(folder, stat.S_IMODE(os.stat(outputs).st_mode))
    file_mode = stat.S_IMODE(os.stat(outputs / RESULT_FILE).st_mode)
    for path in folder.iterdir():
        os.chmod(path, file_mode)


def _record(out: Path, wid: str | None) -> dict | None:
    if not wid:
        return None
    try:
        return json.loads((work_dir(out, wid) / RESULT_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def summary_of(diff: dict) -> str:
    """One sentence: what a person reads in the report and the webhook."""
    if not diff["compared"]:
        return f"new content; not compared: {diff['note']}"
    parts = [f"{c['field']} {_shown(c['before'])} -> {_shown(c['after'])}" for c in diff["title"]]
    bom = [
        (len(diff["bom_added"]), "added"),
        (len(diff["bom_removed"]), "removed"),
        (len(diff["bom_changed"]), "changed"),
    ]
    if any(n for n, _ in bom):
        parts.append("BOM rows " + ", ".join(f"{n} {what}" for n, what in bom if n))
    layers = [(diff["layers_added"], "added"), (diff["layers_removed"], "removed")]
    layers += [([c["name"] for c in diff["layers_changed"]], "changed")]
    for names, what in layers:
        if names:
            parts.append(f"layers {what}: {', '.join(names)}")
    if diff["entities"]:
        counts = [f"{c['dxftype']} {c['before']} -> {c['after']}" for c in diff["entities"][:6]]
        more = len(diff["entities"]) - 6
        parts.append("entities " + ", ".join(counts) + (f" and {more} more" if more > 0 else ""))
    for names, what in ((diff["layouts_added"], "added"), (diff["layouts_removed"], "removed")):
        if names:
            parts.append(f"layouts {what}: {', '.join(names)}")
    looked = [d for d in diff["layouts"] if d["overlay"]]
    if looked:
        parts.append("drawing changed in " + ", ".join(d["layout"] for d in looked))
    return "; ".join(parts) if parts else "new content, but nothing the diff compares changed"


def _shown(value: Any) -> str:
    return "(none)" if _missing(value) or value == "" else repr(str(value))


def change_row(diff: dict, run_id: str, detected_at: str) -> dict:
    """The `changes` row of a diff."""
    revision = diff["revision"]
    layouts = diff.get("layouts", [])
    notes = [diff["note"]] if diff.get("note") else []
    notes += [f"{d['layout']}: {d['note']}" for d in layouts if d.get("note")]
    row = {
        "run_id": run_id,
        **{k: revision[k] for k in ("source_root", "path", "sha256_before", "sha256_after")},
        "work_id_before": revision["work_id_before"],
        "work_id_after": revision["work_id_after"],
        "compared": bool(diff["compared"]),
        "note": "; ".join(notes) or None,
        "summary": summary_of(diff),
        "title_changes": json.dumps(
            {c["field"]: [c["before"], c["after"]] for c in diff.get("title", [])}, default=str, ensure_ascii=False
        ),
        "bom_added": len(diff.get("bom_added", [])),
        "bom_removed": len(diff.get("bom_removed", [])),
        "bom_changed": len(diff.get("bom_changed", [])),
        "layers_added": len(diff.get("layers_added", [])),
        "layers_removed": len(diff.get("layers_removed", [])),
        "layers_changed": len(diff.get("layers_changed", [])),
        "entity_types_changed": len(diff.get("entities", [])),
        "layouts_changed": sum(1 for d in layouts if d.get("overlay")),
        "pixels_removed": sum(int(d.get("pixels_removed") or 0) for d in layouts),
        "pixels_added": sum(int(d.get("pixels_added") or 0) for d in layouts),
        "diff": f"{Revision(**revision).folder}/{DIFF_FILE}" if diff["compared"] else None,
        "overlays": [d["overlay"] for d in layouts if d.get("overlay")],
        "detected_at": detected_at,
    }
    return {column: row[column] for column in CHANGE_COLUMNS}


Caller = Callable[[Callable[..., dict], Sequence[tuple]], list[Any]]


def call_inline(function: Callable[..., dict], arguments: Sequence[tuple]) -> list[Any]:
    """Run each call here, an exception as its result (the pool's caller does the same)."""
    results: list[Any] = []
    for args in arguments:
        try:
            results.append(function(*args))
        except Exception as exc:
            results.append(exc)
    return results


def record_changes(out: Path | str, run_id: str, call: Caller = call_inline) -> list[dict]:
    """Diff every revision not recorded yet and append its `changes` row; return the rows added.

    `call(build_change, [(out, revision), ...])` runs the diffs (a worker pool's, with its time
    and memory limits, in the batch flow) and gives each result or the exception that ended it."""
    catalog = Catalog(out)
    pending = pending_revisions(_revision_files(catalog), _changes_seen(catalog))
    if not pending:
        return []
    results = call(build_change, [(str(out), revision) for revision in pending])
    detected = now_iso()
    rows = []
    for revision, result in zip(pending, results):
        if isinstance(result, BaseException):
            reason = f"the diff failed: {type(result).__name__}: {result}"
            result = RevisionDiff(revision, False, reason).as_dict()
        rows.append(change_row(result, run_id, detected))
    with catalog.lock():  # a run beside this one may have recorded some of them meanwhile
        still = {r.key for r in pending_revisions(_revision_files(catalog), _changes_seen(catalog))}
        rows = [r for r in rows if (r["source_root"], r["path"]) in still]
        catalog.append("changes", rows)  # one commit; the rows before it are not rewritten
    return rows


# What deciding which revisions are pending reads of the catalog: a few columns, not every table.
_REVISION_COLUMNS = ["source_root", "path", "status", "sha256", "work_id", "previous_sha256", "previous_work_id"]
_SEEN_COLUMNS = ["source_root", "path", "sha256_before", "sha256_after", "detected_at"]


def _revision_files(catalog: Catalog) -> pd.DataFrame:
    return catalog.read("files", columns=_REVISION_COLUMNS)


def _changes_seen(catalog: Catalog) -> pd.DataFrame:
    return catalog.read("changes", columns=_SEEN_COLUMNS)


def changes_of_run(out: Path | str, run_id: str) -> list[dict]:
    """The `changes` rows a run recorded (for its report and its webhook)."""
    changes = Catalog(out).read("changes", where=[("run_id", "=", run_id)])
    return _plain(changes).to_dict("records")


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows as their readers take them: None for a missing value, lists for list cells."""
    return frame.astype(object).where(frame.notna(), None)
