"""The per-work lock (engine/work.py) that keeps overlapping runs on one output root, such as the
nightly batch and a drop-folder run, from working on the same content at once. Real worker
processes; the waiting is observed in the kernel's lock table, not guessed from timings."""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from documents.contracts import Job
from engine.config import load_config
from engine.work import LOCKS_DIR, OUTPUTS_DIR, RESULT_FILE, process_job
from tests.conftest import REPO

SAMPLE = REPO / "data" / "samples" / "gear.dxf"


@pytest.fixture
def job(tmp_path: Path) -> Job:
    config = tmp_path / "cadpipe.toml"
    config.write_text('[dxf]\noutputs = ["svg"]\n', encoding="utf-8")
    cfg = load_config(config)
    return Job(
        source_root=str(SAMPLE.parent),
        path=SAMPLE.name,
        format="dxf",
        sha256=hashlib.sha256(SAMPLE.read_bytes()).hexdigest(),
        work_id="c0ffee" + "0" * 26,
        options=cfg.options_for("dxf"),
        options_key=cfg.options_key("dxf"),
        version="test",
        out=str(tmp_path / "out"),
    )


def blocked_on(path: Path) -> bool:
    """True when some process waits for the flock on `path` (a `->` line in /proc/locks)."""
    inode = str(os.stat(path).st_ino)
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields and fields[fields.index("->") + 1] == "FLOCK" and fields[-3].split(":")[-1] == inode:
            return True
    return False


def hold(out: Path, work_id: str):
    locks = out / OUTPUTS_DIR / LOCKS_DIR
    locks.mkdir(parents=True, exist_ok=True)
    handle = open(locks / f"{work_id}.lock", "a+")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def wait_until_blocked(path: Path, future) -> None:
    deadline = time.monotonic() + 120  # a spawned worker imports ezdxf first
    while not blocked_on(path):
        assert not future.done(), f"the job ran although the lock was held: {future.result()}"
        assert time.monotonic() < deadline, "the worker never reached the lock"
        time.sleep(0.1)


def pool() -> ProcessPoolExecutor:
    return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))


def test_a_run_waits_while_another_works_on_the_same_content_then_reuses_its_result(tmp_path, job):
    # The other run's finished work, made beforehand in a scratch output root.
    scratch = tmp_path / "scratch"
    assert process_job(dataclasses.replace(job, out=str(scratch))).status == "ok"
    out = Path(job.out)
    handle = hold(out, job.work_id)  # the other run is working on it now
    with pool() as workers:
        future = workers.submit(process_job, job)
        wait_until_blocked(Path(handle.name), future)
        # The other run finishes: its folder appears complete, then it lets go.
        os.rename(scratch / OUTPUTS_DIR / job.work_id, out / OUTPUTS_DIR / job.work_id)
        finished = (out / OUTPUTS_DIR / job.work_id / RESULT_FILE).stat()
        handle.close()
        result = future.result(timeout=120)
    assert result.status == "ok" and result.reused is True
    assert (out / OUTPUTS_DIR / job.work_id / RESULT_FILE).stat().st_mtime_ns == finished.st_mtime_ns, (
        "the result was reused, not written again"
    )
    assert sorted(p.name for p in (out / OUTPUTS_DIR).iterdir()) == sorted([LOCKS_DIR, job.work_id]), (
        "no half-written folder left behind"
    )


def test_when_the_other_run_gives_up_the_waiting_run_does_the_work(tmp_path, job):
    out = Path(job.out)
    handle = hold(out, job.work_id)
    with pool() as workers:
        future = workers.submit(process_job, job)
        wait_until_blocked(Path(handle.name), future)
        handle.close()  # e.g. the other worker was killed: the kernel drops its lock
        result = future.result(timeout=120)
    assert result.status == "ok" and result.reused is False
    assert (out / OUTPUTS_DIR / job.work_id / RESULT_FILE).is_file()
    assert sorted(p.name for p in (out / OUTPUTS_DIR).iterdir()) == sorted([LOCKS_DIR, job.work_id])
