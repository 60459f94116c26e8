"""Orchestration overhead: the same outputs through a plain process pool and through `cadpipe run`.

Replicates the corpus DXF files to at least --files inputs (each replica made unique with a DXF
comment, so content hashing cannot skip it), then times, --repeat times, in alternating order
(a 2-core VM drifts by several per cent between identical runs, more than the effect measured):
  1. the floor: `concurrent.futures.ProcessPoolExecutor` mapping the per-file work, nothing else;
  2. `cadpipe run` on the same inputs into a fresh output root (process start, discovery, hashing,
     planning, Prefect server, flow and task runs, retries, catalog, documents included),
and prints every time, each pair's ratio and the ratio of the totals; then one unchanged rerun.
Usage:
    .venv/bin/python bench/orchestration.py [--files 1000] [--repeat 2] [--workers N] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.config import load_config
from engine.discover import discover
from engine.executor import default_workers
from engine.plan import work_id
from engine.version import pipeline_version
from engine.work import init_worker, process_job


def replicate(corpus: Path, dest: Path, count: int) -> int:
    rows = list(csv.DictReader(open(corpus / "manifest.csv", newline="", encoding="utf-8")))
    ascii_dxf = [r for r in rows if r["format"] == "dxf" and r["ezdxf_load"] in ("ok", "recover")]
    made = 0
    while made < count:
        for row in ascii_dxf:
            data = (corpus / row["path"]).read_bytes()
            target = dest / f"r{made // len(ascii_dxf):03d}" / Path(row["path"]).name
            target.parent.mkdir(parents=True, exist_ok=True)
            # A leading 999 comment group is valid DXF and makes every replica distinct content.
            target.write_bytes(f"999\ncadpipe benchmark replica {made}\n".encode() + data)
            made += 1
            if made >= count:
                break
    return made


def floor(inputs: Path, out: Path, workers: int) -> float:
    cfg = load_config(out=str(out))
    files = discover([inputs], exclude=[], formats=["dxf"])
    version = pipeline_version()
    jobs = [
        {
            "source_root": f.source_root,
            "path": f.path,
            "format": f.format,
            "sha256": f.sha256,
            "work_id": work_id(f.sha256, cfg.options_key(f.format), version),
            "options": cfg.options_for(f.format),
            "out": str(out),
            "attempt": 1,
        }
        for f in files
    ]
    started = time.perf_counter()
    # The same worker set-up as cadpipe's pool (libraries loaded once, ezdxf's loader chatter off), no memory cap.
    with ProcessPoolExecutor(max_workers=workers, initializer=init_worker, initargs=(0,)) as pool:
        results = list(pool.map(process_job, jobs, chunksize=1))
    elapsed = time.perf_counter() - started
    failed = sum(r["status"] != "ok" for r in results)
    print(f"floor: {len(jobs)} files, {failed} failed, {elapsed:.1f} s (hashing excluded)", flush=True)
    return elapsed


def cadpipe(inputs: Path, out: Path, workers: int) -> float:
    started = time.perf_counter()
    proc = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "cadpipe"),
            "run",
            str(inputs),
            "--out",
            str(out),
            "--workers",
            str(workers),
            "--quiet",
        ],
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    print(proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-2000:])
    print(
        f"cadpipe run: exit {proc.returncode}, {elapsed:.1f} s (process start, Prefect, hashing, catalog included)",
        flush=True,
    )
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=2, help="floor/cadpipe pairs, in alternating order")
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument(
        "--corpus", type=Path, default=Path(os.environ.get("CADPIPE_CORPUS", REPO.parent / "shared" / "corpus"))
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cadpipe-bench-"))
    try:
        inputs = work / "inputs"
        if not (args.corpus / "manifest.csv").is_file():
            parser.error(f"no corpus at {args.corpus} (manifest.csv missing): pass --corpus or set CADPIPE_CORPUS")
        made = replicate(args.corpus, inputs, args.files)
        server = os.environ.get("PREFECT_API_URL") or "none configured: each cadpipe run starts a temporary one"
        print(f"{made} input files in {inputs}, {args.workers} workers; Prefect server: {server}")
        floors, fulls = [], []
        for i in range(args.repeat):
            floor_out, cadpipe_out = work / f"out-floor-{i}", work / f"out-cadpipe-{i}"
            if i % 2 == 0:
                base = floor(inputs, floor_out, args.workers)
                full = cadpipe(inputs, cadpipe_out, args.workers)
            else:
                full = cadpipe(inputs, cadpipe_out, args.workers)
                base = floor(inputs, floor_out, args.workers)
            floors.append(base)
            fulls.append(full)
            print(f"pair {i + 1}: ratio cadpipe/floor {full / base:.3f}", flush=True)
            shutil.rmtree(floor_out, ignore_errors=True)
            if i + 1 < args.repeat:
                shutil.rmtree(cadpipe_out, ignore_errors=True)
        ratio = sum(fulls) / sum(floors)
        print(f"floor total {sum(floors):.1f} s, cadpipe total {sum(fulls):.1f} s over {args.repeat} pairs")
        print(f"ratio cadpipe/floor: {ratio:.3f} (overhead {100 * (ratio - 1):.1f} %)")
        rerun = cadpipe(inputs, cadpipe_out, args.workers)
        print(f"unchanged rerun: {rerun:.1f} s = {100 * rerun / full:.1f} % of the first run")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    main()
