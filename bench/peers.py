"""cadpipe beside a C++ peer: LibreCAD 2.2's ``dxf2pdf`` and ``cadpipe run`` on the same DXF files.

    .venv/bin/python bench/peers.py [FOLDER] [--jobs 2] [--repeat 2] [--timeout 60]

FOLDER defaults to the corpus's DXF files (``../shared/corpus`` or ``CADPIPE_CORPUS``), copied
into a temporary library. Both run with the same parallelism (``--jobs``): LibreCAD as that many
``dxf2pdf`` processes at once, one per file (offscreen, killed at ``--timeout``: a hang), cadpipe
as ``cadpipe run --workers JOBS`` into a fresh output root (SVG + PDF + PNG + metadata + catalog +
documents, its temporary Prefect server included). With ``--repeat`` the pairs alternate which
runs first (identical runs on a 2-core VM differ by 5-20 %).

Prints each run's wall time, the per-file times (median, 90th percentile, slowest; LibreCAD's
measured around each process, cadpipe's the worker's own ``duration_ms`` from the catalog), the
hangs, and the ratios cadpipe/LibreCAD of the totals.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from fidelity import librecad_available, librecad_pdf


@dataclass(frozen=True)
class PeerRun:
    name: str
    wall_s: float
    per_file_s: list[float]  # finished files only
    hangs: int
    failed: int

    def line(self) -> str:
        times = sorted(self.per_file_s)
        median = statistics.median(times) if times else float("nan")
        p90 = times[min(len(times) - 1, int(0.9 * len(times)))] if times else float("nan")
        slowest = times[-1] if times else float("nan")
        return (
            f"{self.name}: wall {self.wall_s:.1f} s, per file median {median:.3f} s, p90 {p90:.3f} s, "
            f"slowest {slowest:.2f} s, {self.hangs} hung, {self.failed} failed"
        )


def corpus_library(dest: Path) -> Path:
    corpus = Path(os.environ.get("CADPIPE_CORPUS", REPO.parent / "shared" / "corpus"))
    manifest = corpus / "manifest.csv"
    if not manifest.is_file():
        sys.exit(f"corpus not found at {corpus}; give a FOLDER or set CADPIPE_CORPUS")
    with open(manifest, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["format"] in ("dxf", "dxf-binary")]
    for row in rows:
        shutil.copy2(corpus / row["path"], dest / Path(row["path"]).name)
    return dest


def run_librecad(files: list[Path], jobs: int, timeout_s: float, work: Path) -> PeerRun:
    started = time.monotonic()
    with ThreadPoolExecutor(jobs) as pool:
        results = list(pool.map(lambda i: librecad_pdf(files[i], work / str(i), timeout_s), range(len(files))))
    wall = time.monotonic() - started
    done = [seconds for status, seconds, _ in results if status == "ok"]
    hangs = sum(status == "hung" for status, _, _ in results)
    failed = sum(status == "failed" for status, _, _ in results)
    return PeerRun("LibreCAD dxf2pdf (PDF)", wall, done, hangs, failed)


def run_cadpipe(library: Path, jobs: int, out: Path) -> PeerRun:
    from deltalake import DeltaTable

    command = [str(REPO / ".venv" / "bin" / "cadpipe"), "run", str(library), "--out", str(out)]
    command += ["--workers", str(jobs), "--quiet"]
    started = time.monotonic()
    subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    wall = time.monotonic() - started
    files = DeltaTable(out / "catalog" / "files").to_pandas()  # the catalog's Delta table
    finished = files[files["error_class"].fillna("") != "Timeout"]
    hangs = int((files["error_class"] == "Timeout").sum())
    failed = int((files["status"] == "failed").sum()) - hangs
    return PeerRun(
        "cadpipe run (SVG+PDF+PNG+metadata+catalog)", wall, list(finished["duration_ms"] / 1000), hangs, failed
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, help="DXF files (default: the corpus's)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel processes for both (default 2)")
    parser.add_argument("--repeat", type=int, default=1, help="pairs, alternating which runs first")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before LibreCAD counts as hung")
    args = parser.parse_args(argv)
    if not librecad_available():
        print("LibreCAD not found: install the Debian package librecad", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        if args.folder is None:
            (Path(tmp) / "library").mkdir()
        library = args.folder or corpus_library(Path(tmp) / "library")
        files = sorted(p for p in Path(library).rglob("*") if p.is_file() and p.suffix.lower() == ".dxf")
        print(f"{len(files)} DXF files, {args.jobs} jobs each, LibreCAD timeout {args.timeout:g} s", flush=True)
        totals = {"librecad": 0.0, "cadpipe": 0.0}
        medians = {"librecad": [], "cadpipe": []}
        for pair in range(args.repeat):
            order = ("librecad", "cadpipe") if pair % 2 == 0 else ("cadpipe", "librecad")
            for which in order:
                work = Path(tmp) / f"{which}-{pair}"
                if which == "librecad":
                    run = run_librecad(files, args.jobs, args.timeout, work)
                else:
                    run = run_cadpipe(Path(library), args.jobs, work)
                print(f"pair {pair + 1}: {run.line()}", flush=True)
                totals[which] += run.wall_s
                medians[which].append(statistics.median(run.per_file_s) if run.per_file_s else float("nan"))
        wall_ratio = totals["cadpipe"] / totals["librecad"]
        median_ratio = statistics.mean(medians["cadpipe"]) / statistics.mean(medians["librecad"])
        print(
            f"wall: LibreCAD {totals['librecad']:.1f} s, cadpipe {totals['cadpipe']:.1f} s over {args.repeat} "
            f"pair(s): ratio cadpipe/LibreCAD {wall_ratio:.3f}; per-file median ratio {median_ratio:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
