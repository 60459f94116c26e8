"""Planning and recording an apply run: which drawings to open, and the audit trail of edits.

Prefect-free: flows/apply.py runs these as the `cadpipe-apply` flow's steps, and the editing
itself in the engine's worker runner (engine/executor.py) with `EDIT_WORK`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from documents.contracts import FileOutcome
from documents.names import native_path, to_native, to_text
from editors.edit_file import EditJob, EditOutcome, edit_job, init_edit_worker
from editors.recipe import Recipe
from editors.selection import FileFacts, TitleSettings, facts_selected, path_selected
from engine.catalog import Catalog, now_iso
from engine.config import REVISIONS_DIR, Config, ConfigError, check_roots
from engine.discover import InputFile, scan, sha256_file
from engine.edit_journal import edit_rows, recover
from engine.executor import WorkFunction
from extractors.block_attributes import DEFAULT_TAG_MAP
from extractors.title_block import DEFAULT_TITLE_BLOCK_PATTERNS, DEFAULT_TITLE_TAG_MAP

# What an apply run's worker pool runs.
EDIT_WORK: WorkFunction[EditJob, EditOutcome | FileOutcome] = WorkFunction(edit_job, init_edit_worker)

EDIT_COLUMNS = [
    "run_id",
    "recipe_name",
    "recipe_hash",
    "mode",
    "source_root",
    "path",
    "output",
    "backup",
    "sha256_before",
    "sha256_after",
    "operation",
    "target",
    "before",
    "after",
    "edited_at",
]


@dataclass
class EditPlan:
    jobs: list[EditJob] = field(default_factory=list)  # drawings to open
    settled: list[dict[str, Any]] = field(
        default_factory=list
    )  # decided without opening: skipped, up to date, unreadable


class ApplyError(ValueError):
    """Arguments that cannot work together (in place without a backup, a missing library ...)."""


def title_settings(cfg: Config) -> TitleSettings:
    """The catalog's title block rules, so that selection and edits agree with its columns."""

    def merged(defaults: dict[str, list[str]], extra: dict[str, list[str]]) -> dict[str, list[str]]:
        tags = {column: list(spellings) for column, spellings in defaults.items()}
        for column, spellings in extra.items():
            tags.setdefault(column, []).extend(spellings)
        return tags

    patterns = cfg.raw["title_block"]["block_patterns"] or DEFAULT_TITLE_BLOCK_PATTERNS
    return TitleSettings(
        tuple(patterns),
        merged(DEFAULT_TITLE_TAG_MAP, cfg.raw["title_block"]["tags"]),
        merged(DEFAULT_TAG_MAP, cfg.raw["bom"]["tags"]),
    )


def revision_dir(out: Path, recipe: Recipe) -> Path:
    return Path(out) / REVISIONS_DIR / f"{recipe.name}-{recipe.short_hash}"


def check_paths(
    library: str, in_place: bool, backup: str | None, dry_run: bool, out: Path | None = None
) -> tuple[Path, Path | None]:
    """The library, and the backup folder (in place only); raises ApplyError for what cannot work.
    `library` and `backup` in the catalog's text form (documents/names.py)."""
    root = native_path(library).resolve()
    if not root.exists():
        raise ApplyError(f"library not found: {to_text(root)}")
    if out is not None:
        try:
            check_roots([root], out, what="library")
        except ConfigError as exc:
            raise ApplyError(str(exc)) from exc
    if backup and not in_place:
        raise ApplyError("--backup is only used with --in-place")
    if in_place and not backup and not dry_run:
        raise ApplyError("--in-place needs --backup DIR: the originals are copied there first")
    backup_dir = native_path(backup).resolve() if backup else None
    if backup_dir is not None and root.is_dir() and backup_dir.is_relative_to(root):
        raise ApplyError(f"the backup folder {backup_dir} lies inside the library; choose one outside it")
    return root, backup_dir


def catalog_facts(catalog: Catalog, root: str, settings: TitleSettings) -> dict[str, tuple[str, FileFacts]]:
    """path -> (sha256, facts) for the library's drawings the catalog records as ok."""
    files = catalog.read("files")
    if files.empty or "dxf_version" not in files.columns:
        return {}
    rows = files[(files["source_root"] == root) & (files["status"] == "ok")]
    layers = catalog.read("layers")
    names: dict[str, set[str]] = {}
    if not rows.empty and not layers.empty:
        wanted = set(rows["sha256"])
        for sha, name in zip(layers["sha256"], layers["name"]):
            if sha in wanted:
                names.setdefault(sha, set()).add(str(name).casefold())
    fields = [*settings.title_tags, "title_block_name"]
    facts = {}
    for row in rows.to_dict("records"):
        version = row.get("dxf_version")
        if not isinstance(version, str):  # no stated version: the document decides
            continue
        title = {f: row[f] if isinstance(row.get(f), str) else None for f in fields}
        facts[row["path"]] = (row["sha256"], FileFacts(version.upper(), frozenset(names.get(row["sha256"], ())), title))
    return facts


def applied_edits(catalog: Catalog, recipe: Recipe, mode: str, root: str) -> dict[str, dict]:
    """path -> the latest `edits` row this recipe wrote for it in this mode."""
    edits = catalog.read("edits")
    if edits.empty:
        return {}
    mine = edits[(edits["recipe_hash"] == recipe.hash) & (edits["mode"] == mode) & (edits["source_root"] == root)]
    return {row["path"]: row for row in mine.drop_duplicates("path", keep="last").to_dict("records")}


def _up_to_date(record: dict | None, item: InputFile, dest: Path, in_place: bool) -> bool:
    if record is None:
        return False
    if in_place:
        return item.sha256 == record["sha256_after"]
    return item.sha256 == record["sha256_before"] and dest.is_file() and sha256_file(dest) == record["sha256_after"]


def plan_edits(
    cfg: Config,
    recipe: Recipe,
    settings: TitleSettings,
    library: Path,
    target_root: Path,
    in_place: bool,
    backup_root: Path | None,
    dry_run: bool,
) -> EditPlan:
    """What an apply run does: the drawings to open, and those settled without opening them."""
    catalog = Catalog(cfg.out)
    skip = [cfg.out] + ([backup_root.parent] if backup_root is not None else [])
    exclude = list(cfg.inputs.exclude)
    follow = cfg.inputs.follow_symlinks
    found = scan(
        [library], exclude=exclude, formats=["dxf"], known=catalog.known_files(), skip=skip, follow_symlinks=follow
    )
    inputs = found.inputs
    root = to_text(library if library.is_dir() else library.parent)
    facts = catalog_facts(catalog, root, settings) if recipe.select.needs_facts else {}
    records = applied_edits(catalog, recipe, "in-place" if in_place else "revision", root)
    jobs: list[EditJob] = []
    settled: list[dict] = [  # what could not be read fails with its reason, never silently
        {
            "path": p.path,
            "source_root": p.source_root,
            "changes": [],
            "status": "failed",
            "error_message": p.message,
            "error_class": p.error_class,
            "stage": "discover",
            "permanent": p.permanent,
        }
        for p in found.problems
    ]
    for item in inputs:
        base = {"path": item.path, "source_root": item.source_root, "changes": []}
        if not path_selected(recipe.select, item.path, item.format or ""):
            settled.append({**base, "status": "skipped", "note": "path or format not selected"})
            continue
        known = facts.get(item.path)
        known_facts = known[1] if known is not None and known[0] == item.sha256 else None
        if known_facts is not None and not facts_selected(recipe.select, known_facts):
            settled.append({**base, "status": "skipped", "note": "selection conditions not met (catalog)"})
            continue
        dest = target_root / to_native(item.path)
        record = records.get(item.path)
        if record is not None and _up_to_date(record, item, dest, in_place):
            settled.append({**base, "status": "unchanged", "note": f"already applied (run {record['run_id']})"})
            continue
        jobs.append(
            EditJob(
                source_root=item.source_root,
                path=item.path,
                format=item.format or "dxf",
                sha256=item.sha256 or "",
                work_id=f"{recipe.short_hash}-{(item.sha256 or '')[:16]}",
                recipe_path=str(recipe.path),
                recipe_hash=recipe.hash,
                title_fields=tuple(settings.title_tags),
                title_patterns=tuple(settings.patterns),
                title_tags=settings.title_tags,
                part_tags=settings.part_tags,
                facts=known_facts.to_dict() if known_facts is not None else None,
                dest=to_text(dest),
                backup=to_text(backup_root / to_native(item.path)) if backup_root is not None else None,
                dry_run=dry_run,
            )
        )
    return EditPlan(jobs, settled)


def record_edits(out: Path, recipe: Recipe, run_id: str, mode: str, files: list[dict]) -> int:
    """Append the changes of the edited drawings to the `edits` table; return the rows added."""
    edited_at = now_iso()
    run = {"run_id": run_id, "recipe_name": recipe.name, "recipe_hash": recipe.hash, "mode": mode}
    rows = [row for result in files if result["status"] == "changed" for row in edit_rows(result, run, edited_at)]
    Catalog(out).append("edits", rows, EDIT_COLUMNS)
    return len(rows)


def complete_interrupted_edits(out: Path) -> tuple[int, int]:
    """Record the edits of apply runs killed before they recorded them (engine/edit_journal.py);
    returns (rows recorded, intents dropped)."""
    catalog = Catalog(out)
    with catalog.lock():
        edits = catalog.read("edits")
        recorded = set(zip(edits["run_id"], edits["path"])) if not edits.empty else set()
        rows, dropped = recover(out, recorded)
    catalog.append("edits", rows, EDIT_COLUMNS)
    return len(rows), dropped
