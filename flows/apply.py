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
import dataclasses
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from prefect import flow, get_run_logger, task
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State

from documents.contracts import FileOutcome
from documents.errors import failure
from documents.names import native_path, printable, to_text
from editors.edit_file import EditJob, EditOutcome, temp_beside
from editors.recipe import Recipe, RecipeError, load_recipe
from editors.selection import TitleSettings
from engine import edits
from engine.catalog import now_iso
from engine.config import Config, ConfigError, load_config
from engine.edit_journal import RunJournal
from engine.edits import (
    EDIT_WORK,
    ApplyError,
    EditPlan,
    check_paths,
    complete_interrupted_edits,
    plan_edits,
    revision_dir,
    title_settings,
)
from engine.executor import RunSettings, close_shared_pool, run_settings, shared_pool
from flows.batch import chunk_size_for, new_run_id
from flows.outcomes import FilesFailed, summary_of


@task(name="plan-edits")
def plan_task(apply: ApplyRun) -> EditPlan:
    return plan_edits(
        apply.cfg,
        apply.recipe,
        apply.settings,
        apply.root,
        apply.target_root,
        apply.in_place,
        apply.backup_root,
        apply.dry_run,
    )


@task(name="record-edits")
def record_edits(out: Path, recipe: Recipe, run_id: str, mode: str, files: list[dict]) -> int:
    return edits.record_edits(out, recipe, run_id, mode, files)


@task(name="edit-chunk", task_run_name="edit-chunk-{index}", retries=2, retry_delay_seconds=[5, 20])
def edit_chunk(index: int, jobs: list[EditJob], settings: RunSettings) -> list[EditOutcome | FileOutcome]:
    """A task retry (an infrastructure fault) redoes the whole chunk: edits are idempotent."""
    logger = get_run_logger()

    def report(job: EditJob, outcome: EditOutcome | FileOutcome) -> None:
        if isinstance(outcome, FileOutcome):
            logger.warning("%s", outcome.error_message)
        elif outcome.status == "changed":
            changes = outcome.changes
            lines = "\n".join(f"  {c['operation']}: {c['target']}: {c['before']!r} -> {c['after']!r}" for c in changes)
            dry = " (dry run)" if job.dry_run else ""
            logger.info("%s: %d changes%s\n%s", job.path, len(changes), dry, lines)

    pool = shared_pool(EDIT_WORK, settings.workers, settings.memory_mb)
    return pool.run(jobs, timeout_s=settings.timeout_s, retry=settings.retry, on_result=report)


def _run_chunks(jobs: list[EditJob], settings: RunSettings) -> list[dict]:
    """Every job's outcome as a record (the run's summary lists them), with its path."""
    size = chunk_size_for(len(jobs), settings.workers)
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
        for job, outcome in zip(chunk, chunk_results):
            results.append({**outcome.record(), "path": job.path, "source_root": job.source_root})
    return results


# Recording and re-cataloguing.


def recatalogue(source: Path, out: Path, config: str | None, workers: int | None) -> dict:
    """The batch flow over the folder the edited drawings are in (a sub-flow run)."""
    from flows.batch import batch

    state = cast(
        State, batch(sources=[to_text(source)], out=to_text(out), config=config, workers=workers, return_state=True)
    )  # a sync flow called with return_state returns its State (the Awaitable in Prefect's type is for async flows)
    summary = summary_of(state.result(raise_on_failure=False))
    if summary is None:
        return {"error": state.message}
    keys = ("run_id", "files_seen", "processed", "unchanged", "reused", "failed", "failures")
    return {key: summary[key] for key in keys}


@dataclass(frozen=True)
class ApplyRun:
    """One apply run: the recipe, where it reads and writes, and how."""

    cfg: Config
    recipe: Recipe
    settings: TitleSettings
    root: Path  # the library (a folder, or one drawing)
    target_root: Path  # where edited drawings go: the revision folder, or the library itself
    in_place: bool
    backup_root: Path | None
    dry_run: bool
    run: dict[str, Any]  # run_id, flow_run_id, started_at

    @property
    def mode(self) -> str:
        return "in-place" if self.in_place else "revision"


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
    apply = _prepare(recipe, library, out, dry_run, in_place, backup, config, workers)
    journal = None if dry_run else _open_journal(apply, logger)
    try:
        plan = plan_task(apply)
        files = _edit(apply, plan, journal, logger)
        rows, catalogued = 0, None
        if journal is not None:
            rows = record_edits(apply.cfg.out, apply.recipe, apply.run["run_id"], apply.mode, files)
            journal.close()
            # written, or an outdated revision removed: either way the catalog of that folder is stale
            touched = [r for r in files if r.get("output") or r.get("note") == "outdated revision removed"]
            if touched and recatalog:
                folder = apply.root if apply.in_place else apply.target_root
                catalogued = recatalogue(folder, apply.cfg.out, config, workers)
        summary = _summary(apply, files, rows, catalogued)
    finally:
        if journal is not None:
            journal.release()  # an unrecorded journal (the run raised) stays for the next apply
    verb = "would change" if dry_run else "changed"
    message = (
        f"{apply.recipe.name}: {summary['files_seen']} drawings, {summary['selected']} selected: "
        f"{summary['changed']} {verb} ({summary['changes']} changes), {summary['unchanged']} unchanged, "
        f"{summary['failed']} failed"
    )
    logger.info("%s", message)  # the recipe's name is user text, never a format string
    if summary["failed"]:  # an exception as its data, so a deployment's run ends without a traceback
        return Failed(message=message, data=FilesFailed(message, summary))
    return Completed(message=message, data=summary)


def _prepare(
    recipe: str,
    library: str,
    out: str | None,
    dry_run: bool,
    in_place: bool,
    backup: str | None,
    config: str | None,
    workers: int | None,
) -> ApplyRun:
    """Config, recipe and paths, checked: raises before anything is touched."""
    cfg = load_config(config, out=out, overrides={"run": {"workers": workers}} if workers else None)
    settings = title_settings(cfg)
    loaded = load_recipe(recipe, settings.title_tags)
    root, backup_dir = check_paths(library, in_place, backup, dry_run, cfg.out)
    run: dict[str, Any] = {
        "run_id": new_run_id(),
        "flow_run_id": str(flow_run.id) if flow_run.id else None,
        "started_at": now_iso(),
    }
    target_root = (root if root.is_dir() else root.parent) if in_place else revision_dir(cfg.out, loaded)
    backup_root = backup_dir / run["run_id"] if backup_dir is not None else None
    return ApplyRun(cfg, loaded, settings, root, target_root, in_place, backup_root, dry_run, run)


def _open_journal(apply: ApplyRun, logger: Any) -> RunJournal:
    """Record what interrupted runs did, then open this run's journal (audit before action)."""
    recovered, dropped = complete_interrupted_edits(apply.cfg.out)
    if recovered or dropped:
        logger.warning(
            "%d edit rows of interrupted apply runs recorded now; %d announced edits never happened",
            recovered,
            dropped,
        )
    about = {"recipe_name": apply.recipe.name, "recipe_hash": apply.recipe.hash, "mode": apply.mode}
    return RunJournal(apply.cfg.out, {**apply.run, **about})


def _edit(apply: ApplyRun, plan: EditPlan, journal: RunJournal | None, logger: Any) -> list[dict]:
    """Edit the planned drawings in the worker pool; every drawing's record, settled ones too."""
    jobs = plan.jobs
    if journal is not None:  # each edit announced in the journal before its drawing is replaced
        run_id = apply.run["run_id"]
        jobs = [dataclasses.replace(job, intent_file=journal.intent_file(job.path), temp_tag=run_id) for job in jobs]
        journal.plan(
            [to_text(temp_beside(native_path(p), run_id)) for job in jobs for p in (job.dest, job.backup) if p]
        )
    total = len(jobs) + len(plan.settled)
    logger.info("%s (%s): %d drawings, %d to open", apply.recipe.name, apply.recipe.short_hash, total, len(jobs))
    try:
        results = _run_chunks(jobs, run_settings(apply.cfg)) if jobs else []
    finally:
        close_shared_pool(EDIT_WORK)
    return sorted(plan.settled + results, key=lambda r: r["path"])


def _summary(apply: ApplyRun, files: list[dict], rows: int, catalogued: dict | None) -> dict[str, Any]:
    counts = Counter(r["status"] for r in files)
    return {
        **apply.run,
        "finished_at": now_iso(),
        "recipe": apply.recipe.name,
        "recipe_hash": apply.recipe.hash,
        "library": to_text(apply.root),
        "out": to_text(apply.cfg.out),
        "mode": "dry-run" if apply.dry_run else apply.mode,
        "revision_dir": None if apply.in_place else to_text(apply.target_root),
        "backup_dir": to_text(apply.backup_root) if apply.backup_root is not None and not apply.dry_run else None,
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
        state = cast(
            State,
            apply_recipe(  # sync flow with return_state: its State
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
            ),
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
