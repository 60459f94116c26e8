"""Apply a recipe to one drawing: load, check the selection, run the operations, write the result.

Whether a drawing changed is decided by the operations' own change lists, never by comparing
bytes: ezdxf rewrites timestamps and the handle seed on every save, so a drawing no operation
changed is not written at all, and its file stays byte-identical.

Writing is atomic: the drawing is saved to a temporary file beside its destination, loaded again
and audited by ezdxf (an edit that leaves a drawing ezdxf rejects is not written), then renamed
into place. In place, the original is first copied to the backup path, and it is only replaced
if it is still the file that was edited.

:func:`edit_job` is the same for a worker process of :mod:`flows.apply`: a dict in, a dict out,
shaped like the batch's per-file results (:mod:`engine.work`) so that the batch's executor can
retry and time it out.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

import ezdxf

from documents import atomic
from documents.atomic import atomic_path
from documents.contracts import FileOutcome
from documents.dxf_document import LoadedDxf, open_dxf
from documents.errors import InputError, TransientError
from documents.file_kind import sniff_format
from editors.changes import Change, EditContext
from editors.operations import apply_operations
from editors.recipe import Recipe, load_recipe, version_label
from editors.selection import FileFacts, TitleSettings, document_facts, facts_selected, stored_version


@dataclass
class FileEdit:
    status: str  # changed | unchanged | skipped (selection conditions not met)
    sha256_before: str
    changes: list[Change] = field(default_factory=list)
    sha256_after: str | None = None  # of the written file
    output: str | None = None  # the written file
    backup: str | None = None
    note: str | None = None


def edit_file(
    src: Path,
    recipe: Recipe,
    settings: TitleSettings,
    *,
    dest: Path,
    dry_run: bool = False,
    backup: Path | None = None,
    facts: FileFacts | None = None,
    stage: Callable[[str], None] = lambda name: None,
    before_replace: Callable[[FileEdit], None] | None = None,
    temp_tag: str | None = None,
) -> FileEdit:
    """Edit `src` into `dest` (the same path: in place, which needs `backup`).

    `facts` are the catalog's record of `src`, when it has one; otherwise selection conditions
    are checked on the document. A dry run returns the changes and writes nothing.
    `before_replace` gets the edit as it will be (with the new file's hash) once the new file is
    written and checked, just before it replaces `dest`: the audit trail is written first.
    `temp_tag` names the temporary files (`temp_beside`): a run that knows its tag can remove
    those of a killed run.
    """
    src, dest = Path(src), Path(dest)
    in_place = src.resolve() == dest.resolve()
    if in_place and backup is None and not dry_run:
        raise ValueError(f"{src.name}: editing in place needs a backup path")
    stage("load")
    sha_before = _sha256(src)
    loaded = open_dxf(src, decode_text=False, for_saving=True)  # written back: text as the file stores it
    stage("select")
    if recipe.select.needs_facts:
        facts = facts or document_facts(loaded, settings)
        if not facts_selected(recipe.select, facts):
            return FileEdit("skipped", sha_before, note="selection conditions not met")
    stage("edit")
    context = EditContext(settings.rules(), stored_version(loaded))
    changes = apply_operations(loaded.doc, recipe.operations, context)
    if not changes:
        note = None
        if not in_place and dest.exists():  # made from an older version of this drawing
            note = "outdated revision " + ("would be removed" if dry_run else "removed")
            if not dry_run:
                _remove(dest)
        return FileEdit("unchanged", sha_before, note=note)
    changes += _implied_changes(loaded, context, changes)
    if dry_run:
        return FileEdit("changed", sha_before, changes)
    stage("write")
    if in_place:
        assert backup is not None
        _copy_atomically(src, Path(backup), temp_tag)
    edit = FileEdit("changed", sha_before, changes, None, str(dest), str(backup) if in_place else None)

    def announce(sha_after: str) -> None:
        edit.sha256_after = sha_after
        if before_replace is not None:
            before_replace(edit)

    _save_atomically(
        loaded,
        dest,
        binary=sniff_format(src) == "dxf-binary",
        mode_from=src,
        unchanged=(src, sha_before) if in_place else None,
        before_replace=announce,
        temp_tag=temp_tag,
    )
    edit.sha256_after = _sha256(dest)
    return edit


def _implied_changes(loaded: LoadedDxf, context: EditContext, changes: list[Change]) -> list[Change]:
    """What writing the drawing changes besides the operations: said, not hidden."""
    implied = []
    written = loaded.doc.dxfversion
    if written != context.stored_version and not any(c.operation == "convert_version" for c in changes):
        target = "DXF version ($ACADVER), as ezdxf writes it"
        implied.append(Change("save", target, version_label(context.stored_version), version_label(written)))
    if loaded.recovered:
        implied.append(Change("audit", "drawing", "loadable only by ezdxf's recovery", "written as a regular DXF"))
    implied += [Change("audit", "drawing", fix, "repaired by ezdxf's audit") for fix in loaded.audit_fixes]
    return implied


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    except FileNotFoundError as exc:
        raise InputError(f"{path.name}: no such file ({path})") from exc
    except OSError as exc:
        raise TransientError(f"{path.name}: cannot read: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def temp_beside(path: Path, tag: str | None = None) -> Path:
    """The temporary file written before `path` is replaced: hidden, named by a hash of the
    name (a long name would pass the 255-byte limit), and by `tag` (default: the process id)."""
    digest = hashlib.sha256(os.fsencode(Path(path).name)).hexdigest()[:12]
    return Path(path).with_name(f".cadpipe-{digest}.tmp-{tag or os.getpid()}")


def _save_atomically(
    loaded: LoadedDxf,
    dest: Path,
    *,
    binary: bool,
    mode_from: Path,
    unchanged: tuple[Path, str] | None,
    before_replace: Callable[[str], None] = lambda sha_after: None,
    temp_tag: str | None = None,
) -> None:
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(dest, temp_beside(dest, temp_tag)) as tmp:  # named by the run: a killed run's is found
            loaded.doc.saveas(tmp, fmt="bin" if binary else "asc")
            _check_written(tmp, allowed_errors=len(loaded.audit_errors))
            shutil.copymode(mode_from, tmp)
            if unchanged is not None and _sha256(unchanged[0]) != unchanged[1]:
                raise TransientError(f"{unchanged[0].name}: changed on disk while being edited; left as it is")
            before_replace(_sha256(tmp))
    except OSError as exc:
        raise TransientError(f"{dest.name}: cannot write: {exc.strerror or exc}") from exc


def _check_written(path: Path, allowed_errors: int) -> None:
    """The written drawing loads in ezdxf without recovery, and its audit finds no more errors
    than the original had (errors the auditor can fix are fixed again on every load)."""
    try:
        doc = ezdxf.readfile(path)
    except OSError:
        raise
    except Exception as exc:  # ezdxf reports malformed content with many exception types
        reason = f"{type(exc).__name__}: {exc}"
        raise InputError(f"the edited drawing does not load in ezdxf again ({reason}); not written") from exc
    errors = doc.audit().errors
    if len(errors) > allowed_errors:
        found = "; ".join(entry.message for entry in errors[:3])
        raise InputError(f"the edited drawing fails ezdxf's audit ({found}); not written")


def _copy_atomically(src: Path, dest: Path, temp_tag: str | None = None) -> None:
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(dest, temp_beside(dest, temp_tag)) as tmp:
            shutil.copy2(src, tmp)
    except OSError as exc:
        raise TransientError(f"{src.name}: cannot back up to {dest}: {exc.strerror or exc}") from exc


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise TransientError(f"{path.name}: cannot remove outdated revision: {exc.strerror or exc}") from exc


# Worker side of flows/apply.py.


@functools.lru_cache(maxsize=4)
def _recipe(path: str, expected_hash: str, title_fields: tuple[str, ...]) -> Recipe:
    """Loaded once per worker process; a recipe edited while the run goes on is refused."""
    recipe = load_recipe(path, title_fields)
    if recipe.hash != expected_hash:
        raise InputError(f"recipe {Path(path).name} changed during the run")
    return recipe


@dataclass(frozen=True)
class EditJob:
    """One drawing of an apply run, for a worker (paths in the catalog's text form)."""

    source_root: str
    path: str
    format: str
    sha256: str
    work_id: str
    recipe_path: str
    recipe_hash: str
    title_fields: tuple[str, ...]
    title_patterns: tuple[str, ...]
    title_tags: dict[str, list[str]]
    part_tags: dict[str, list[str]]
    facts: dict[str, Any] | None  # FileFacts.to_dict() from the catalog, when it knows the drawing
    dest: str
    backup: str | None
    dry_run: bool
    attempt: int = 1
    intent_file: str | None = None  # the run journal's record of this edit (none for a dry run)
    temp_tag: str | None = None  # names temporary files after the run

    def retried(self) -> EditJob:
        return dataclasses.replace(self, attempt=self.attempt + 1)


@dataclass
class EditOutcome:
    """A worker's answer for a drawing it could edit: changed, unchanged or skipped."""

    status: str
    work_id: str
    path: str
    attempt: int
    sha256_before: str | None
    sha256_after: str | None
    output: str | None
    backup: str | None
    note: str | None
    changes: list[dict[str, Any]]
    duration_ms: int
    permanent: bool = False  # never failed: a failure is documents.errors.failure's FileOutcome

    @property
    def ok(self) -> bool:
        return True

    def record(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def edit_job(job: EditJob) -> EditOutcome | FileOutcome:
    """One file of an apply run. Never raises for a file's own fault: returns a result record
    (``status``: changed, unchanged, skipped, or failed as :func:`documents.errors.failure` makes it)."""
    from documents.errors import Stage, classify, failure
    from documents.names import clean, native_path, to_native, to_text

    started = time.monotonic()
    stage = Stage()
    try:
        recipe = _recipe(job.recipe_path, job.recipe_hash, tuple(job.title_fields))
        settings = TitleSettings(tuple(job.title_patterns), job.title_tags, job.part_tags)
        edit = edit_file(  # paths in the job are in the catalog's text form (documents/names.py)
            native_path(job.source_root) / to_native(job.path),
            recipe,
            settings,
            dest=native_path(job.dest),
            dry_run=job.dry_run,
            backup=native_path(job.backup) if job.backup else None,
            facts=FileFacts.from_dict(job.facts) if job.facts else None,
            stage=stage,
            before_replace=functools.partial(_announce, job) if job.intent_file else None,
            temp_tag=job.temp_tag,
        )
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        error_class, permanent = classify(exc)
        return failure(
            job,
            stage.name,
            error_class,
            str(exc) or error_class,
            permanent,
            duration_ms=round((time.monotonic() - started) * 1000),
            traceback="".join(traceback.format_exception(exc, limit=-6)),
        )
    return EditOutcome(
        status=edit.status,
        work_id=job.work_id,
        path=job.path,
        attempt=job.attempt,
        sha256_before=edit.sha256_before,
        sha256_after=edit.sha256_after,
        output=to_text(edit.output) if edit.output else None,
        backup=to_text(edit.backup) if edit.backup else None,
        note=edit.note,
        changes=clean([asdict(change) for change in edit.changes]),  # drawing text may not be encodable
        duration_ms=round((time.monotonic() - started) * 1000),
    )


def _announce(job: EditJob, edit: FileEdit) -> None:
    """Write the record of this edit to the run's journal (engine/edit_journal.py) before the
    drawing is replaced: a run killed after the replacement still has its edit recorded."""
    from datetime import datetime

    from documents.names import clean, native_path, to_text

    assert edit.output is not None  # announced only when a drawing is about to be written
    record = {
        "source_root": job.source_root,
        "path": job.path,
        "output": to_text(edit.output),
        "backup": to_text(edit.backup) if edit.backup else None,
        "sha256_before": edit.sha256_before,
        "sha256_after": edit.sha256_after,
        "changes": clean([asdict(change) for change in edit.changes]),
        "edited_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
    assert job.intent_file is not None  # only announced when the run keeps a journal
    target = native_path(job.intent_file)
    try:
        atomic.write_json(target, record)
    except OSError as exc:  # no record, no edit: the drawing is left as it is
        raise TransientError(
            f"{job.path}: cannot write the edit's record to the journal: {exc.strerror or exc}"
        ) from exc


def init_edit_worker(memory_mb: int) -> None:
    """Worker initializer (this module, and ezdxf with it, is imported before any job runs, so a
    file's timeout measures its own work): quiet ezdxf's repair log (the result lists repairs),
    and cap the address space as the batch does; die with the parent (no orphaned workers)."""
    import logging

    from documents.worker_process import cap_memory, die_with_parent

    die_with_parent()
    logging.getLogger("ezdxf").setLevel(logging.ERROR)
    cap_memory(memory_mb)
