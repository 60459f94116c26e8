"""Where a drawing's worker time goes: each step of the per-file path, timed over many files.

    .venv/bin/python bench/per_file.py [FOLDER] [--profile median|slowest|none] [--top 25]

FOLDER defaults to the corpus's DXF files (``../shared/corpus`` or ``CADPIPE_CORPUS``). Every file
goes through the worker's own function (`engine.work.process_job`, in this process, after one
warm-up file), with the steps below timed around the functions the worker calls: load, metadata,
BOM, title block, the SVG drawing, PDF, PNG, thumbnail, writing. Prints the per-file total
(median, 90th percentile, slowest) and, per step, its median and its share of all the time, for
all files and for the slowest tenth. With ``--profile`` the median file (or the slowest) is run
again under cProfile and its top functions are printed.

Times are CPU seconds of this process (time.process_time): a loaded machine stretches wall time,
not these. Timing wrappers cost about a microsecond per call; the steps are milliseconds.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import converters.dxf_render as dxf_render
import converters.placement as placement
import documents.dxf_document as dxf_document
import extractors.dxf_bom as dxf_bom
import extractors.dxf_metadata as dxf_metadata
import extractors.title_block as title_block
from engine.config import load_config
from engine.discover import discover
from engine.plan import WorkItem, work_id
from engine.version import pipeline_version
from engine.work import init_worker, process_job

# (module, function name, step): the functions the worker's path calls, in its order.
STEPS = [
    (dxf_document, "open_dxf", "load"),
    (dxf_metadata, "extract_metadata", "metadata"),
    (dxf_bom, "bom_extract", "bom"),
    (title_block, "title_block", "title block"),
    (dxf_render, "_render_svg", "svg drawing"),
    (dxf_render, "_open_svg", "svg parse (MuPDF)"),
    (dxf_render, "_pdf_from", "pdf"),
    (dxf_render, "_png_from", "png"),
    (placement, "thumbnail_png", "thumbnail"),
    (dxf_render, "_write_atomic", "write outputs"),
]
# Callers hold their own reference when they imported the name itself: patch those too.
CALLERS = [dxf_render]

_spent: dict[str, float] = defaultdict(float)


def _timed(fn, step):
    import contextlib

    if step == "svg parse (MuPDF)":  # a context manager: time its entry (the parse) only

        @contextlib.contextmanager
        def entered(*args, **kwargs):
            t = time.process_time()
            with fn(*args, **kwargs) as value:
                _spent[step] += time.process_time() - t
                yield value

        return entered

    def wrapper(*args, **kwargs):
        t = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            _spent[step] += time.process_time() - t

    return wrapper


def instrument() -> None:
    for module, name, step in STEPS:
        original = getattr(module, name)
        wrapped = _timed(original, step)
        setattr(module, name, wrapped)
        for caller in CALLERS:
            if getattr(caller, name, None) is original:
                setattr(caller, name, wrapped)


def corpus_files() -> list[Path]:
    corpus = Path(os.environ.get("CADPIPE_CORPUS", REPO.parent / "shared" / "corpus"))
    with open(corpus / "manifest.csv", newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["format"] in ("dxf", "dxf-binary")]
    return [corpus / r["path"] for r in rows]


def jobs_for(paths: list[Path], out: Path):
    cfg = load_config(out=str(out))
    version = pipeline_version()
    jobs = []
    for folder in sorted({p.parent for p in paths}):
        for found in discover([folder], exclude=[], formats=["dxf"]):
            if Path(found.source_root, found.path) not in paths or found.sha256 is None or found.format is None:
                continue
            key = cfg.options_key(found.format)
            item = WorkItem(found, work_id(found.sha256, key, version), cfg.options_for(found.format), key, version)
            jobs.append(item.to_job(str(out)))
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", type=Path)
    parser.add_argument("--profile", choices=("median", "slowest", "none"), default="none")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--csv", type=Path, help="write each file's total and steps to this CSV file")
    args = parser.parse_args()
    paths = sorted(args.folder.rglob("*.dxf")) if args.folder else corpus_files()
    paths = [p.resolve() for p in paths]
    init_worker(0)
    instrument()
    with tempfile.TemporaryDirectory(prefix="cadpipe-per-file-") as tmp:
        jobs = jobs_for(paths, Path(tmp) / "out")
        process_job(jobs[0])  # warm-up: imports, fonts, caches; its own outputs are in a fresh folder below
        rows = []
        for i, job in enumerate(jobs):
            job = job.__class__(**{**job.__dict__, "out": str(Path(tmp) / f"out{i}")})
            _spent.clear()
            t = time.process_time()
            outcome = process_job(job)
            total = time.process_time() - t
            rows.append((total, job.path, outcome.status, dict(_spent)))
        report(rows)
        if args.csv:
            write_csv(args.csv, rows)
        if args.profile != "none":
            rows.sort(key=lambda r: r[0])
            total, path, _, _ = rows[len(rows) // 2] if args.profile == "median" else rows[-1]
            job = next(j for j in jobs if j.path == path)
            job = job.__class__(**{**job.__dict__, "out": str(Path(tmp) / "profiled")})
            print(f"\ncProfile of the {args.profile} file {path} ({total:.3f} s unprofiled):")
            profiler = cProfile.Profile()
            profiler.runcall(process_job, job)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)


def report(rows) -> None:
    ok = [r for r in rows if r[2] == "ok"]
    totals = sorted(r[0] for r in ok)
    print(
        f"{len(rows)} files, {len(ok)} ok, worker time per file: median {statistics.median(totals):.3f} s, "
        f"p90 {totals[int(0.9 * (len(totals) - 1))]:.3f} s, slowest {totals[-1]:.2f} s, sum {sum(totals):.1f} s"
    )
    ranked = sorted(ok, key=lambda r: r[0])
    slowest = ranked[-max(1, len(ok) // 10) :]
    middle = ranked[len(ok) * 2 // 5 : max(len(ok) * 3 // 5, len(ok) * 2 // 5 + 1)]  # the median's neighbours
    for title, subset in (("all files", ok), ("middle fifth", middle), ("slowest tenth", slowest)):
        grand = sum(r[0] for r in subset)
        print(f"\n{title} ({len(subset)} files, {grand:.1f} s):  step  median s  share of time")
        for step in [s for _, _, s in STEPS] + ["other"]:
            values = [r[3].get(step, 0.0) if step != "other" else r[0] - sum(r[3].values()) for r in subset]
            print(f"  {step:<20} {statistics.median(values):8.4f}  {100 * sum(values) / grand:5.1f} %")


def write_csv(path: Path, rows) -> None:
    steps = [s for _, _, s in STEPS]
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["path", "status", "total_s", *steps])
        for total, name, status, spent in sorted(rows, key=lambda r: r[0]):
            out.writerow([name, status, f"{total:.4f}", *(f"{spent.get(s, 0.0):.4f}" for s in steps)])


if __name__ == "__main__":
    main()
