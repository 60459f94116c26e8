"""Orchestration overhead: the same outputs through a plain process pool and through `cadpipe run`.

Replicates the corpus DXF files to at least --files inputs (each replica made unique with a DXF
comment, so content hashing cannot skip it), then times, --repeat times, in alternating order
(a 2-core VM drifts by several per cent between identical runs, more than the effect measured):
  1. the floor: `concurrent.futures.ProcessPoolExecutor` mapping the per-file work, nothing else;
  2. `cadpipe run` on the same inputs into a fresh output root (process start, discovery, hashing,
     planning, Prefect server, flow and task runs, retries, catalog, documents included),
and prints every time, each pair's ratio and the ratio of the totals; then one unchanged rerun.
Beside wall time it counts CPU seconds (user + system of each side's finished child processes:
workers, and for cadpipe its own process and its temporary server; for cadpipe the larger of
that and its process tree sampled, see below): cadpipe's CPU beyond the floor's is what
orchestration costs, a figure a loaded machine stretches far less than wall time.

With --runners it times, instead, `cadpipe run --runner processes` against `cadpipe run --runner
dask` (a LocalCluster of --workers single-threaded worker processes, started by the run) on the
same inputs, each into a fresh output root, in alternating order; it prints each run's wall and CPU
seconds and its count of ok files (the bench fails when the two runners' counts differ), each
pair's ratio dask/processes and the ratio of the totals. The Dask workers are children of the
cadpipe process (their nannies run in it) and the processes that run their files are
grandchildren, which the children's rusage counts only when their parent waited for them: so the
process tree of every cadpipe run is also sampled (psutil), both figures are printed and the
larger is used.
Usage:
    .venv/bin/python bench/orchestration.py [--files 1000] [--repeat 2] [--workers N] [--corpus DIR]
    .venv/bin/python bench/orchestration.py --runners [--files 1000] [--repeat 2] [--workers N]
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
import threading
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


def cadpipe(inputs: Path, out: Path, workers: int, runner: str | None = None) -> tuple[float, float]:
    """`cadpipe run` (with `--runner` when given): wall and CPU seconds, printed with its last line."""
    command = [str(REPO / ".venv" / "bin" / "cadpipe"), "run", str(inputs), "--out", str(out)]
    command += ["--workers", str(workers), "--quiet"] + (["--runner", runner] if runner else [])
    started, cpu = time.perf_counter(), children_cpu()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = TreeSampler(proc.pid)
    stdout, stderr = proc.communicate()
    elapsed, reaped = time.perf_counter() - started, children_cpu() - cpu
    sampled = sampler.stop()
    print(stdout.strip().splitlines()[-1] if stdout.strip() else stderr[-2000:])
    label = f"cadpipe run --runner {runner}" if runner else "cadpipe run"
    cpu = max(reaped, sampled)
    roles = ", ".join(f"{role} {seconds:.1f} s" for role, seconds in sorted(sampler.by_role().items()))
    print(
        f"{label}: exit {proc.returncode}, {elapsed:.1f} s, CPU {cpu:.1f} s "
        f"(children's rusage {reaped:.1f} s, process tree sampled {sampled:.1f} s: {roles}; "
        "process start, Prefect, hashing, catalog included)",
        flush=True,
    )
    return elapsed, cpu


class TreeSampler:
    """CPU seconds of a process and all its descendants, read every half second while it runs (the
    last reading of each process: up to half a second of each one's end is missed).

    The children's rusage counts a grandchild only when its parent waited for it: a Dask worker
    leaves its file pool's processes to init when it stops, and their CPU is not in it. The bench
    takes the larger of the two figures."""

    def __init__(self, pid: int) -> None:
        self.pid, self.done = pid, threading.Event()
        self.seen: dict[int, list[tuple[float, float, str]]] = {}  # pid -> (started, CPU s, role)
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        import psutil

        while not self.done.wait(0.5):
            try:
                root = psutil.Process(self.pid)
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for p in tree:
                try:
                    times, started = p.cpu_times(), p.create_time()
                    role = self._role(p)
                except psutil.Error:
                    continue
                # psutil's create_time may differ by a fraction of a second from one reading to
                # the next (a boot time computed from the uptime): the same pid started within a
                # second is the same process, not a new one to count again.
                readings = self.seen.setdefault(p.pid, [])
                same = [r for r in readings if abs(r[0] - started) < 1.0]
                if same:
                    readings.remove(same[0])
                readings.append((started, times.user + times.system, role))

    def _role(self, process) -> str:
        if process.pid == self.pid:
            return "run process"
        return "server" if any("uvicorn" in part for part in process.cmdline()) else "workers"

    def by_role(self) -> dict[str, float]:
        """CPU seconds of the run process, its temporary server and its workers."""
        roles: dict[str, float] = {}
        for readings in self.seen.values():
            for _, cpu, role in readings:
                roles[role] = roles.get(role, 0.0) + cpu
        return roles

    def stop(self) -> float:
        self.done.set()
        self.thread.join()
        return sum(self.by_role().values())


def ok_files(out: Path) -> int:
    """Files with status ok in the catalog of `out`."""
    from deltalake import DeltaTable

    statuses = DeltaTable(out / "catalog" / "files").to_pyarrow_table(columns=["status"]).column("status")
    return sum(s == "ok" for s in statuses.to_pylist())


def runners(inputs: Path, work: Path, workers: int, repeat: int) -> None:
    """`--runner processes` against `--runner dask`, `repeat` pairs in alternating order."""
    totals: dict[str, list[tuple[float, float]]] = {"processes": [], "dask": []}
    for i in range(repeat):
        order = ["processes", "dask"] if i % 2 == 0 else ["dask", "processes"]
        pair, ok = {}, {}
        for runner in order:
            out = work / f"out-{runner}-{i}"
            pair[runner] = cadpipe(inputs, out, workers, runner)
            ok[runner] = ok_files(out) if (out / "catalog" / "files").is_dir() else 0
            print(f"{runner}: {ok[runner]} files ok", flush=True)
            totals[runner].append(pair[runner])
            shutil.rmtree(out, ignore_errors=True)
        if ok["processes"] != ok["dask"]:
            sys.exit(f"pair {i + 1}: the runners made different results: {ok}")
        dask, processes = pair["dask"], pair["processes"]
        print(
            f"pair {i + 1}: ratio dask/processes {dask[0] / processes[0]:.3f} wall, {dask[1] / processes[1]:.3f} CPU",
            flush=True,
        )
    wall = {r: sum(t[0] for t in runs) for r, runs in totals.items()}
    cpu = {r: sum(t[1] for t in runs) for r, runs in totals.items()}
    print(f"processes total {wall['processes']:.1f} s, dask total {wall['dask']:.1f} s over {repeat} pairs")
    print(
        f"ratio dask/processes: {wall['dask'] / wall['processes']:.3f} wall, "
        f"{cpu['dask'] / cpu['processes']:.3f} CPU (processes {cpu['processes']:.1f} s, dask {cpu['dask']:.1f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=2, help="floor/cadpipe pairs, in alternating order")
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument(
        "--corpus", type=Path, default=Path(os.environ.get("CADPIPE_CORPUS", REPO.parent / "shared" / "corpus"))
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--runners", action="store_true", help="time --runner processes against --runner dask (no floor)"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cadpipe-bench-"))
    try:
        inputs = work / "inputs"
        if not (args.corpus / "manifest.csv").is_file():
            parser.error(f"no corpus at {args.corpus} (manifest.csv missing): pass --corpus or set CADPIPE_CORPUS")
        made = replicate(args.corpus, inputs, args.files)
        server = os.environ.get("PREFECT_API_URL") or "none configured: each cadpipe run starts a temporary one"
        print(f"{made} input files in {inputs}, {args.workers} workers; Prefect server: {server}")
        if args.runners:
            return runners(inputs, work, args.workers, args.repeat)
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
    # No PREFECT_LOGGING_LEVEL of its own: `cadpipe run` is timed as it runs by default (each
    # file's line to the Prefect API and the JSON log); `--quiet` keeps its terminal output short.
    main()
