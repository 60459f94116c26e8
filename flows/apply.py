"""`cadpipe apply`: a recipe of declarative edits over a library of DXF drawings, as a Prefect flow.

Plan (discover, select, skip what is up to date) -> edit chunks of drawings in isolated worker
processes (the batch's executor: timeouts, retries, a corrupt drawing fails alone with its reason)
-> record every change in the catalog's ``edits`` table -> re-catalogue the edited drawings with
the batch flow. Recipes are described in :mod:`editors.recipe`.

Where edited drawings go:

- by default into ``OUT/revisions/<recipe name>-<recipe hash8>/<path in the library>``; the
  library itself is never written;
- in place only with ``in_place`` and a ``backup`` folder: each original is first copied to
  ``BACKUP/<run id>/<path in the library>``;
- a dry run writes nothing anywhere (no revision, no catalog row) and reports the changes.

Drawings no operation changes are not written. A drawing is up to date, and not even opened,
when the ``edits`` table says this recipe already made its current revision from the library
file as it is now (in place: the file is the one this recipe wrote); a second apply therefore
reports zero changes, even for a recipe whose replacement text matches its own pattern.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import threading
from collections import Counter
from pathlib import Path

from pebble import ProcessPool
from prefect import flow, get_run_logger, task
from prefect.runtime import flow_run
from prefect.states import Completed, Failed

from documents.errors import failure
from documents.names import native_path, printable, to_native, to_text
from editors.edit_file import edit_job, init_edit_worker, temp_beside
from editors.recipe import Recipe, RecipeError, load_recipe
from editors.selection import FileFacts, TitleSettings, facts_selected, path_selected
from engine.catalog import Catalog, now_iso
from engine.config import REVISIONS_DIR, Config, ConfigError, check_roots, load_config
from engine.discover import InputFile, scan, sha256_file
from engine.edit_journal import RunJournal, edit_rows, recover
from engine.executor import FileExecutor, RetryPolicy, default_workers
from extractors.block_attributes import DEFAULT_TAG_MAP
from extractors.title_block import DEFAULT_TITLE_BLOCK_PATTERNS, DEFAULT_TITLE_TAG_MAP
from flows.batch import chunk_size_for, new_run_id
from flows.outcomes import FilesFailed, summary_of

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


# Planning.


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


@task(name="plan-edits")
def plan_edits(
    cfg: Config,
    recipe: Recipe,
    settings: TitleSettings,
    library: Path,
    target_root: Path,
    in_place: bool,
    backup_root: Path | None,
    dry_run: bool,
) -> tuple[list[dict], list[dict]]:
    """(jobs for the workers, results settled without opening a drawing)."""
    catalog = Catalog(cfg.out)
    skip = [cfg.out] + ([backup_root.parent] if backup_root is not None else [])
    exclude = cfg.raw["inputs"]["exclude"]
    follow = cfg.raw["inputs"]["follow_symlinks"]
    found = scan(
        [library], exclude=exclude, formats=["dxf"], known=catalog.known_files(), skip=skip, follow_symlinks=follow
    )
    inputs = found.inputs
    root = to_text(library if library.is_dir() else library.parent)
    facts = catalog_facts(catalog, root, settings) if recipe.select.needs_facts else {}
    records = applied_edits(catalog, recipe, "in-place" if in_place else "revision", root)
    jobs: list[dict] = []
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
        if not path_selected(recipe.select, item.path, item.format):
            settled.append({**base, "status": "skipped", "note": "path or format not selected"})
            continue
        known = facts.get(item.path)
        known_facts = known[1] if known is not None and known[0] == item.sha256 else None
        if known_facts is not None and not facts_selected(recipe.select, known_facts):
            settled.append({**base, "status": "skipped", "note": "selection conditions not met (catalog)"})
            continue
        dest = target_root / to_native(item.path)
        record = records.get(item.path)
        if _up_to_date(record, item, dest, in_place):
            settled.append({**base, "status": "unchanged", "note": f"already applied (run {record['run_id']})"})
            continue
        jobs.append(
            {
                "path": item.path,
                "source_root": item.source_root,
                "format": item.format,
                "sha256": item.sha256,
                "work_id": f"{recipe.short_hash}-{item.sha256[:16]}",
                "recipe_path": str(recipe.path),
                "recipe_hash": recipe.hash,
                "title_fields": list(settings.title_tags),
                "title_patterns": list(settings.patterns),
                "title_tags": settings.title_tags,
                "part_tags": settings.part_tags,
                "facts": known_facts.to_dict() if known_facts is not None else None,
                "dest": to_text(dest),
                "backup": to_text(backup_root / to_native(item.path)) if backup_root is not None else None,
                "dry_run": dry_run,
                "attempt": 1,
            }
        )
    return jobs, settled


# Editing, in worker processes.


class EditExecutor(FileExecutor):
    """The batch's process pool (timeouts, retries, crash isolation), running edit jobs."""

    def _new_pool(self) -> ProcessPool:
        return ProcessPool(
            max_workers=self.workers,
            initializer=init_edit_worker,
            initargs=(self.memory_mb,),
            context=multiprocessing.get_context("spawn"),  # the flow process runs threads
        )

    def _schedule(self, job: dict, timeout_s: float):
        with self._lock:
            if not self._pool.active:  # a worker killed mid-message broke the pool: replace it
                self._pool.stop()
                self._pool = self._new_pool()
            return self._pool.schedule(edit_job, args=(job,), timeout=timeout_s)


_executor: EditExecutor | None = None
_executor_lock = threading.Lock()


def _edit_executor(workers: int, memory_mb: int) -> EditExecutor:
    """One pool per flow process, shared by the chunk tasks (threads)."""
    global _executor
    with _executor_lock:
        if _executor is None or (_executor.workers, _executor.memory_mb) != (workers, memory_mb):
            if _executor is not None:
                _executor.close()
            _executor = EditExecutor(workers, memory_mb)
        return _executor


def _close_edit_executor() -> None:
    global _executor
    with _executor_lock:
        if _executor is not None:
            _executor.close()
            _executor = None


@task(name="edit-chunk", task_run_name="edit-chunk-{index}", retries=2, retry_delay_seconds=[5, 20])
def edit_chunk(index: int, jobs: list[dict], settings: dict) -> list[dict]:
    """A task retry (an infrastructure fault) redoes the whole chunk: edits are idempotent."""
    logger = get_run_logger()

    def report(job: dict, result: dict) -> None:
        if result["status"] == "failed":
            logger.warning("%s", result["error_message"])
        elif result["status"] == "changed":
            changes = result["changes"]
            lines = "\n".join(f"  {c['operation']}: {c['target']}: {c['before']!r} -> {c['after']!r}" for c in changes)
            dry = " (dry run)" if job["dry_run"] else ""
            logger.info("%s: %d changes%s\n%s", job["path"], len(changes), dry, lines)

    executor = _edit_executor(settings["workers"], settings["memory_mb"])
    return executor.run(jobs, timeout_s=settings["timeout_s"], retry=RetryPolicy(**settings["retry"]), on_result=report)


def _run_chunks(jobs: list[dict], settings: dict) -> list[dict]:
    size = chunk_size_for(len(jobs), settings["workers"])
    chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
    futures = [edit_chunk.submit(i, chunk, settings) for i, chunk in enumerate(chunks)]
    results: list[dict] = []
    for chunk, future in zip(chunks, futures):
        future.wait()
        state = future.state
        if state.is_completed():
            chunk_results = future.result()
        else:  # the chunk itself failed after its retries: each of its files failed, retryable
            reason = state.message or "chunk task failed"
            chunk_results = [failure(job, "orchestration", "ChunkFailed", reason, False) for job in chunk]
        for job, result in zip(chunk, chunk_results):
            results.append({**result, "path": job["path"], "source_root": job["source_root"]})
    return results


# Recording and re-cataloguing.


@task(name="record-edits")
def record_edits(out: Path, recipe: Recipe, run_id: str, mode: str, files: list[dict]) -> int:
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


def recatalogue(source: Path, out: Path, config: str | None, workers: int | None) -> dict:
    """The batch flow over the folder the edited drawings are in (a sub-flow run)."""
    from flows.batch import batch

    state = batch(sources=[to_text(source)], out=to_text(out), config=config, workers=workers, return_state=True)
    summary = summary_of(state.result(raise_on_failure=False))
    if summary is None:
        return {"error": state.message}
    keys = ("run_id", "files_seen", "processed", "unchanged", "reused", "failed", "failures")
    return {key: summary[key] for key in keys}


@flow(name="cadpipe-apply")
def apply_recipe(
    recipe: str,
    library: str,
    out: str | None = None,
    dry_run: bool = False,
    in_place: bool = False,
    backup: str | None = None,
    config: str | None = None,
    workers: int | None = None,
    recatalog: bool = True,
):
    """Apply the edit recipe `recipe` (a YAML file) to the DXF drawings of `library`.

    Edited drawings go to OUT/revisions/<recipe>-<hash8>/ unless `in_place` (which needs a
    `backup` folder); a `dry_run` writes nothing. The run ends Failed when a drawing failed.
    """
    logger = get_run_logger()
    cfg = load_config(config, out=out, overrides={"run": {"workers": workers}} if workers else None)
    settings = title_settings(cfg)
    plan_recipe = load_recipe(recipe, settings.title_tags)
    root, backup_dir = check_paths(library, in_place, backup, dry_run, cfg.out)
    run = {"run_id": new_run_id(), "flow_run_id": str(flow_run.id) if flow_run.id else None, "started_at": now_iso()}
    mode = "in-place" if in_place else "revision"
    target_root = (root if root.is_dir() else root.parent) if in_place else revision_dir(cfg.out, plan_recipe)
    backup_root = backup_dir / run["run_id"] if backup_dir is not None else None
    journal = None
    if not dry_run:
        recovered, dropped = complete_interrupted_edits(cfg.out)
        if recovered or dropped:
            logger.warning(
                "%d edit rows of interrupted apply runs recorded now; %d announced edits never happened",
                recovered,
                dropped,
            )
        journal = RunJournal(
            cfg.out, {**run, "recipe_name": plan_recipe.name, "recipe_hash": plan_recipe.hash, "mode": mode}
        )
    try:
        return _apply(
            cfg,
            plan_recipe,
            settings,
            root,
            target_root,
            in_place,
            backup_root,
            dry_run,
            run,
            mode,
            journal,
            logger,
            config,
            workers,
            recatalog,
        )
    finally:
        if journal is not None:
            journal.release()  # an unrecorded journal (the run raised) stays for the next apply


def _apply(
    cfg,
    plan_recipe,
    settings,
    root,
    target_root,
    in_place,
    backup_root,
    dry_run,
    run,
    mode,
    journal,
    logger,
    config,
    workers,
    recatalog,
):
    jobs, settled = plan_edits(cfg, plan_recipe, settings, root, target_root, in_place, backup_root, dry_run)
    if journal is not None:
        temporaries = []
        for job in jobs:
            job["intent_file"] = journal.intent_file(job["path"])
            job["temp_tag"] = run["run_id"]
            temporaries += [
                to_text(temp_beside(native_path(p), run["run_id"])) for p in (job["dest"], job["backup"]) if p
            ]
        journal.plan(temporaries)
    total = len(jobs) + len(settled)
    logger.info("%s (%s): %d drawings, %d to open", plan_recipe.name, plan_recipe.short_hash, total, len(jobs))
    exec_settings = {
        "workers": cfg.raw["run"]["workers"] or default_workers(),
        "timeout_s": cfg.raw["limits"]["timeout_s"],
        "memory_mb": cfg.raw["limits"]["memory_mb"],
        "retry": dict(cfg.raw["retries"]),
    }
    try:
        results = _run_chunks(jobs, exec_settings) if jobs else []
    finally:
        _close_edit_executor()
    files = sorted(settled + results, key=lambda r: r["path"])
    rows = 0
    catalogued = None
    # written, or an outdated revision removed: either way the catalog of that folder is stale
    touched = [r for r in files if r.get("output") or r.get("note") == "outdated revision removed"]
    if not dry_run:
        rows = record_edits(cfg.out, plan_recipe, run["run_id"], mode, files)
        journal.close()
        if touched and recatalog:
            catalogued = recatalogue(target_root if not in_place else root, cfg.out, config, workers)
    counts = Counter(r["status"] for r in files)
    summary = {
        **run,
        "finished_at": now_iso(),
        "recipe": plan_recipe.name,
        "recipe_hash": plan_recipe.hash,
        "library": to_text(root),
        "out": to_text(cfg.out),
        "mode": "dry-run" if dry_run else mode,
        "revision_dir": None if in_place else to_text(target_root),
        "backup_dir": to_text(backup_root) if backup_root is not None and not dry_run else None,
        "files_seen": len(files),
        "selected": len(files) - counts["skipped"],
        "changed": counts["changed"],
        "unchanged": counts["unchanged"],
        "skipped": counts["skipped"],
        "failed": counts["failed"],
        "changes": sum(len(r.get("changes", [])) for r in files if r["status"] == "changed"),
        "edit_rows": rows,
        "files": files,
        "failures": [r["error_message"] for r in files if r["status"] == "failed"],
        "catalog": catalogued,
    }
    verb = "would change" if dry_run else "changed"
    message = (
        f"{plan_recipe.name}: {summary['files_seen']} drawings, {summary['selected']} selected: "
        f"{summary['changed']} {verb} ({summary['changes']} changes), {summary['unchanged']} unchanged, "
        f"{summary['failed']} failed"
    )
    logger.info("%s", message)  # the recipe's name is user text, never a format string
    if summary["failed"]:  # an exception as its data, so a deployment's run ends without a traceback
        return Failed(message=message, data=FilesFailed(message, summary))
    return Completed(message=message, data=summary)


# Command line: `cadpipe apply` (flows/cli.py defines its arguments and calls run).


def run(args: argparse.Namespace) -> int:
    """0: every selected drawing ok; 1: some drawing failed; 2: bad recipe or arguments; 3: the flow crashed."""
    from rich.console import Console
    from rich.markup import escape

    err = Console(stderr=True, soft_wrap=True)  # whole lines: messages name files and fields
    # Check everything that needs no Prefect first: a typo should cost a second, not a server start.
    from flows import temporary_server

    # Prefect parameters are JSON: paths in the catalog's text form (documents/names.py).
    library, backup = to_text(args.library), to_text(args.backup) if args.backup else None
    out = to_text(args.out) if args.out else None
    try:
        cfg = load_config(args.config, out=out)
        load_recipe(args.recipe, title_settings(cfg).title_tags)
        check_paths(library, args.in_place, backup, args.dry_run, cfg.out)
    except (ConfigError, RecipeError, ApplyError) as exc:
        err.print(f"[red]error:[/red] {escape(printable(exc))}")
        return 2
    with contextlib.ExitStack() as stack:
        try:  # ours, not Prefect's temporary server: it dies with this process, even on SIGKILL
            stack.enter_context(
                temporary_server.prefect_api(
                    float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", 180))
                )
            )
        except RuntimeError as exc:
            err.print(f"[red]apply did not start:[/red] {escape(printable(exc))}")
            return 3
        state = apply_recipe(
            recipe=args.recipe,
            library=library,
            out=out,
            dry_run=args.dry_run,
            in_place=args.in_place,
            backup=backup,
            config=args.config,
            workers=args.workers,
            recatalog=not args.no_catalog,
            return_state=True,
        )
    summary = summary_of(state.result(raise_on_failure=False))
    if summary is None:
        err.print(f"[red]apply did not complete:[/red] {escape(str(state.message))}")
        return 3
    print_report(summary, quiet=args.quiet)
    return 1 if summary["failed"] else 0


def selection_hints(summary: dict) -> list[str]:
    """Why a recipe selected nothing: how many drawings each part of `select` left out."""
    if summary["selected"]:
        return []
    library = summary.get("library", "the library")
    if not summary["files_seen"]:
        return [f"{library} holds no DXF drawing (DWG and other formats cannot be edited)"]
    notes: dict[str, int] = {}
    for result in summary["files"]:
        if result["status"] == "skipped":
            note = result.get("note") or "not selected"
            notes[note] = notes.get(note, 0) + 1
    reasons = ", ".join(f"{count} {note}" for note, count in sorted(notes.items(), key=lambda kv: -kv[1]))
    return [
        f"the recipe selected none of the {summary['files_seen']} drawings of {library} ({reasons}): "
        "select.paths globs match paths relative to the library (a glob without / matches the file name), "
        "and every condition of select must hold"
    ]


def _shown(value: str | None, limit: int = 100) -> str:
    if value is None:
        return "(none)"
    text = value if len(value) <= limit else value[: limit - 3] + "..."
    return f'"{text}"'


def print_report(summary: dict, quiet: bool = False) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    out = Console(soft_wrap=True)  # one change per line, however long, for reading and grep
    dry = summary["mode"] == "dry-run"
    if dry:
        out.print("[bold yellow]dry run:[/bold yellow] nothing was written")
    for result in summary["files"]:
        status = result["status"]
        if status == "failed":
            out.print(f"[red]failed[/red] {escape(result['error_message'])}")
        elif status == "changed" and not quiet:
            where = "" if dry or not result.get("output") else f" -> {result['output']}"
            out.print(f"[bold]{escape(result['path'])}[/bold]{escape(where)}")
            for change in result["changes"]:
                before, after = _shown(change["before"]), _shown(change["after"])
                line = f"  {change['operation']}: {change['target']}: {before} → {after}"
                out.print(escape(line), highlight=False)
        elif status == "unchanged" and (result.get("note") or "").startswith("outdated revision") and not quiet:
            out.print(f"[bold]{escape(result['path'])}[/bold]: {escape(result['note'])}")
    title = f"cadpipe apply {summary['recipe']} ({summary['recipe_hash'][:8]}), run {summary['run_id']}"
    table = Table(title=Text(title))  # the recipe's name is user text, not markup
    columns = ("drawings", "selected", "would change" if dry else "changed", "unchanged", "failed", "changes")
    for column in columns:
        table.add_column(column, justify="right")
    table.add_row(
        str(summary["files_seen"]),
        str(summary["selected"]),
        str(summary["changed"]),
        str(summary["unchanged"]),
        f"[red]{summary['failed']}[/red]" if summary["failed"] else "0",
        str(summary["changes"]),
    )
    out.print(table)
    for hint in selection_hints(summary):
        out.print(f"[yellow]hint:[/yellow] {escape(hint)}")
    if summary["revision_dir"] and not dry:
        out.print(f"revisions: {escape(summary['revision_dir'])}")
    if summary["backup_dir"]:
        out.print(f"backups: {escape(summary['backup_dir'])}")
    catalog = summary.get("catalog")
    if catalog:
        if "error" in catalog:
            out.print(f"[red]re-cataloguing did not complete:[/red] {escape(str(catalog['error']))}")
        else:
            counts = f"{catalog['processed']} processed, {catalog['failed']} failed"
            out.print(f"re-catalogued: {counts} (run {catalog['run_id']})")
