"""Generated documentation of a run: a datasheet per drawing and a batch report (issue 3).

Runs after the catalog publish, from the catalog:

- the BOM roll-ups (engine/rollups.py: catalog tables `bom_rollup`, `where_used`) are recomputed;
- `OUT/docs/files/<sha256>.html`: one datasheet per drawing content recorded ok. Content-keyed
  and idempotent: a page is written only when missing or when its key changes (the work id, the
  drawing's paths, the templates); pages of contents no longer recorded are removed;
- `OUT/docs/runs/<run_id>.html`: the batch report of this run, and `OUT/docs/index.html`, the
  same report of the latest run.

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
from urllib.parse import quote

import pandas as pd

from converters.datasheet import (
    BatchReport,
    ReportEntry,
    ReportFailure,
    RunLink,
    SlowFile,
    WhereUsed,
    build_datasheet,
    href,
    is_missing,
    render_datasheet,
    render_report,
    templates_fingerprint,
)
from documents import atomic
from documents.errors import TransientError
from documents.names import to_bytes
from engine.catalog import Catalog, Outcome
from engine.rollups import write_rollups
from engine.work import read_result

DOCS_DIR = "docs"
WHERE_USED_SHOWN = 200  # rows of the library roll-up in the report; the table has all of them
USES_SHOWN = 10  # drawings named per part number in the report
SLOWEST_SHOWN = 10
RUNS_SHOWN = 20
_SHEET_NAME = re.compile(r"^[0-9a-f]{64}\.html$")
_KEY_META = re.compile(rb'<meta name="cadpipe-datasheet" content="([0-9a-f]+)">')


def publish_docs(cfg, run: dict, outcomes: list[Outcome]) -> list[str]:
    """Write the run's HTML documents under OUT; return their paths relative to OUT: the two
    report pages, then the datasheets written in this run (unchanged ones are kept as they are)."""
    out = Path(cfg.out)
    catalog = Catalog(out)
    rollup, used = write_rollups(catalog)
    files = catalog.read("files")
    sheets = write_datasheets(out, catalog, files, rollup)
    reports = write_report(out, run, outcomes, files, used, catalog.read("runs"))
    return reports + sheets


def native_href(root: str, relative: str) -> str:
    """Link to a file whose name (in the catalog's text form) may not be UTF-8: each segment is
    percent-encoded from the name's bytes, as the file system holds it."""
    return root + "/".join(quote(to_bytes(part), safe="") for part in relative.split("/"))


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
                **{name: rows.get(sha, []) for name, rows in details.items()},
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
    out: Path, run: dict, outcomes: list[Outcome], files: pd.DataFrame, used: pd.DataFrame, runs: pd.DataFrame
) -> list[str]:
    """Write this run's report page and make it the index; return both paths relative to OUT."""
    run_page = f"{DOCS_DIR}/runs/{run['run_id']}.html"
    index_page = f"{DOCS_DIR}/index.html"
    write_text(out / run_page, render_report(batch_report(run, outcomes, files, used, runs, "../../", out)))
    write_text(out / index_page, render_report(batch_report(run, outcomes, files, used, runs, "../", out)))
    return [index_page, run_page]


def batch_report(
    run: dict,
    outcomes: list[Outcome],
    files: pd.DataFrame,
    used: pd.DataFrame,
    runs: pd.DataFrame,
    root: str,
    out: Path,
) -> BatchReport:
    """The report of one run; `root` leads from the page to OUT."""
    rows = {}
    if not files.empty:
        rows = {(r["source_root"], r["path"]): r for r in files.to_dict("records")}
    several_roots = len({o.input.source_root for o in outcomes}) > 1
    shown = {o.input.key: _shown_path(o, several_roots) for o in outcomes}

    def sheet(sha: str) -> str:
        return href(root, datasheet_path(sha))

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
    )


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
