"""A pool worker whose parent is killed outright does not live on as an orphan."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A parent that starts a batch worker pool (the real initializer), keeps both workers busy with a
# job that outlasts the test (as a drawing that never ends would), prints their pids and waits.
# An idle worker notices its parent's death on its pipe; a busy one reads nothing until its job ends.
PARENT = textwrap.dedent(
    """
    import multiprocessing, os, sys, time
    from pebble import ProcessPool
    sys.path.insert(0, sys.argv[1])
    from engine.work import init_worker

    pool = ProcessPool(max_workers=2, initializer=init_worker, initargs=(0,),
                       context=multiprocessing.get_context("spawn"))
    pids = {pool.schedule(os.getpid).result() for _ in range(20)}
    busy = [pool.schedule(time.sleep, args=(600,)) for _ in range(2)]
    while not all(job.running() for job in busy):  # both workers have started theirs
        time.sleep(0.05)
    print(" ".join(map(str, sorted(pids))), flush=True)
    time.sleep(600)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ")[1].split()[0] != "Z"


def test_pool_workers_exit_when_their_parent_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(ROOT)], stdout=subprocess.PIPE, text=True)
    try:
        workers = [int(pid) for pid in parent.stdout.readline().split()]
        assert workers and all(_alive(pid) for pid in workers)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 120
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in workers if _alive(pid)], "workers outlived their killed parent"
    finally:
        parent.kill()
        for pid in workers if "workers" in locals() else []:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)  # leave no orphan behind when the test fails
