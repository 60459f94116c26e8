"""Worker time per file of two checkouts, side by side in one run, file by file.

    .venv/bin/python bench/per_file_ab.py OTHER_CHECKOUT [--repeat 1]

Starts one worker process per checkout (this one and OTHER_CHECKOUT, e.g. ``git archive <commit>``
unpacked elsewhere; both run with this checkout's ``.venv``), each with the worker's own
initializer and one warm-up file, then hands every corpus DXF file (``../shared/corpus`` or
``CADPIPE_CORPUS``) to both, one after the other in random order, and reads back the CPU seconds
(time.process_time) of `engine.work.process_job` in each. A 2-core machine's load drifts within
minutes; two separate runs of bench/per_file.py differ by 10 % and more, while files interleaved
one by one share the machine's state. Prints, for each checkout, the median, 90th percentile,
slowest and sum over the files ok in both (with --repeat, each file's fastest time), and the
median of the per-file ratios.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The worker: the code of the checkout it runs in (its cwd and PYTHONPATH), one line per file.
_WORKER = """
import os, sys, tempfile, time
sys.path[:0] = [os.getcwd(), os.path.join(os.getcwd(), "bench")]
from pathlib import Path
import per_file
from engine.work import init_worker, process_job
init_worker(0)
tmp = Path(tempfile.mkdtemp(prefix="cadpipe-ab-"))
jobs = {job.path: job for job in per_file.jobs_for([p.resolve() for p in per_file.corpus_files()], tmp / "out")}
process_job(next(iter(jobs.values())))
print("ready", flush=True)
for n, line in enumerate(sys.stdin):
    job = jobs[line.strip()]
    job = job.__class__(**{**job.__dict__, "out": str(tmp / f"out{n}")})
    started = time.process_time()
    outcome = process_job(job)
    print(f"{time.process_time() - started:.6f} {outcome.status}", flush=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("other", type=Path)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "bench"))
    import per_file

    corpus = os.environ.get("CADPIPE_CORPUS", str(REPO.parent / "shared" / "corpus"))
    trees = {"this": REPO, "other": args.other.resolve()}
    workers = {
        name: subprocess.Popen(
            [sys.executable, "-c", _WORKER],
            cwd=tree,
            env={**os.environ, "PYTHONPATH": str(tree), "CADPIPE_CORPUS": corpus},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for name, tree in trees.items()
    }
    for name, worker in workers.items():
        if worker.stdout is None or worker.stdout.readline().strip() != "ready":
            raise SystemExit(f"the worker of {trees[name]} did not start")
    names = [path.name for path in per_file.corpus_files()]
    times: dict[str, dict[str, float]] = {name: {} for name in workers}
    failed: set[str] = set()
    for _ in range(args.repeat):
        for file in names:
            for name in random.sample(list(workers), 2):
                worker = workers[name]
                assert worker.stdin is not None and worker.stdout is not None
                worker.stdin.write(file + "\n")
                worker.stdin.flush()
                seconds, status = worker.stdout.readline().split()
                if status != "ok":
                    failed.add(file)
                times[name][file] = min(float(seconds), times[name].get(file, float("inf")))
    for worker in workers.values():
        assert worker.stdin is not None
        worker.stdin.close()
        worker.wait()
    ok = [file for file in names if file not in failed]
    for name, tree in trees.items():
        values = sorted(times[name][file] for file in ok)
        print(
            f"{name} ({tree}): {len(ok)} files ok in both, worker time per file: median "
            f"{statistics.median(values):.4f} s, p90 {values[int(0.9 * len(values))]:.3f} s, "
            f"slowest {values[-1]:.2f} s, sum {sum(values):.1f} s"
        )
    ratios = [times["this"][file] / times["other"][file] for file in ok if times["other"][file] > 0]
    print(f"per-file ratio this/other: median {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
