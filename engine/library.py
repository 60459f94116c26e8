"""The library as the deliverables see it (engine/deliverables.py builds them): drawings, their
sheets and sets, and the keys that say which deliverable files are up to date.

Declarative and idempotent like the rest: `[deliverables]` states which exist; each output file
is made from a known input (its *key*: the work ids, paths and title-block values it shows,
and the builder's version) and is written again only when that key changed or the file is gone.
Files of deliverables no longer wanted (a set whose drawings left, a kind switched off) are
removed. The keys live in `OUT/.deliverables/state.json`, written after the files: a crash in
between only makes the next run write them again. Every file is written under a temporary name
and renamed; runs sharing an output root take turns (`OUT/.deliverables/lock`).

Sets: the drawings are grouped into sets, by folder (default: the drawings of one folder, not
of its subfolders) or by a title-block field (`group_by = "project"`: drawings without a value
stay in their folder's set). A set's name is its label (`library/ProjectA`, or the field's value)
made file-name safe (`library-ProjectA`); two labels giving the same name get a short hash each
(except one that is that name already).
Within a set, drawings go in drawing-number order (natural: D-2 before D-10), then those without
a number by file name.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import posixpath
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from converters.spreadsheet import missing
from documents.atomic import atomic_path
from documents.names import native_path, to_native
from engine.catalog import Catalog
from engine.work import read_result
from extractors.dxf_bom import BOM_VALUE_COLUMNS
from extractors.title_block import DEFAULT_TITLE_TAG_MAP

STATE_DIR = ".deliverables"
SETS_DIR = "sets"
MODEL_FORMATS = frozenset({"step", "iges", "stl"})  # models: in the catalog, not in the register
_SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_DIGITS = re.compile(r"(\d+)")
_TEMPORARY = re.compile(r"^\..+\.tmp(\.\w+)?$")  # documents.atomic's names: .register.k3j4_x.tmp.csv
# Standard sheets (mm, short side first): the register names a layout's paper by them.
_PAPER_SIZES = {
    "A0": (841, 1189),
    "A1": (594, 841),
    "A2": (420, 594),
    "A3": (297, 420),
    "A4": (210, 297),
    "ANSI A": (215.9, 279.4),
    "ANSI B": (279.4, 431.8),
    "ANSI C": (431.8, 558.8),
    "ANSI D": (558.8, 863.6),
    "ANSI E": (863.6, 1117.6),
    "Legal": (215.9, 355.6),
}


@dataclass(frozen=True)
class Sheet:
    """One page of a drawing as rendered: a paperspace layout with content, or the modelspace."""

    layout: str
    files: Mapping[str, str]  # format -> path relative to OUT


@dataclass(frozen=True)
class Drawing:
    """One 2D drawing of the catalog, as the deliverables show it."""

    source_root: str
    path: str  # relative to source_root (text form)
    status: str  # ok | failed
    format: str | None
    sha256: str | None
    work_id: str | None
    fields: Mapping[str, Any]  # title-block fields (title, drawing_number, ..., project)
    sheets: tuple[Sheet, ...] = ()
    page_size: str | None = None
    bom_rows: int | None = None
    bom_symbols: int | None = None
    warnings: int = 0
    error: str | None = None
    processed_at: dt.datetime | None = None

    @property
    def location(self) -> str:
        return posixpath.join(self.source_root, self.path)

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def number(self) -> str | None:
        return self.fields.get("drawing_number")

    @property
    def title(self) -> str | None:
        return self.fields.get("title")

    @property
    def bookmark(self) -> str:
        """How the drawing is named in a set's bookmarks: number and title, else its file name."""
        named = " ".join(v for v in (self.number, self.title) if v)
        return named or self.name

    def order(self) -> tuple:
        """Drawing-number order (natural), drawings without a number after, by file name."""
        return (self.number is None, natural_key(self.number or ""), natural_key(self.name), self.location)

    def key(self) -> list:
        """What the deliverables show of the drawing: they change when this does."""
        return [self.location, self.status, self.work_id, dict(self.fields), self.error]


@dataclass(frozen=True)
class DrawingSet:
    slug: str  # file-name safe, unique
    label: str
    members: tuple[Drawing, ...]  # drawings recorded ok, in drawing-number order
    left_out: tuple[Drawing, ...] = ()  # failed drawings of the set: named in its manifest

    @property
    def folder(self) -> str:
        return f"{SETS_DIR}/{self.slug}"


@dataclass
class Library:
    """The catalog as the deliverables read it: one snapshot per build."""

    out: Path
    drawings: list[Drawing]
    title_fields: list[str]
    catalog: Catalog
    bom_columns: list[str] = field(default_factory=list)  # columns a custom [bom] tag map adds
    _cache: dict[str, Any] = field(default_factory=dict)

    def table(self, name: str) -> pd.DataFrame:
        return self.catalog.read(name)

    def cached(self, name: str, convert: Callable[[pd.DataFrame], Any]) -> Any:
        """A catalog table converted once per build (the BOM of every set comes from one read)."""
        if name not in self._cache:
            self._cache[name] = convert(self.table(name))
        return self._cache[name]


@dataclass
class Built:
    """What one build of the deliverables did; paths relative to OUT."""

    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class State:
    """The keys of the files written (relative to OUT) and the sheets of each work id."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.path = out / STATE_DIR / "state.json"
        try:
            stored = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            stored = {}
        self.old: dict[str, str] = dict(stored.get("files", {}))
        self.files: dict[str, str] = {}
        self.sheets: dict[str, list] = dict(stored.get("sheets", {}))

    def fresh(self, relative: str, key: str) -> bool:
        """True when `relative` was made from `key` and is still there (then it is kept)."""
        if self.old.get(relative) == key and (self.out / relative).is_file():
            self.files[relative] = key
            return True
        return False

    def made(self, relative: str, key: str) -> None:
        self.files[relative] = key

    def keep_stale(self, folder: str) -> None:
        """A build under `folder` failed: its files stay as they were, and are made again next run."""
        for relative in self.old:
            if relative.startswith(folder.rstrip("/") + "/") and relative not in self.files:
                self.files[relative] = "stale"

    def finish(self, built: Built, live_work: set[str]) -> None:
        """Remove the files of deliverables no longer wanted; record the keys."""
        for relative in sorted(set(self.old) - set(self.files)):
            target = self.out / relative
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
                built.removed.append(relative)
            _remove_empty_folders(target.parent, self.out)
        self.sheets = {wid: s for wid, s in self.sheets.items() if wid in live_work}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path) as tmp:
            Path(tmp).write_text(json.dumps({"files": self.files, "sheets": self.sheets}, indent=1), encoding="utf-8")


def fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def natural_key(text: str) -> list[tuple[int, int, str]]:
    """Sort key that orders the numbers in text by value: D-2 < D-10 < D-10A < E-1."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part.casefold()) for part in _DIGITS.split(text) if part]


def slug(label: str) -> str:
    return _SLUG_UNSAFE.sub("-", label).strip("-.")[:100] or "set"


def write_file_for(out: Path, relative: str) -> Path:
    """The native path of a deliverable (its folders made)."""
    target = native_path(str(out)) / to_native(relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


@contextlib.contextmanager
def exclusive(out: Path) -> Iterator[None]:
    """One build at a time per output root, across processes."""
    folder = out / STATE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def sweep_temporaries(out: Path) -> None:
    """Half-written deliverables of a build that was killed (the lock is ours: all abandoned)."""
    found = list(out.glob(".register.*")) + list((out / STATE_DIR).glob(".*"))
    if (out / SETS_DIR).is_dir():
        found += (out / SETS_DIR).rglob(".*")
    for tmp in found:
        if _TEMPORARY.match(tmp.name) and tmp.is_file():
            tmp.unlink(missing_ok=True)


def title_fields(cfg) -> list[str]:
    return list(DEFAULT_TITLE_TAG_MAP) + [f for f in cfg.raw["title_block"]["tags"] if f not in DEFAULT_TITLE_TAG_MAP]


def load_library(out: Path, cfg, state: State) -> Library:
    """The drawings of the catalog (models left out), with their sheets and paper sizes."""
    catalog = Catalog(out)
    with catalog.lock():  # files and layouts of one publish
        files = catalog.read("files")
        layouts = catalog.read("layouts")
    fields = title_fields(cfg)
    custom = [c for c in cfg.raw["bom"]["tags"] if c not in BOM_VALUE_COLUMNS]
    if files.empty:
        return Library(out, [], fields, catalog, custom)
    papers = _papers(layouts)
    drawings = []
    for row in files.to_dict("records"):
        if row.get("format") in MODEL_FORMATS:
            continue
        values = {f: _text(row.get(f)) for f in fields}
        status = row["status"]
        work_id = _text(row.get("work_id"))
        sheets: tuple[Sheet, ...] = ()
        if status == "ok" and work_id:
            sheets = _sheets(out, work_id, _text(row.get("title_block_layout")), state)
        sha = _text(row.get("sha256"))
        page = papers.get((sha, sheets[0].layout)) if sheets and sha else None
        drawings.append(
            Drawing(
                source_root=row["source_root"],
                path=row["path"],
                status=status,
                format=_text(row.get("format")),
                sha256=sha,
                work_id=work_id,
                fields=values,
                sheets=sheets,
                page_size=page,
                bom_rows=_int(row.get("bom_row_count")),
                bom_symbols=_int(row.get("bom_symbol_count")),
                warnings=len(row["warnings"]) if not missing(row.get("warnings")) else 0,
                error=_text(row.get("error_message")),
                processed_at=_datetime(row.get("processed_at")),
            )
        )
    return Library(out, drawings, fields, catalog, custom)


def group_sets(drawings: list[Drawing], group_by: str = "folder") -> list[DrawingSet]:
    """The sets of the drawings (see module doc), sorted by name."""
    groups: dict[tuple, tuple[str, list[Drawing]]] = {}
    for drawing in drawings:
        value = drawing.fields.get(group_by) if group_by != "folder" else None
        if value:
            key: tuple = ("field", value)
            label = value
        else:
            folder = posixpath.dirname(drawing.path)
            key = ("folder", drawing.source_root, folder)
            label = posixpath.join(posixpath.basename(drawing.source_root.rstrip("/")) or "root", folder).rstrip("/")
        groups.setdefault(key, (label, []))[1].append(drawing)
    names: dict[str, list[tuple]] = {}
    for key, (label, _) in groups.items():
        names.setdefault(slug(label), []).append(key)
    sets = []
    for name, keys in names.items():
        for key in keys:
            label, members = groups[key]
            # On a clash the label that is its name already keeps it (the folder "library" stays
            # "library" beside a folder "library/[" that is made "library" too).
            plain = len(keys) == 1 or (label == name and sum(groups[k][0] == name for k in keys) == 1)
            unique = name if plain else f"{name}-{fingerprint(*key)[:8]}"
            members.sort(key=Drawing.order)
            ok = tuple(m for m in members if m.status == "ok")
            failed = tuple(m for m in members if m.status != "ok")
            sets.append(DrawingSet(unique, label, ok, failed))
    return sorted(sets, key=lambda s: natural_key(s.slug))


def _sheets(out: Path, work_id: str, title_layout: str | None, state: State) -> tuple[Sheet, ...]:
    """The drawing's sheets: its paperspace layouts that drew something, in tab order (the
    modelspace first when the title block is there); else the modelspace. Read once per work
    id from its result.json (which says which layouts drew nothing) and kept in the state."""
    if work_id not in state.sheets:
        try:
            outputs = read_result(out, work_id).get("outputs", [])
        except (FileNotFoundError, ValueError):
            return ()  # outputs deleted by hand: nothing to put in a set (not cached: may come back)
        layouts: dict[str, dict] = {}
        for o in outputs:
            name = o.get("layout") or "Model"
            entry = layouts.setdefault(name, {"layout": name, "empty": bool(o.get("empty")), "files": {}})
            entry["files"][o["format"]] = f"outputs/{work_id}/{o['file']}"
        state.sheets[work_id] = list(layouts.values())
    layouts_list = state.sheets[work_id]
    model = [s for s in layouts_list if s["layout"] == "Model"]
    paper = [s for s in layouts_list if s["layout"] != "Model" and not s["empty"]]
    chosen = paper or model or layouts_list[:1]
    if paper and title_layout == "Model" and model and not model[0]["empty"]:
        chosen = model + paper
    return tuple(Sheet(s["layout"], dict(s["files"])) for s in chosen)


def _papers(layouts: pd.DataFrame) -> dict[tuple[str, str], str]:
    if layouts.empty or "paper_width" not in layouts.columns:
        return {}
    named = {}
    for row in layouts[["sha256", "name", "paper_width", "paper_height"]].itertuples(index=False):
        size = paper_name(row.paper_width, row.paper_height)
        if size:
            named[(row.sha256, row.name)] = size
    return named


def paper_name(width: Any, height: Any) -> str | None:
    """A layout's paper as people name it: ``A1``, ``ANSI D``, else ``500 x 300 mm``."""
    if missing(width) or missing(height) or width <= 0 or height <= 0:
        return None
    short, long = sorted((float(width), float(height)))
    for name, (a, b) in _PAPER_SIZES.items():
        if abs(short - a) <= 2 and abs(long - b) <= 2:
            return name
    return f"{float(width):g} x {float(height):g} mm"


def _remove_empty_folders(folder: Path, stop: Path) -> None:
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _text(value: Any) -> str | None:
    if missing(value):
        return None
    text = str(value).strip()
    return text or None


def _int(value: Any) -> int | None:
    return None if missing(value) else int(value)


def _datetime(value: Any) -> dt.datetime | None:
    if missing(value):
        return None
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
