"""HTML datasheets (one per drawing) and batch reports, from catalog rows, with Jinja2.

Everything shown comes from the drawings (titles, attribute values, layer names, file names) and
is untrusted: the environment autoescapes every value, link targets are built here from catalog
keys with each path segment percent-encoded, and each page's Content-Security-Policy allows no
script at all. Pages are self-contained: inline CSS, no script, no remote resource; every link is
relative (`root` is the way from the page up to the output root), so the output folder can be
opened from disk, served, or moved as a whole.

Plain functions, no Prefect: `build_datasheet` / `render_datasheet` and `BatchReport` /
`render_report`. Writing the pages is engine/docs.py's job.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import jinja2

from converters.spreadsheet import Link, Table
from documents.names import to_bytes

TEMPLATES = Path(__file__).with_name("templates")

TITLE_FIELDS = [
    ("title", "Title"),
    ("drawing_number", "Drawing number"),
    ("revision", "Revision"),
    ("date", "Date"),
    ("drawn_by", "Drawn by"),
    ("scale", "Scale"),
    ("sheet", "Sheet"),
    ("material", "Material"),
    ("project", "Project"),
    ("title_block_name", "Title block"),
    ("title_block_layout", "Title block layout"),
]
# Metadata shown first, in this order; other summary columns follow alphabetically.
METADATA_FIELDS = [
    ("format", "Format"),
    ("size", "Size (bytes)"),
    ("dxf_version", "DXF version"),
    ("dxf_release", "Release"),
    ("units", "Units"),
    ("measurement", "Measurement"),
    ("entity_count", "Entities"),
    ("layer_count", "Layers"),
    ("layout_count", "Layouts"),
    ("block_count", "Blocks"),
    ("text_count", "Texts"),
    ("ref_count", "External references"),
    ("missing_ref_count", "Missing references"),
    ("bom_row_count", "BOM rows"),
    ("recovered", "Recovered"),
    ("audit_error_count", "Audit errors"),
    ("audit_fix_count", "Audit fixes"),
    ("created_at", "Created"),
    ("updated_at", "Updated"),
    ("sha256", "SHA-256"),
    ("work_id", "Work id"),
    ("pipeline_version", "Pipeline"),
]
# Catalog bookkeeping that describes a run, not the drawing: kept off the datasheet, which stays
# the same from run to run while the drawing's work does.
_NOT_METADATA = {
    "path",
    "source_root",
    "status",
    "error_class",
    "error_message",
    "error_stage",
    "error_permanent",
    "outputs",
    "warnings",
    "quarantine",
    "processed_at",
    "run_id",
    "mtime_ns",
    "attempts",
    "duration_ms",
}
BOM_VALUE_COLUMNS = [
    "item_no",
    "tag",
    "part_number",
    "description",
    "type",
    "loop_number",
    "service",
    "size",
    "qty",
    "unit",
    "material",
    "mass",
    "revision",
    "vendor",
]
_BOM_ALWAYS = {"part_number", "description", "qty"}
_BOM_TAIL = ["block_path", "layout", "insert_count", "source"]
_BOM_NOT_VALUES = set(_BOM_TAIL) | {"sha256", "block_name", "handle", "level", "attributes"}
LAYER_COLUMNS = ["name", "entity_count", "color", "linetype", "is_on", "is_frozen", "is_locked", "defined"]
LAYOUT_COLUMNS = ["name", "tab_order", "entity_count", "paper_width", "paper_height", "paper_units"]


def is_missing(value: Any) -> bool:
    """None, NaN and pandas' NA/NaT: a cell with nothing in it."""
    if value is None:
        return True
    if isinstance(value, float):  # numpy's floats too
        return value != value
    return type(value).__name__ in ("NAType", "NaTType")


def href(root: str, relative: str) -> str:
    """Link from a page to `relative` (a path under the output root), each segment percent-encoded."""
    return root + "/".join(quote(part, safe="") for part in PurePosixPath(relative).parts)


def native_href(root: str, relative: str) -> str:
    """Link to a file whose name (in the catalog's text form) may not be UTF-8: each segment is
    percent-encoded from the name's bytes, as the file system holds it."""
    return root + "/".join(quote(to_bytes(part), safe="") for part in relative.split("/"))


@dataclass
class OutputLink:
    label: str
    href: str
    format: str


@dataclass
class LayoutOutputs:
    layout: str
    empty: bool
    files: list[OutputLink]


@dataclass
class Datasheet:
    name: str
    sha256: str
    work_id: str
    paths: list[str]
    title: list[tuple[str, Any]]  # (label, value) of the title block fields found
    metadata: list[tuple[str, Any]]
    layouts: list[dict]
    layers: list[dict]
    bom_columns: list[str]
    bom: list[dict]  # rows with "attributes" parsed into a list of (tag, value)
    rollup: list[dict]
    warnings: list[str]
    outputs: list[LayoutOutputs]
    preview: OutputLink | None
    result_href: str
    home_href: str


def build_datasheet(
    file_row: Mapping[str, Any],
    *,
    paths: Iterable[str],
    outputs: Sequence[Mapping[str, Any]],
    layouts: Sequence[Mapping[str, Any]] = (),
    layers: Sequence[Mapping[str, Any]] = (),
    bom: Sequence[Mapping[str, Any]] = (),
    rollup: Sequence[Mapping[str, Any]] = (),
    root: str = "../../",
) -> Datasheet:
    """The datasheet of one drawing from its `files` row and its detail rows.

    `outputs` are the work's output records (``{"layout", "format", "file", "empty"}`` as in
    result.json; ``empty`` may be absent); `root` leads from the page to the output root.
    """
    work_id = str(file_row["work_id"])
    folder = f"outputs/{work_id}/"
    groups: dict[str, LayoutOutputs] = {}
    for out in outputs:
        layout = out.get("layout") or "model"  # 3D models' meshes belong to no layout
        group = groups.setdefault(layout, LayoutOutputs(layout, bool(out.get("empty")), []))
        group.files.append(OutputLink(out["file"], href(root, folder + out["file"]), out["format"]))
    title = [(label, file_row.get(key)) for key, label in TITLE_FIELDS if not is_missing(file_row.get(key))]
    return Datasheet(
        name=PurePosixPath(str(file_row["path"])).name,
        sha256=str(file_row["sha256"]),
        work_id=work_id,
        paths=sorted(paths),
        title=title,
        metadata=_metadata(file_row),
        layouts=[_pick(r, LAYOUT_COLUMNS) for r in sorted(layouts, key=lambda r: r.get("tab_order") or 0)],
        layers=[_pick(r, LAYER_COLUMNS) for r in sorted(layers, key=lambda r: str(r.get("name")))],
        bom_columns=bom_columns(bom),
        bom=[_bom_row(r) for r in bom],
        rollup=[dict(r) for r in rollup],
        warnings=[str(w) for w in _listed(file_row.get("warnings"))],
        outputs=list(groups.values()),
        preview=preview(list(groups.values())),
        result_href=href(root, folder + "result.json"),
        home_href=href(root, "docs/index.html"),
    )


def preview(outputs: list[LayoutOutputs]) -> OutputLink | None:
    """The image to show: the modelspace unless it is empty, else the first layout with content
    (tab order); PNG before SVG."""
    drawn = [o for o in outputs if not o.empty] or outputs
    for group in drawn:
        for fmt in ("png", "svg"):
            for link in group.files:
                if link.format == fmt:
                    return link
    return None


def bom_columns(bom: Sequence[Mapping[str, Any]]) -> list[str]:
    """Columns with a value in some row (part number, description, qty always): the BOM values,
    custom tag-map or 3D columns, then where the row comes from."""
    present = {k for row in bom for k, v in row.items() if not is_missing(v)}
    extra = sorted({k for row in bom for k in row} - set(BOM_VALUE_COLUMNS) - _BOM_NOT_VALUES)
    values = [c for c in BOM_VALUE_COLUMNS + extra if c in _BOM_ALWAYS or c in present]
    return values + [c for c in _BOM_TAIL if c in present]


def _bom_row(row: Mapping[str, Any]) -> dict:
    shown = dict(row)
    try:
        attributes = json.loads(row.get("attributes") or "{}")
    except (TypeError, ValueError):  # not written by our extractor: show it as it is
        attributes = {"attributes": row.get("attributes")}
    shown["attributes"] = list(attributes.items()) if isinstance(attributes, dict) else [("", attributes)]
    return shown


def _metadata(row: Mapping[str, Any]) -> list[tuple[str, Any]]:
    known = dict(METADATA_FIELDS)
    title_keys = {key for key, _ in TITLE_FIELDS}
    items = [(label, row.get(key)) for key, label in METADATA_FIELDS]
    others = sorted(k for k in row if k not in known and k not in title_keys and k not in _NOT_METADATA)
    items += [(key, row[key]) for key in others]
    return [(label, value) for label, value in items if not is_missing(value)]


def _pick(row: Mapping[str, Any], columns: list[str]) -> dict:
    return {c: row.get(c) for c in columns}


def _listed(value: Any) -> list:
    if value is None or isinstance(value, (str, bytes)):
        return [value] if value else []
    return list(value)


# The batch report.


@dataclass
class ReportEntry:
    path: str
    state: str  # processed | reused | unchanged | failed
    status: str  # ok | failed
    title: str | None = None
    drawing_number: str | None = None
    bom_rows: int | None = None
    datasheet: str | None = None  # href
    error: str | None = None
    thumbnail: str | None = None  # href of the thumbnail of its main layout


@dataclass
class ReportChange:
    """A drawing that came back with new content in this run (a `changes` row)."""

    path: str
    summary: str
    compared: bool
    note: str | None = None
    datasheet: str | None = None  # href
    title: list[tuple[str, Any, Any]] = field(default_factory=list)  # (field, before, after)
    counts: list[tuple[str, int]] = field(default_factory=list)  # ("BOM rows added", 2), non-zero only
    overlays: list[str] = field(default_factory=list)  # hrefs of the overlay images
    diff: str | None = None  # href of diff.json


@dataclass
class ReportFailure:
    path: str
    stage: str | None
    error_class: str | None
    message: str | None
    permanent: bool
    earlier: bool  # failed in an earlier run and not retried (a permanent failure of the same work)
    report: str | None = None  # href of the quarantine error report
    copy: str | None = None  # href of the quarantined copy


@dataclass
class SlowFile:
    path: str
    duration_ms: int
    status: str
    datasheet: str | None = None


@dataclass
class WhereUsed:
    part_number: str
    unit: str | None
    description: str | None
    drawings: int
    total_qty: float | None
    qty_unknown: int
    uses: list[tuple[str, str | None]]  # (path, datasheet href), bounded
    more: int  # paths left out of `uses`


@dataclass
class RunLink:
    run_id: str
    started_at: str | None
    files_seen: int | None
    failed: int | None
    href: str | None


@dataclass
class BatchReport:
    run: Mapping[str, Any]  # the catalog's run row
    entries: list[ReportEntry]
    failures: list[ReportFailure]
    slowest: list[SlowFile]
    where_used: list[WhereUsed]
    where_used_total: int  # rows in the where_used table (the report shows a bounded part)
    runs: list[RunLink] = field(default_factory=list)
    root: str = "../"
    register: str | None = None  # href of the drawing register page
    changes: list[ReportChange] = field(default_factory=list)
    changes_total: int = 0  # revisions of this run (the report shows a bounded part)
    gallery_href: str | None = None

    @property
    def changes_href(self) -> str:
        return href(self.root, "catalog/changes/")  # the Delta table's folder

    @property
    def counts(self) -> list[tuple[str, Any]]:
        keys = [
            ("files_seen", "Files"),
            ("processed", "Processed"),
            ("reused", "Reused"),
            ("unchanged", "Unchanged"),
            ("failed", "Failed"),
        ]
        return [(label, self.run.get(key)) for key, label in keys]

    @property
    def catalog_href(self) -> str:
        return href(self.root, "catalog/where_used/")  # the Delta table's folder


# Rendering.


def _number(value: Any) -> str:
    """Numbers as people write them: 2 not 2.0; 1e-07 stays exact enough."""
    if is_missing(value):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.6g}"
    return str(value)


def _cell(value: Any) -> str:
    if is_missing(value):
        return ""
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, (bool, int, float)):
        return _number(value)
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ndarray":
        return ", ".join(_cell(v) for v in value)
    return str(value)


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,  # every value escaped, whatever the template's file name
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_env.filters["cell"] = _cell
_env.filters["num"] = _number
_env.tests["link"] = lambda value: isinstance(value, Link)
# A relative link's target (catalog text form) as an href: each segment percent-encoded from its bytes.
_env.filters["href"] = lambda target: "/".join(quote(to_bytes(part), safe="") for part in target.split("/"))


def environment() -> jinja2.Environment:
    """The pages' Jinja2 environment (autoescaping, strict, with the `cell` and `num` filters)."""
    return _env


def render_datasheet(sheet: Datasheet, key: str = "") -> str:
    """The datasheet page; `key` is stored in a meta tag for the writer to find unchanged pages."""
    return _env.get_template("datasheet.html.j2").render(sheet=sheet, key=key)


def render_report(report: BatchReport) -> str:
    return _env.get_template("report.html.j2").render(report=report)


def render_register(table: Table) -> str:
    """The drawing register page: `table` as engine/register.py builds it (links relative to
    the page)."""
    statuses = [row.get("status") for row in table.rows]
    counts = [("Drawings", len(statuses)), ("ok", statuses.count("ok")), ("Failed", statuses.count("failed"))]
    return _env.get_template("register.html.j2").render(table=table, counts=counts)


def register_fingerprint() -> str:
    """Changes when the register page's template or this module changes."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for name in ("_page.html.j2", "register.html.j2"):
        digest.update((TEMPLATES / name).read_bytes())
    return digest.hexdigest()[:16]


def templates_fingerprint() -> str:
    """Changes when a template or this module changes: pages written before are then stale."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for path in sorted(TEMPLATES.glob("*.j2")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]
