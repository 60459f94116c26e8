"""Generated documentation of a run: a datasheet per drawing and a batch report (issue 3).

Runs after the catalog publish, from the catalog:

- the BOM roll-ups (engine/rollups.py: catalog tables `bom_rollup`, `where_used`) are recomputed;
- `OUT/docs/files/<sha256>.html`: one datasheet per drawing content recorded ok. Content-keyed
  and idempotent: a page is written only when missing or when its key changes (the work id, the
  drawing's paths, the templates); pages of contents no longer recorded are removed;
- `OUT/docs/runs/<run_id>.html`: the batch report of this run (thumbnails, what changed), and
  `OUT/docs/index.html`, the same report of the latest run;
- the search index (engine/search_index.py: `OUT/catalog/search.sqlite`) is brought up to date,
  and `OUT/docs/gallery.html` shows every drawing of the catalog (engine/gallery.py), with its
  script `gallery.js` and the drawings' text for its search box, `search-index.js`.

Every page is written atomically and links relatively into OUT (outputs/, quarantine/,
catalog/), so the folder opens from disk without a server.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd

from converters.datasheet import (
    BatchReport,
    ReportChange,
    ReportEntry,
    ReportFailure,
    RunLink,
    SlowFile,
    WhereUsed,
    build_datasheet,
    href,
    is_missing,
    native_href,
    register_fingerprint,
    render_datasheet,
    render_register,
    render_report,
    templates_fingerprint,
)
from converters.gallery_page import gallery_script, render_gallery
from converters.spreadsheet import Table
from documents import atomic
from documents.errors import TransientError
from engine.catalog import Catalog, Outcome
from engine.gallery import build_gallery, empty_models, index_script, thumbnails
from engine.rollups import write_rollups
from engine.search_index import update_index
from engine.work import read_result

DOCS_DIR = "docs"
WHERE_USED_SHOWN = 200  # rows of the library roll-up in the report; the table has all of them
USES_SHOWN = 10  # drawings named per part number in the report
SLOWEST_SHOWN = 10
RUNS_SHOWN = 20
CHANGES_SHOWN = 100  # revisions shown in the report, with their overlays; the table has all
_SHEET_NAME = re.compile(r"^[0-9a-f]{64}\.html$")
_KEY_META = re.compile(rb'<meta name="cadpipe-datasheet" content="([0-9a-f]+)">')


def publish_docs(cfg, run: dict, outcomes: list[Outcome]) -> list[str]:
    """Write the run's HTML documents under OUT; return their paths relative to OUT: the two
    report pages, the gallery, then the datasheets written in this run (unchanged ones are kept
    as they are)."""
    out = Path(cfg.out)
    catalog = Catalog(out)
    rollup, used = write_rollups(catalog)
    files = catalog.read("files")
    sheets = write_datasheets(out, catalog, files, rollup)
    register = bool(cfg.raw["deliverables"]["register"])
    layouts, changes = catalog.read("layouts"), catalog.read("changes")
    update_index(out)
    reports = write_report(out, run, outcomes, files, used, catalog.read("runs"), register, layouts, changes)
    return reports + write_gallery(out, run, files, layouts, changes) + sheets


REGISTER_PAGE = f"{DOCS_DIR}/register.html"
GALLERY_PAGE = f"{DOCS_DIR}/gallery.html"
GALLERY_SCRIPT = f"{DOCS_DIR}/gallery.js"
INDEX_SCRIPT = f"{DOCS_DIR}/search-index.js"


def write_register_page(out: Path, table: Table) -> str:
    """The drawing register as a page of the docs (engine/register.py builds its rows, with
    links relative to the page); returns its path relative to OUT."""
    write_text(out / REGISTER_PAGE, render_register(table))
    return REGISTER_PAGE


def register_page_fingerprint() -> str:
    return register_fingerprint()


def write_gallery(out: Path, run: dict, files: pd.DataFrame, layouts: pd.DataFrame, changes: pd.DataFrame) -> list[str]:
    """The gallery page, its script and the search index it loads; returns the page's path
    relative to OUT (the two scripts are its assets)."""
    script, note = index_script(out)
    write_text(out / INDEX_SCRIPT, script)
    write_text(out / GALLERY_SCRIPT, gallery_script())
    gallery = build_gallery(files, layouts, changes, run.get("run_id"), "search-index.js", note)
    write_text(out / GALLERY_PAGE, render_gallery(gallery))
    return [GALLERY_PAGE]


def datasheet_path(sha256: str) -> str:
    return f"{DOCS_DIR}/files/{sha256}.html"


def full_path(source_root: str, path: str) -> str:
    return posixpath.join(source_root, path)


def write_datasheets(out: Path, catalog: Catalog, files: pd.DataFrame, rollup: pd.DataFrame) -> list[str]:
    """Write the missing and stale datasheets of every content recorded ok; remove the pages of
    contents no longer recorded. Returns the pages written, relative to OUT."""
    folder = out / DOCS_DIR / "files"
    folder.mkdir(parents=True, exist_ok=True)
    ok = files[files["status"] == "ok"] if not files.empty else files
    fingerprint = templates_fingerprint()
    wanted: dict[str, tuple[dict, list[str], str]] = {}
    for sha, rows in sorted(_by_sha(ok).items()):
        row = max(rows, key=_processed_order)  # the latest record of this content
        paths = sorted(full_path(r["source_root"], r["path"]) for r in rows)
        key = hashlib.sha256(json.dumps([fingerprint, row["work_id"], paths]).encode()).hexdigest()[:32]
        if _stored_key(folder / f"{sha}.html") != key:
            wanted[sha] = (row, paths, key)
    written = []
    if wanted:
        details = {name: _by_sha(catalog.read(name), wanted) for name in ("layouts", "layers", "bom")}
        details["rollup"] = _by_sha(rollup, wanted)
        for sha, (row, paths, key) in wanted.items():
            sheet = build_datasheet(
                row,
                paths=paths,
                outputs=_outputs(out, row),
                layouts=details["layouts"].get(sha, []),
                layers=details["layers"].get(sha, []),
                bom=details["bom"].get(sha, []),
                rollup=details["rollup"].get(sha, []),
            )
            write_text(folder / f"{sha}.html", render_datasheet(sheet, key))
            written.append(datasheet_path(sha))
    _prune_datasheets(folder, catalog)
    return written


def _stored_key(page: Path) -> str | None:
    try:
        with open(page, "rb") as handle:
            head = handle.read(4096)  # the key is in <head>, before the styles
    except FileNotFoundError:
        return None
    match = _KEY_META.search(head)
    return match.group(1).decode() if match else None


def _by_sha(frame: pd.DataFrame, wanted=None) -> dict[str, list[dict]]:
    """A catalog table's rows grouped by content hash (of `wanted` contents only, if given).

    One conversion of the whole table: pandas converts column by column on every call, so a call
    per group cost seconds at a thousand drawings."""
    if frame.empty or "sha256" not in frame.columns:
        return {}
    if wanted is not None:
        frame = frame[frame["sha256"].isin(list(wanted))]
    grouped: dict[str, list[dict]] = defaultdict(list)
    for row in frame.to_dict("records"):
        grouped[row["sha256"]].append(row)
    return grouped


def _processed_order(row: dict) -> tuple[bool, str]:
    """Sort key: records without a processing time first, then by time."""
    at = row.get("processed_at")
    return (not is_missing(at), "" if is_missing(at) else str(at))


def _outputs(out: Path, row: dict) -> list[dict]:
    """The work's output records; from its result.json, which says which layouts drew nothing."""
    try:
        return read_result(out, row["work_id"]).get("outputs", [])
    except FileNotFoundError:  # outputs deleted by hand since: name the files the catalog lists
        files = [] if is_missing(row.get("outputs")) else list(row["outputs"])
        return [{"layout": Path(f).stem, "format": Path(f).suffix.lstrip("."), "file": Path(f).name} for f in files]


def _prune_datasheets(folder: Path, catalog: Catalog) -> None:
    # Under the lock, against the catalog as it is now: a concurrent run may have published
    # (and documented) contents since this run read it.
    with catalog.lock():
        files = catalog.read("files", columns=["sha256", "status"])
        live = set(files.loc[files["status"] == "ok", "sha256"]) if not files.empty else set()
        for page in folder.iterdir():
            if _SHEET_NAME.match(page.name) and page.name[:-5] not in live:
                page.unlink(missing_ok=True)


def write_report(
    out: Path,
    run: dict,
    outcomes: list[Outcome],
    files: pd.DataFrame,
    used: pd.DataFrame,
    runs: pd.DataFrame,
    register: bool = False,
    layouts: pd.DataFrame | None = None,
    changes: pd.DataFrame | None = None,
) -> list[str]:
    """Write this run's report page and make it the index; return both paths relative to OUT.
    `register`: link the drawing register page (engine/register.py writes it after the docs)."""
    run_page = f"{DOCS_DIR}/runs/{run['run_id']}.html"
    index_page = f"{DOCS_DIR}/index.html"
    rows = _rows_by_key(files)  # once for both pages: pandas converts a thousand rows in a second
    for page, root in ((run_page, "../../"), (index_page, "../")):
        report = batch_report(run, outcomes, files, used, runs, root, out, layouts, changes, rows)
        report.register = href(root, REGISTER_PAGE) if register else None
        write_text(out / page, render_report(report))
    return [index_page, run_page]


def batch_report(
    run: dict,
    outcomes: list[Outcome],
    files: pd.DataFrame,
    used: pd.DataFrame,
    runs: pd.DataFrame,
    root: str,
    out: Path,
    layouts: pd.DataFrame | None = None,
    changes: pd.DataFrame | None = None,
    rows: dict[tuple[str, str], dict] | None = None,
) -> BatchReport:
    """The report of one run; `root` leads from the page to OUT; `rows`: `files` by (source_root,
    path), if already converted."""
    rows = _rows_by_key(files) if rows is None else rows
    several_roots = len({o.input.source_root for o in outcomes}) > 1
    shown = {o.input.key: _shown_path(o, several_roots) for o in outcomes}
    empty = empty_models(layouts if layouts is not None else pd.DataFrame())

    def sheet(sha: str | None) -> str | None:
        return href(root, datasheet_path(sha)) if sha else None  # no page for an unread file

    entries, failures, slow = [], [], []
    for o in sorted(outcomes, key=lambda o: shown[o.input.key]):
        row = rows.get(o.input.key, {})
        status = row.get("status") or ("failed" if o.state == "failed" else "ok")
        path = shown[o.input.key]
        entries.append(
            ReportEntry(
                path=path,
                state=o.state,
                status=status,
                title=_value(row.get("title")),
                drawing_number=_value(row.get("drawing_number")),
                bom_rows=_value(row.get("bom_row_count")),
                datasheet=sheet(o.input.sha256) if status == "ok" else None,
                error=_value(row.get("error_message")) or o.result.get("error_message"),
                thumbnail=_main_thumbnail(row, root, empty) if status == "ok" else None,
            )
        )
        if status == "failed":
            quarantine = _value(row.get("quarantine"))
            failures.append(
                ReportFailure(
                    path=path,
                    stage=_value(row.get("error_stage")) or o.result.get("stage"),
                    error_class=_value(row.get("error_class")) or o.result.get("error_class"),
                    message=_value(row.get("error_message")) or o.result.get("error_message"),
                    permanent=bool(_value(row.get("error_permanent")) or o.result.get("permanent")),
                    earlier=bool(o.result.get("unchanged")),
                    report=native_href(root, f"{quarantine}.error.json") if quarantine else None,
                    copy=native_href(root, quarantine) if quarantine else None,
                )
            )
        timed = o.state in ("processed", "failed") and not o.result.get("unchanged")
        if timed and o.result.get("duration_ms") is not None:
            slow.append(
                SlowFile(path, int(o.result["duration_ms"]), status, sheet(o.input.sha256) if status == "ok" else None)
            )
    slow.sort(key=lambda s: (-s.duration_ms, s.path))
    return BatchReport(
        run=run,
        entries=entries,
        failures=failures,
        slowest=slow[:SLOWEST_SHOWN],
        where_used=_where_used(used, files, sheet),
        where_used_total=len(used),
        runs=_run_links(runs, run, root, out),
        root=root,
        changes=_changes(changes, run, shown, rows, root),
        changes_total=0 if changes is None or changes.empty else int((changes["run_id"] == run["run_id"]).sum()),
        gallery_href=href(root, GALLERY_PAGE),
    )


def _rows_by_key(files: pd.DataFrame) -> dict[tuple[str, str], dict]:
    if files.empty:
        return {}
    return {(r["source_root"], r["path"]): r for r in files.to_dict("records")}


def _main_thumbnail(row: dict, root: str, empty_models: set[str]) -> str | None:
    found = thumbnails(row.get("outputs"), root, row.get("sha256") in empty_models)
    return found[0].src if found else None


_CHANGE_COUNTS = [
    ("bom_added", "BOM rows added"),
    ("bom_removed", "BOM rows removed"),
    ("bom_changed", "BOM rows changed"),
    ("layers_added", "layers added"),
    ("layers_removed", "layers removed"),
    ("layers_changed", "layers changed"),
    ("entity_types_changed", "entity counts changed"),
    ("layouts_changed", "layouts that look different"),
]


def _changes(changes: pd.DataFrame | None, run: dict, shown: dict, rows: dict, root: str) -> list[ReportChange]:
    """This run's `changes` rows, as the report shows them."""
    if changes is None or changes.empty:
        return []
    mine = changes[changes["run_id"] == run["run_id"]]
    found = []
    for c in mine.sort_values("path").head(CHANGES_SHOWN).to_dict("records"):
        key = (c["source_root"], c["path"])
        try:
            title = [(k, v[0], v[1]) for k, v in json.loads(c.get("title_changes") or "{}").items()]
        except (TypeError, ValueError, IndexError):
            title = []
        row = rows.get(key, {})
        overlays = [] if is_missing(c.get("overlays")) else list(c["overlays"])
        found.append(
            ReportChange(
                path=shown.get(key, full_path(*key)),
                summary=str(c.get("summary") or ""),
                compared=bool(c.get("compared")),
                note=_value(c.get("note")),
                datasheet=href(root, datasheet_path(c["sha256_after"])) if row.get("status") == "ok" else None,
                title=title,
                counts=[(label, int(c[k])) for k, label in _CHANGE_COUNTS if not is_missing(c.get(k)) and c.get(k)],
                overlays=[href(root, o) for o in overlays],
                diff=href(root, c["diff"]) if _value(c.get("diff")) else None,
            )
        )
    return found


def _shown_path(o: Outcome, several_roots: bool) -> str:
    return full_path(o.input.source_root, o.input.path) if several_roots else o.input.path


def _value(value: Any) -> Any:
    return None if is_missing(value) else value


def _where_used(used: pd.DataFrame, files: pd.DataFrame, sheet) -> list[WhereUsed]:
    if used.empty:
        return []
    sha_of = {}
    if not files.empty:
        ok = files[files["status"] == "ok"]
        sha_of = {full_path(r, p): s for r, p, s in zip(ok["source_root"], ok["path"], ok["sha256"])}
    shown = []
    for r in used.head(WHERE_USED_SHOWN).to_dict("records"):
        paths = list(r["paths"])
        uses = [(p, sheet(sha_of[p]) if p in sha_of else None) for p in paths[:USES_SHOWN]]
        shown.append(
            WhereUsed(
                part_number=r["part_number"],
                unit=_value(r["unit"]),
                description=_value(r["description"]),
                drawings=int(r["drawings"]),
                total_qty=_value(r["total_qty"]),
                qty_unknown=int(r["qty_unknown"]),
                uses=uses,
                more=max(0, len(paths) - USES_SHOWN),
            )
        )
    return shown


def _run_links(runs: pd.DataFrame, current: dict, root: str, out: Path) -> list[RunLink]:
    if runs.empty:
        return []
    recent = runs.sort_values("started_at", ascending=False).head(RUNS_SHOWN)
    links = []
    for r in recent.to_dict("records"):
        page = f"{DOCS_DIR}/runs/{r['run_id']}.html"
        exists = r["run_id"] == current["run_id"] or (out / page).is_file()
        links.append(
            RunLink(
                r["run_id"],
                _value(r.get("started_at")),
                _value(r.get("files_seen")),
                _value(r.get("failed")),
                href(root, page) if exists else None,
            )
        )
    return links


def write_text(path: Path, text: str) -> None:
    """Atomically: a reader sees the old page or the new one, never half of one."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, text)
    except OSError as exc:
        raise TransientError(f"{path}: cannot write: {exc}") from exc
