"""Orchestration overhead: the same outputs through a plain process pool and through `cadpipe run`.

Replicates the corpus DXF files to at least --files inputs (each replica made unique with a DXF
comment, so content hashing cannot skip it), then times, --repeat times, in alternating order
(a 2-core VM drifts by several per cent between identical runs, more than the effect measured):
  1. the floor: `concurrent.futures.ProcessPoolExecutor` mapping the per-file work, nothing else;
  2. `cadpipe run` on the same inputs into a fresh output root (process start, discovery, hashing,
     planning, Prefect server, flow and task runs, retries, catalog, documents included),
and prints every time, each pair's ratio and the ratio of the totals; then one unchanged rerun.
Beside wall time it counts CPU seconds (user + system of each side's finished child processes:
workers, and for cadpipe its own process and its temporary server): cadpipe's CPU beyond the
floor's is what orchestration costs, a figure a loaded machine stretches far less than wall time.
Usage:
    .venv/bin/python bench/orchestration.py [--files 1000] [--repeat 2] [--workers N] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
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
from engine.plan import WorkItem, work_id
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


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def floor(inputs: Path, out: Path, workers: int) -> tuple[float, float]:
    cfg = load_config(out=str(out))
    files = discover([inputs], exclude=[], formats=["dxf"])
    version = pipeline_version()
    jobs = []
    for f in files:
        key = cfg.options_key(f.format)
        item = WorkItem(f, work_id(f.sha256, key, version), cfg.options_for(f.format), key, version)
        jobs.append(item.to_job(str(out)))
    started, cpu = time.perf_counter(), children_cpu()
    # The same worker set-up as cadpipe's pool (libraries loaded once, ezdxf's loader chatter off), no memory cap.
    with ProcessPoolExecutor(max_workers=workers, initializer=init_worker, initargs=(0,)) as pool:
        results = list(pool.map(process_job, jobs, chunksize=1))
    elapsed, cpu = time.perf_counter() - started, children_cpu() - cpu
    failed = sum(not r.ok for r in results)
    print(f"floor: {len(jobs)} files, {failed} failed, {elapsed:.1f} s, CPU {cpu:.1f} s (hashing excluded)", flush=True)
    return elapsed, cpu


def cadpipe(inputs: Path, out: Path, workers: int) -> tuple[float, float]:
    started, cpu = time.perf_counter(), children_cpu()
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
    elapsed, cpu = time.perf_counter() - started, children_cpu() - cpu
    print(proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-2000:])
    print(
        f"cadpipe run: exit {proc.returncode}, {elapsed:.1f} s, CPU {cpu:.1f} s "
        "(process start, Prefect, hashing, catalog included)",
        flush=True,
    )
    return elapsed, cpu


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
            print(
                f"pair {i + 1}: ratio cadpipe/floor {full[0] / base[0]:.3f} wall, {full[1] / base[1]:.3f} CPU",
                flush=True,
            )
            shutil.rmtree(floor_out, ignore_errors=True)
            if i + 1 < args.repeat:
                shutil.rmtree(cadpipe_out, ignore_errors=True)
        wall_floor, wall_full = sum(b[0] for b in floors), sum(f[0] for f in fulls)
        cpu_floor, cpu_full = sum(b[1] for b in floors), sum(f[1] for f in fulls)
        print(f"floor total {wall_floor:.1f} s, cadpipe total {wall_full:.1f} s over {args.repeat} pairs")
        print(
            f"ratio cadpipe/floor: {wall_full / wall_floor:.3f} wall (overhead {100 * (wall_full / wall_floor - 1):.1f} %)"
        )
        print(
            f"CPU: floor {cpu_floor:.1f} s, cadpipe {cpu_full:.1f} s: orchestration "
            f"{(cpu_full - cpu_floor) / args.repeat:.1f} CPU s per run ({100 * (cpu_full / cpu_floor - 1):.1f} %)"
        )
        rerun = cadpipe(inputs, cadpipe_out, args.workers)
        print(f"unchanged rerun: {rerun[0]:.1f} s wall, {rerun[1]:.1f} CPU s")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    main()
