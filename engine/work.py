"""The work on one file, run inside a worker process: parse once, extract, render, record.

No Prefect here: this runs in plain worker processes. Everything a file yields is written into a
temporary folder beside its final place and renamed into `OUT/outputs/<work_id>/` as the last step,
with `result.json` (metadata and table rows) inside; a folder there is therefore always complete.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from documents import atomic
from documents.contracts import FileOutcome, FileResult, Job, Output
from documents.errors import InputError, Stage, TransientError, classify, failure
from documents.file_access import ReadScope, open_regular, reading_within
from documents.file_kind import HEAD_SIZE, sniff_bytes
from documents.names import clean, native_path, printable, to_native
from engine.captured_output import Captured, captured_output
from engine.executor import WorkFunction

RESULT_FILE = "result.json"
OUTPUTS_DIR = "outputs"
LOCKS_DIR = ".locks"
TMP_PREFIX = ".tmp-"
_CHUNK = 1 << 20
_memory_mb = 0  # this worker's address-space cap (init_worker), named in a MemoryLimit failure


def work_dir(out: Path | str, wid: str) -> Path:
    return Path(out) / OUTPUTS_DIR / wid


def is_complete(out: Path | str, wid: str) -> bool:
    # os.path, not pathlib: a rerun asks this of every input (100,000 Path objects cost seconds).
    return os.path.isfile(os.path.join(out, OUTPUTS_DIR, wid, RESULT_FILE))


def read_result(out: Path | str, wid: str) -> dict:
    """A work's `result.json`: a FileResult's fields and the identity it was made under."""
    return json.loads((work_dir(out, wid) / RESULT_FILE).read_text(encoding="utf-8"))


def _dxf(src: Path, job: Job, dest: Path, stage: Stage) -> FileResult:
    from converters.dxf_render import PageSpec, RenderOptions, render_dxf
    from documents.dxf_document import open_dxf
    from documents.dxf_sanity import remove_non_finite
    from extractors.dxf_bom import DEFAULT_TAG_MAP, bom_extract
    from extractors.dxf_metadata import extract_metadata
    from extractors.title_block import DEFAULT_TITLE_BLOCK_PATTERNS, DEFAULT_TITLE_TAG_MAP, title_block

    opts = job.options
    stage("load")
    dwg = opts.get("dwg", {})  # DWG only: the reader of the work identity (None: none available)
    readers = [dwg["reader"]] if dwg.get("reader") else dwg.get("readers", [])
    loaded = open_dxf(src, dwg_readers=readers, dwg_timeout_s=dwg.get("timeout_s", 120.0))
    loaded.warnings += remove_non_finite(loaded.doc)
    stage("metadata")
    meta = extract_metadata(loaded, src)
    if loaded.dwg:  # which reader, its version and warnings, how many entities it could not convert
        meta.summary.update(loaded.dwg.summary())
    tables = {
        "layouts": meta.layouts,
        "layers": meta.layers,
        "entities": meta.entities,
        "blocks": meta.blocks,
        "texts": meta.texts,
        "refs": meta.refs,
    }
    stage("bom")
    tag_map = _merged_tags(DEFAULT_TAG_MAP, opts["bom"]["tags"])
    title_tags = _merged_tags(DEFAULT_TITLE_TAG_MAP, opts["title_block"]["tags"])
    patterns = opts["title_block"]["block_patterns"] or DEFAULT_TITLE_BLOCK_PATTERNS
    bom = bom_extract(loaded.doc, tag_map, patterns, title_tags, opts["bom"]["tag_format"])
    tables["bom"], tables["bom_symbols"] = bom.rows, bom.symbols
    summary = {**meta.summary, **title_block(loaded.doc, patterns, title_tags, tag_map)}
    summary["bom_row_count"] = len(bom.rows)
    summary["bom_symbol_count"] = bom.symbol_count
    stage("render")
    page = PageSpec.named(opts["page_size"], opts["orientation"], opts["margin_mm"])
    render = render_dxf(
        loaded.doc,
        dest,
        RenderOptions(
            page=page,
            formats=tuple(opts["outputs"]),
            png_dpi=opts["png_dpi"],
            png_max_pixels=opts["png_max_pixels"],
            png_compression=opts["png_compression"].strip().lower(),  # the config takes any case
        ),
    )
    outputs = [
        Output(lay.layout, fmt, path.name, lay.empty)
        for lay in render.layouts
        for fmt, path in sorted(lay.files.items())
    ]
    # Where each layout's coordinates are on its page: revision overlays align two renders by it.
    pages = [
        {"layout": lay.layout, "stem": lay.stem, "placement": lay.placement.as_dict() if lay.placement else None}
        for lay in render.layouts
    ]
    return FileResult(summary, tables, outputs, meta.warnings + render.warnings, pages)


def _model(src: Path, job: Job, dest: Path, stage: Stage) -> FileResult:
    """STEP, IGES and STL: meshes, the four-view drawing, 3D metadata and the assembly BOM."""
    from converters.step_drawing import render_views
    from converters.step_mesh import write_glb, write_stl
    from documents.step_document import open_model
    from extractors.step_bom import step_bom_rows
    from extractors.step_metadata import density_for, extract_step_metadata

    opts = job.options
    wanted = opts["outputs"]
    stage("load")
    loaded = open_model(src)
    stage("metadata")
    summary = extract_step_metadata(loaded, opts["densities"], opts["default_material"])
    warnings = [w for w in (summary.pop("warnings", None) or "").split("; ") if w]
    stage("bom")
    bom = step_bom_rows(loaded, density_for(opts["default_material"], opts["densities"]))
    summary["bom_row_count"] = len(bom)
    mesh = (opts["stl_linear_tolerance"], opts["stl_angular_tolerance"], opts["stl_max_bytes"])
    outputs: list[Output] = []
    if not summary.get("n_faces") and not loaded.mesh_only:  # wireframe or points only
        warnings.append("the model has no faces: no STL, GLB or drawing")
        wanted = []
    if "stl" in wanted:
        stage("stl")
        info = write_stl(loaded, dest / "model.stl", *mesh)
        summary.update(
            stl_triangles=info["triangles"],
            stl_linear_tolerance=info["linear_tolerance"],
            stl_angular_tolerance=info["angular_tolerance"],
            stl_adapted=info["adapted"],
        )
        if info["adapted"]:
            warnings.append(
                f"STL tolerance coarsened to {info['linear_tolerance']:g} mm to stay under {opts['stl_max_bytes']} bytes"
            )
        outputs.append(Output(None, "stl", "model.stl"))
    if "glb" in wanted:
        stage("glb")
        write_glb(loaded, dest / "model.glb", *mesh)
        outputs.append(Output(None, "glb", "model.glb"))
    views = [fmt for fmt in ("svg", "png") if fmt in wanted]
    if views:
        stage("drawing")
        drawing = render_views(loaded, dest, hidden_lines=opts["hidden_lines"], formats=views, stem="views")
        summary["drawing_scale"] = drawing["scale"]
        outputs += [Output("views", fmt, path.name) for fmt, path in sorted(drawing["files"].items())]
    return FileResult(summary, {"bom": bom}, outputs, warnings)


def _merged_tags(defaults: dict[str, list[str]], extra: dict[str, list[str]]) -> dict[str, list[str]]:
    merged = {column: list(spellings) for column, spellings in defaults.items()}
    for column, spellings in extra.items():
        merged.setdefault(column, []).extend(spellings)
    return merged


def _unknown(src: Path, job: Job, dest: Path, stage: Stage) -> FileResult:
    stage("detect")
    if src.is_file() and src.stat().st_size == 0:
        raise InputError("file is empty (0 bytes)")
    raise InputError(f"content is not a recognised CAD format (extension {src.suffix or 'none'})")


HANDLERS: dict[str, Callable[[Path, Job, Path, Stage], FileResult]] = {
    "dxf": _dxf,
    "dxf-binary": _dxf,
    "dwg": _dxf,  # the loader converts it to DXF with the configured DWG reader (documents/dwg_readers.py)
    "step": _model,
    "iges": _model,
    "stl": _model,
    "unknown": _unknown,
}


def mode_no_wider(input_mode: int, folder: bool = False) -> int:
    """Permissions for what is made from an input (outputs, quarantine copies): readable by
    whom the input is readable, never more; writable by us alone."""
    readers = input_mode & 0o044
    return 0o700 | readers | readers >> 2 if folder else 0o600 | readers


@dataclass(frozen=True)
class Snapshot:
    """The input as the worker read it: what its work is filed under."""

    sha256: str
    format: str | None  # sniffed from the bytes read (None: not a CAD format)
    size: int
    mtime_ns: int
    mode: int
    identity: tuple  # (dev, inode, size, mtime, ctime): any write in between changes it


def _identity(st: os.stat_result) -> tuple:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def snapshot(src: Path, follow_symlinks: bool) -> Snapshot:
    """Hash `src` in one read. Checked again after the work (`unchanged_since`): the kernel moves
    a file's ctime on every write, so an unchanged identity means the bytes parsed are these."""
    fd = open_regular(src, follow_symlinks=follow_symlinks)
    with open(fd, "rb") as fh:
        before = os.fstat(fh.fileno())
        head = fh.read(HEAD_SIZE)
        digest = hashlib.sha256(head)
        while block := fh.read(_CHUNK):
            digest.update(block)
        st = os.fstat(fh.fileno())
    if _identity(st) != _identity(before):
        raise TransientError("was being written while it was read")
    return Snapshot(
        digest.hexdigest(), sniff_bytes(head, st.st_size), st.st_size, st.st_mtime_ns, st.st_mode, _identity(st)
    )


def unchanged_since(src: Path, snap: Snapshot, follow_symlinks: bool) -> bool:
    try:
        st = os.stat(src) if follow_symlinks else os.lstat(src)
    except OSError:
        return False
    return _identity(st) == snap.identity


def _family(fmt: str | None) -> str | None:
    return "dxf" if fmt in ("dxf", "dxf-binary", "dwg", "unknown") else ("model" if fmt else None)


def process_job(job: Job) -> FileOutcome:
    """Do one file's work. Never raises for a file's own fault: returns its outcome.

    The worker hashes the file itself and files the work under the hash of the bytes it parsed:
    a file rewritten since discovery is processed as it is now, under its new identity (the
    outcome says so), never under the old content's work id."""
    started = time.monotonic()
    src = native_path(job.source_root) / to_native(job.path)
    out = native_path(job.out)
    follow = job.follow_symlinks
    stage = Stage()
    try:
        snap = snapshot(src, follow)
    except FileNotFoundError:
        return failure(job, "open", "FileNotFoundError", "vanished before its turn; tried again when it is back", False)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        error_class, permanent = classify(exc)
        return failure(job, "open", error_class, str(exc) or error_class, permanent)
    job, changed_format = _as_read(job, snap)
    if changed_format:
        return failure(job, "open", "TransientError", changed_format, False, **_identity_fields(job, snap))
    final = work_dir(out, job.work_id)
    if (final / RESULT_FILE).is_file():  # done meanwhile by another run or attempt
        return _done(job, final, started, reused=True, snap=snap)
    final.parent.mkdir(parents=True, exist_ok=True)
    lock = _claim(out, job.work_id)  # another run on the same content: wait for it, then reuse its result
    if (final / RESULT_FILE).is_file():
        os.close(lock)
        return _done(job, final, started, reused=True, snap=snap)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{job.work_id}-", dir=final.parent))
    chatter = Captured()  # what libraries print meanwhile: this file's warnings, not the terminal's
    try:
        handler = HANDLERS.get(job.format)
        if handler is None:
            raise InputError(f"no converter for format {job.format}")
        # The drawing's references (xrefs, images) are looked up inside its source root only.
        with reading_within(ReadScope.of([native_path(job.source_root)], follow)), captured_output() as chatter:
            result = handler(src, job, tmp, stage)
        result.warnings = [*result.warnings, *chatter.warnings()]
        stage("write")
        if not unchanged_since(src, snap, follow):
            raise TransientError("changed while it was being processed; tried again")
        record = {
            **dataclasses.asdict(result),
            "work_id": job.work_id,
            "sha256": job.sha256,
            "format": job.format,
            "source_name": Path(job.path).name,
            "options": job.options,
        }
        _write_json(tmp / RESULT_FILE, record)
        _restrict(tmp, snap.mode)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / RESULT_FILE).is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # a concurrent run finished the same work first
        return _done(job, final, started, snap=snap)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, KeyboardInterrupt):
            raise
        error_class, permanent = classify(exc)
        message = str(exc) or error_class
        extra = {"limit": _memory_mb} if error_class == "MemoryLimit" else {}
        return failure(
            job,
            stage.name,
            error_class,
            message,
            permanent,
            duration_ms=round((time.monotonic() - started) * 1000),
            traceback=printable("".join(traceback.format_exception(exc, limit=-6)), keep_newlines=True),
            warnings=chatter.warnings(),
            **extra,
            **_identity_fields(job, snap),
        )
    finally:
        os.close(lock)  # releases the lock; a killed worker's lock is released by the kernel


def _as_read(job: Job, snap: Snapshot) -> tuple[Job, str | None]:
    """The job as the bytes read make it: unchanged, or under the new content's identity; and
    why it cannot be processed now (None: it can)."""
    if snap.sha256 == job.sha256:
        return job, None
    from engine.plan import work_id  # the same identity the plan computes

    fmt = snap.format or ("unknown" if _family(job.format) == "dxf" else None)
    if fmt is None or _family(fmt) != _family(job.format):
        changed = job.as_read(snap.sha256, job.format, job.work_id)
        why = f"content changed since discovery and is no longer {job.format}; the next run takes it as it is"
        return changed, why
    return job.as_read(snap.sha256, fmt, work_id(snap.sha256, job.options_key, job.version)), None


def _identity_fields(job: Job, snap: Snapshot) -> dict[str, Any]:
    """What an outcome tells the catalog about the input it came from (as read)."""
    return {
        "sha256": job.sha256,
        "work_id": job.work_id,
        "format": job.format,
        "size": snap.size,
        "mtime_ns": snap.mtime_ns,
    }


def _restrict(folder: Path, input_mode: int) -> None:
    """Outputs are readable by whom the input is readable, never more (mkdtemp made it private)."""
    os.chmod(folder, mode_no_wider(input_mode, folder=True))
    for path in folder.rglob("*"):
        os.chmod(path, mode_no_wider(input_mode, folder=path.is_dir()))


def _claim(out: Path, wid: str) -> int:
    """Hold an exclusive lock on one piece of work across processes and runs sharing the output
    root (a nightly batch and a drop-folder run), so the same content is never worked on twice at
    once. Blocks while another holder works; returns the descriptor whose closing releases it."""
    lock = _lock_path(out, wid)
    lock.parent.mkdir(exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _lock_path(out: Path | str, wid: str) -> Path:
    return Path(out) / OUTPUTS_DIR / LOCKS_DIR / f"{wid}.lock"


def sweep_abandoned(out: Path | str) -> list[Path]:
    """Remove the temporary folders of work whose worker died mid-file (killed, timed out, power
    cut). The worker owning one holds its work lock until the folder is renamed or removed, so a
    folder whose lock is free is abandoned; one whose lock is held is left to its owner."""
    removed = []
    outputs = Path(out) / OUTPUTS_DIR
    for tmp in sorted(outputs.glob(f"{TMP_PREFIX}*")):
        wid = tmp.name[len(TMP_PREFIX) :].rsplit("-", 1)[0]  # mkdtemp's suffix has no "-"
        try:
            fd = os.open(_lock_path(out, wid), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # someone is working on it right now
            continue
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
        finally:
            os.close(fd)
    return removed


def _done(job: Job, final: Path, started: float, reused: bool = False, snap: Snapshot | None = None) -> FileOutcome:
    record = json.loads((final / RESULT_FILE).read_text(encoding="utf-8"))
    identity = _identity_fields(job, snap) if snap is not None else {"work_id": job.work_id}
    return FileOutcome(
        status="ok",
        outputs=[f"{OUTPUTS_DIR}/{job.work_id}/{o['file']}" for o in record.get("outputs", [])],
        warnings=record.get("warnings", []),
        duration_ms=round((time.monotonic() - started) * 1000),
        attempt=job.attempt,
        reused=reused,
        **identity,
    )


def _write_json(path: Path, value: Any) -> None:
    # clean: drawing text ezdxf could not decode reaches us as lone surrogates, which UTF-8 refuses.
    atomic.write_json(path, clean(value))


def init_worker(memory_mb: int) -> None:
    """Worker initializer: import the drawing libraries once, so a file's timeout measures its own
    work, then cap the address space so a blow-up fails one file, not the machine.

    OpenCASCADE (2 s per worker) is left to a worker's first model: most batches are drawings."""
    import logging

    from documents.worker_process import cap_memory, die_with_parent

    die_with_parent()

    # ezdxf reports what its loader repaired through logging; the loader's audit already records
    # it per file, so worker stderr would only repeat it, unattributed, for every file.
    logging.getLogger("ezdxf").setLevel(logging.ERROR)
    import converters.dxf_render  # noqa: F401
    import documents.dxf_document  # noqa: F401
    import extractors.dxf_bom
    import extractors.dxf_metadata  # noqa: F401

    global _memory_mb
    _memory_mb = memory_mb
    cap_memory(memory_mb)


# What the batch's worker pool runs (engine/executor.py).
BATCH_WORK: WorkFunction[Job, FileOutcome] = WorkFunction(process_job, init_worker)
