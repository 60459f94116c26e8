"""The worker pool: a hung file is stopped, a dead worker fails (or retries) its file only.

No verdict depends on the machine's speed or load: the hung file never ends (tests/hostile_inputs.py),
its time limit is a multiple of what the other files took in this pool just before, and a worker is
crashed once it is seen writing its file's temporary folder, not after a guessed number of seconds."""

from __future__ import annotations

import fcntl
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from documents.contracts import Job
from engine.config import load_config
from engine.discover import discover
from engine.executor import RetryPolicy, WorkerPool
from engine.plan import work_id
from engine.work import BATCH_WORK, process_job, sweep_abandoned
from tests.hostile_inputs import drawing, endless_drawing
from tests.processes import children

SLOW = "files/ezdxf/examples_dxf__mtext_complex_inline_codes.dxf"  # 3.4 s of work (idle); the fast ones 0.2 s
FAST = ["files/ezdxf/examples_dxf__text_alignments.dxf", "files/cadquery/tests__testdata__gear.dxf"]
NO_RETRY_DELAY = dict(backoff_s=0.01, max_backoff_s=0.01, jitter=0.0)


def _jobs(src: Path, out: Path) -> dict[str, Job]:
    cfg = load_config()
    jobs = {}
    for f in discover([src], exclude=[], formats=["dxf"]):
        wid = work_id(f.sha256, cfg.options_key(f.format), "test")
        jobs[f.path] = Job(
            source_root=f.source_root,
            path=f.path,
            format=f.format,
            sha256=f.sha256,
            work_id=wid,
            options=cfg.options_for(f.format),
            options_key=cfg.options_key(f.format),
            version="test",
            out=str(out),
        )
    return jobs


def _children() -> list[int]:
    """The pool's worker processes: spawned children of this process, never other children of the
    test session (its Prefect server is one; killing it would break every later test)."""
    return children(os.getpid(), b"spawn_main")


def test_a_hung_file_times_out_and_the_others_finish(tmp_path):
    src = tmp_path / "library"
    src.mkdir()
    small = ["small-1.dxf", "small-2.dxf"]
    for seed, name in enumerate(small, start=1):
        (src / name).write_bytes(drawing(seed))
    with WorkerPool(BATCH_WORK, workers=2) as pool:
        # The small files alone first, in this pool (workers started, as loaded as the machine is
        # now): their time sets the limit, ten times it, so they never meet it and the hung file does.
        warm = pool.run(list(_jobs(src, tmp_path / "warm").values()), timeout_s=600)
        assert [r.status for r in warm] == ["ok", "ok"]
        limit = round(max(2.0, 10 * max(r.duration_ms for r in warm) / 1000), 1)
        (src / "hung.dxf").write_bytes(endless_drawing())
        jobs = _jobs(src, tmp_path / "out")
        results = pool.run(list(jobs.values()), timeout_s=limit, retry=RetryPolicy(attempts=2, **NO_RETRY_DELAY))
    by_path = dict(zip(jobs, results))
    hung = by_path["hung.dxf"]
    assert hung.status == "failed" and hung.error_class == "Timeout"
    assert hung.attempt == 2, "a timeout is transient: retried up to the configured attempts"
    assert f"hung.dxf: process: no result within {limit:g} s" in hung.error_message
    # The small files ran beside it (in the pool's other worker) or after it.
    assert [by_path[name].status for name in small] == ["ok", "ok"]


def _writing(outputs: Path, wid: str | None = None) -> bool:
    """A worker is inside a file's work: its temporary output folder exists (engine/work.py)."""
    return any(outputs.glob(f".tmp-{wid or ''}*"))


@pytest.mark.parametrize("sig", [signal.SIGSEGV, signal.SIGKILL])
def test_a_crashed_worker_fails_only_its_file_and_is_retried(corpus_copy, tmp_path, sig):
    src = corpus_copy(SLOW, *FAST)
    jobs = _jobs(src, tmp_path / "out")
    slow = jobs[Path(SLOW).name]  # the first job of the only worker: seconds of work
    outputs = tmp_path / "out" / "outputs"
    with WorkerPool(BATCH_WORK, workers=1) as pool:
        killed: list[int] = []

        def crash_once() -> None:  # what a segfault or the kernel's OOM killer does to a worker
            deadline = time.monotonic() + 600
            while not _writing(outputs, slow.work_id) and time.monotonic() < deadline:
                time.sleep(0.02)
            for pid in _children():
                os.kill(pid, sig)
                killed.append(pid)

        threading.Thread(target=crash_once, daemon=True).start()
        results = pool.run(list(jobs.values()), timeout_s=600, retry=RetryPolicy(attempts=2, **NO_RETRY_DELAY))
    assert killed, "no worker process was found to crash"
    assert all(r.status == "ok" for r in results), results
    assert max(r.attempt for r in results) == 2, "the crashed file was retried once"


def test_without_retries_a_crash_is_a_recorded_failure(tmp_path):
    src = tmp_path / "library"
    src.mkdir()
    (src / "endless.dxf").write_bytes(endless_drawing())  # the worker is still on it whenever the crash comes
    jobs = _jobs(src, tmp_path / "out")
    outputs = tmp_path / "out" / "outputs"

    def crash_mid_file() -> None:  # once the worker is writing its temporary folder
        deadline = time.monotonic() + 600
        while not _writing(outputs) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in _children():
            os.kill(pid, signal.SIGSEGV)

    with WorkerPool(BATCH_WORK, workers=1) as pool:
        threading.Thread(target=crash_mid_file, daemon=True).start()
        [result] = pool.run(list(jobs.values()), timeout_s=900, retry=RetryPolicy(attempts=1))
    assert result.status == "failed" and result.error_class == "WorkerCrashed"
    assert "process: worker" in result.error_message  # "worker process died" or "worker pool broke"
    # The dead worker's half-written folder stays behind until the next run's sweep removes it.
    [leftover] = [p for p in outputs.iterdir() if p.name.startswith(".tmp-")]
    assert sweep_abandoned(tmp_path / "out") == [leftover] and not leftover.exists()


def test_backoff_grows_exponentially_with_bounded_jitter():
    policy = RetryPolicy(attempts=5, backoff_s=1.0, max_backoff_s=5.0, jitter=0.5)
    for attempt, base in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0)]:
        delays = [policy.delay(attempt) for _ in range(200)]
        assert all(base * 0.5 <= d <= base * 1.5 for d in delays)
        assert len(set(delays)) > 1, "jitter spreads retries"


def test_the_sweep_leaves_work_in_progress_and_finished_work_alone(corpus_copy, tmp_path):
    out = tmp_path / "out"
    [job] = _jobs(corpus_copy(FAST[0]), out).values()
    assert process_job(job).status == "ok"
    finished = out / "outputs" / job.work_id
    assert finished.stat().st_mode & 0o777 == 0o755, "outputs readable by others, like any written file"
    locks = out / "outputs" / ".locks"
    busy = out / "outputs" / ".tmp-busywork-abc_12"
    busy.mkdir()
    with open(locks / "busywork.lock", "a+") as held:  # what a worker holds while it writes
        fcntl.flock(held, fcntl.LOCK_EX)
        assert sweep_abandoned(out) == []
    assert busy.is_dir() and (finished / "result.json").is_file()
    assert sweep_abandoned(out) == [busy] and not busy.exists(), "its worker is gone: the lock is free"


def _wait_for(condition, what: str, seconds: float = 600) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds:g} s: {what}"
        time.sleep(0.05)


def test_files_started_early_are_taken_by_the_run_as_they_ran_not_started_again(tmp_path):
    src = tmp_path / "library"
    src.mkdir()
    for seed in (1, 2):
        (src / f"early-{seed}.dxf").write_bytes(drawing(seed))
    jobs = list(_jobs(src, tmp_path / "out").values())
    outputs = tmp_path / "out" / "outputs"
    with WorkerPool(BATCH_WORK, workers=1) as pool:
        pool.start_early(jobs, timeout_s=600)
        _wait_for(lambda: all((outputs / j.work_id / "result.json").is_file() for j in jobs), "the early files done")
        for seed, job in enumerate(jobs, start=3):  # new content: a file started again would show it
            (src / job.path).write_bytes(drawing(seed))
        results = pool.run(jobs, timeout_s=600)
        assert pool.drop_early() == 0, "the run took every file started early"
    assert [r.status for r in results] == ["ok", "ok"]
    assert [r.sha256 for r in results] == [j.sha256 for j in jobs], "the answers of the early work, not new work"


def test_files_started_early_that_no_run_takes_are_cancelled(tmp_path):
    src = tmp_path / "library"
    src.mkdir()
    (src / "endless.dxf").write_bytes(endless_drawing())
    (src / "small.dxf").write_bytes(drawing(1))
    jobs = _jobs(src, tmp_path / "out")
    with WorkerPool(BATCH_WORK, workers=1) as pool:
        pool.start_early([jobs["endless.dxf"]], timeout_s=900)
        _wait_for(lambda: _writing(tmp_path / "out" / "outputs"), "the worker on the endless file")
        busy = _children()
        assert pool.drop_early() == 1
        _wait_for(lambda: not set(busy) & set(_children()), "the worker on the dropped file stopped", 60)
        [result] = pool.run([jobs["small.dxf"]], timeout_s=600)  # the pool's one worker is free again
        assert pool.drop_early() == 0
    assert result.status == "ok"
