"""Fidelity: cadpipe's drawings side by side with LibreCAD's, an independent renderer.

    .venv/bin/python bench/fidelity.py FOLDER [--out DIR] [--jobs 2] [--timeout 60]

Runs ``cadpipe run FOLDER`` (the real batch) and, for every DXF it marks ``ok``, LibreCAD 2.2's
``dxf2pdf`` (Debian package ``librecad``, ``QT_QPA_PLATFORM=offscreen``, per-file timeout) on the
same file, both fitted to an A3 landscape page with 10 mm margins. Each modelspace page is
rasterised by MuPDF at a low resolution and its *ink* (the share of pixels that are not white) is
compared. Prints per file both inks, the entity counts (as ``ezdxf.readfile`` reads the file, and
as the catalog records them before and after repair) and a verdict, then a summary line.

Verdicts:
- ``blank``: LibreCAD draws, cadpipe's page is empty: a bug.
- ``less``: cadpipe's ink is below ``LESS_RATIO`` of LibreCAD's: it draws far less.
- ``lost``: the catalog has fewer entities than ``ezdxf.readfile`` reads, and the file's
  warnings do not name what was removed.
- ``ok``; ``no-reference`` when LibreCAD hangs, fails or draws nothing itself (no verdict).

The functions are the fidelity test's too (``tests/e2e/test_fidelity.py``).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pymupdf

REPO = Path(__file__).resolve().parents[1]
PAGE = "420x297"
MARGINS = "10,10,10,10"
INK_PIXELS = 600  # the page's long side when measuring ink
WHITE = 245  # a pixel at or above this in every channel is paper
LESS_RATIO = 0.2  # cadpipe's ink below a fifth of LibreCAD's: "draws far less"
MIN_REFERENCE_INK = 1e-4  # LibreCAD's page must hold at least this much ink to judge by it


@dataclass(frozen=True)
class Reference:
    """LibreCAD's rendering of one file."""

    status: str  # "ok", "hung" (killed at the timeout), "failed" (no PDF)
    seconds: float
    ink: float | None


@dataclass(frozen=True)
class FileFidelity:
    path: str
    cadpipe_ink: float
    librecad: Reference
    entities_ezdxf: int  # ezdxf.readfile, no audit: every graphical entity of every layout and block
    entities_read: int | None  # the catalog's columns
    entities_kept: int | None
    removed_named: bool  # the warnings name what the repair removed
    verdict: str


def librecad_available() -> bool:
    return shutil.which("librecad") is not None


def librecad_pdf(src: Path, work: Path, timeout_s: float = 60.0) -> tuple[str, float, Path]:
    """LibreCAD's A3 PDF of `src` in `work`: (status, seconds, pdf path); a hung LibreCAD is
    killed at `timeout_s` ("hung"), no PDF is "failed"."""
    work.mkdir(parents=True, exist_ok=True)
    pdf = work / (src.stem + ".pdf")  # dxf2pdf names it so; its -o option takes no value
    # A home of its own per run: LibreCAD keeps settings there, and two at once trip over each other.
    runtime = work / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(work), "XDG_RUNTIME_DIR": str(runtime)}
    command = ["librecad", "dxf2pdf", "-a", "-m", "-p", PAGE, "-f", MARGINS, "-t", str(work), str(src)]
    started = time.monotonic()
    try:
        subprocess.run(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        return "hung", time.monotonic() - started, pdf
    seconds = time.monotonic() - started
    if not pdf.is_file() or pdf.stat().st_size == 0:
        return "failed", seconds, pdf
    return "ok", seconds, pdf


def librecad_reference(src: Path, work: Path, timeout_s: float = 60.0) -> Reference:
    """LibreCAD's A3 PDF of `src` and its ink."""
    status, seconds, pdf = librecad_pdf(src, work, timeout_s)
    if status != "ok":
        return Reference(status, seconds, None)
    try:
        return Reference("ok", seconds, page_ink(pdf))
    except Exception:  # a PDF MuPDF cannot open is no reference
        return Reference("failed", seconds, None)


def page_ink(pdf: Path, long_side_px: int = INK_PIXELS) -> float:
    """Share of the first page's pixels that are not paper-white, the page scaled so that its
    long side is `long_side_px` (LibreCAD 2.2 ignores ``-p`` for some drawings and writes pages of
    hundreds of metres: a fixed pixel size makes every page comparable)."""
    with pymupdf.open(pdf) as doc:
        page = doc[0]
        zoom = long_side_px / max(page.rect.width, page.rect.height)
        pix = page.get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), alpha=False, colorspace=pymupdf.csGRAY)
    samples = pix.samples
    inked = sum(1 for value in samples if value < WHITE)
    return inked / max(len(samples), 1)


def ezdxf_entity_count(path: Path) -> int:
    """Graphical entities of every layout and block as ``ezdxf.readfile`` reads them (no audit),
    without the arrow blocks it adds to an R13/R14 file (`blocks_ezdxf_adds`)."""
    import ezdxf

    doc = ezdxf.readfile(path)
    added = blocks_ezdxf_adds(doc, path)
    return sum(1 for block in doc.blocks if block.name not in added for _ in block)  # len() counts dead ones


def blocks_ezdxf_adds(doc, path: Path) -> set[str]:
    """The standard arrow blocks ``ezdxf.readfile`` adds when it upgrades an R13/R14 file to R2000
    (for AutoCAD, should ezdxf write it): not the file's, and never drawn."""
    if doc.loaded_dxfversion not in ("AC1012", "AC1014"):
        return set()
    from ezdxf.render.arrows import ARROWS

    own = {name.casefold() for name in block_names_in_file(path)}  # block names ignore case
    return {block for block in map(ARROWS.block_name, ARROWS.__acad__) if block.casefold() not in own}


def block_names_in_file(path: Path) -> set[str]:
    """The names of the BLOCK entities and BLOCK_RECORD entries the file holds, from its tags."""
    from ezdxf.lldxf.tagger import ascii_tags_loader, binary_tags_loader

    data = path.read_bytes()
    if data.startswith(b"AutoCAD Binary DXF"):
        tags = binary_tags_loader(data)
    else:
        tags = ascii_tags_loader(io.StringIO(data.decode("cp1252", errors="replace")))
    names, named_next = set(), False
    for tag in tags:
        if tag.code == 0:
            named_next = tag.value.strip() in ("BLOCK", "BLOCK_RECORD")
        elif named_next and tag.code == 2:
            names.add(str(tag.value).strip())
            named_next = False
    return names


def verdict(cadpipe_ink: float, reference: Reference, entities_ezdxf: int, kept: int | None, named: bool) -> str:
    if kept is not None and kept < entities_ezdxf and not named:
        return "lost"
    if reference.status != "ok" or reference.ink is None or reference.ink < MIN_REFERENCE_INK:
        return "no-reference"
    if cadpipe_ink == 0:
        return "blank"
    if cadpipe_ink < LESS_RATIO * reference.ink:
        return "less"
    return "ok"


def run_cadpipe(folder: Path, out: Path) -> int:
    """The real batch over `folder` into `out` (its own temporary Prefect server)."""
    command = [str(REPO / ".venv" / "bin" / "cadpipe"), "run", str(folder), "--out", str(out), "--quiet"]
    return subprocess.run(command, cwd=REPO, check=False, stdout=sys.stderr).returncode  # the table owns stdout


def compare(folder: Path, out: Path, jobs: int = 2, timeout_s: float = 60.0) -> list[FileFidelity]:
    """Compare every ``ok`` DXF of a finished cadpipe run over `folder` (its output root `out`)."""
    from deltalake import DeltaTable

    files = DeltaTable(out / "catalog" / "files").to_pandas()  # the catalog's Delta tables
    drawings = files[(files["status"] == "ok") & files["format"].isin(["dxf", "dxf-binary"])]
    rows = list(drawings.itertuples())
    layouts = DeltaTable(out / "catalog" / "layouts").to_pandas()
    model_entities = dict(zip(layouts[layouts["is_model"]]["sha256"], layouts[layouts["is_model"]]["entity_count"]))
    with tempfile.TemporaryDirectory(prefix="fidelity-") as tmp, ThreadPoolExecutor(jobs) as pool:
        references = list(
            pool.map(
                lambda row: librecad_reference(Path(row.source_root) / row.path, Path(tmp) / str(row.Index), timeout_s),
                rows,
            )
        )
    results = []
    for row, reference in zip(rows, references):
        ink = _cadpipe_ink(out, list(row.outputs), empty_model=not model_entities.get(row.sha256, 0))
        src = Path(row.source_root) / row.path
        try:
            ezdxf_count = ezdxf_entity_count(src)
        except Exception:  # only ezdxf.recover loads it: the catalog's own count is the reference
            ezdxf_count = int(getattr(row, "entities_read", 0) or 0)
        read = _int_or_none(getattr(row, "entities_read", None))
        kept = _int_or_none(getattr(row, "entities_kept", None))
        named = any(w.startswith("removed ") for w in row.warnings)
        results.append(
            FileFidelity(
                row.path,
                ink,
                reference,
                ezdxf_count,
                read,
                kept,
                named,
                verdict(ink, reference, ezdxf_count, kept, named),
            )
        )
    return results


def _cadpipe_ink(out: Path, outputs: list[str], empty_model: bool) -> float:
    """Ink of the modelspace page; of the fullest paperspace page when the modelspace is empty
    (LibreCAD draws a paperspace-only drawing's content where cadpipe has a page per layout)."""
    pdfs = [out / o for o in outputs if o.endswith(".pdf")]
    model = [p for p in pdfs if p.name == "model.pdf"]
    pages = pdfs if empty_model else model
    return max((page_ink(p) for p in pages), default=0.0)


def _int_or_none(value) -> int | None:
    try:
        return None if value is None or value != value else int(value)
    except (TypeError, ValueError):
        return None


def report(results: list[FileFidelity], stream=sys.stdout) -> Counter:
    print(
        f"{'file':60} {'cadpipe':>8} {'librecad':>8} {'lc s':>6} {'ezdxf':>6} {'read':>6} {'kept':>6}  verdict",
        file=stream,
    )
    for r in results:
        lc = f"{r.librecad.ink:.4f}" if r.librecad.ink is not None else r.librecad.status
        print(
            f"{r.path[:60]:60} {r.cadpipe_ink:8.4f} {lc:>8} {r.librecad.seconds:6.2f} {r.entities_ezdxf:6d} "
            f"{_show(r.entities_read):>6} {_show(r.entities_kept):>6}  {r.verdict}",
            file=stream,
        )
    verdicts = Counter(r.verdict for r in results)
    hung = sum(1 for r in results if r.librecad.status == "hung")
    print(
        f"{len(results)} ok drawings: "
        + ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items()))
        + f"; LibreCAD hung on {hung}",
        file=stream,
    )
    return verdicts


def _show(value: int | None) -> str:
    return "-" if value is None else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--out", type=Path, help="cadpipe's output root (default: a temporary folder)")
    parser.add_argument("--jobs", type=int, default=2, help="LibreCAD processes at once")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a LibreCAD run counts as hung")
    args = parser.parse_args(argv)
    if not librecad_available():
        print("LibreCAD not found: install the Debian package librecad", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="fidelity-out-") as tmp:
        out = args.out or Path(tmp)
        code = run_cadpipe(args.folder, out)
        if code not in (0, 1):
            print(f"cadpipe run exited {code}", file=sys.stderr)
            return 3
        verdicts = report(compare(args.folder, out, args.jobs, args.timeout))
    return 1 if verdicts["blank"] or verdicts["less"] or verdicts["lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
