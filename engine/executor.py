"""The one worker runner: file jobs in isolated worker processes, with per-file timeouts and retries.

The batch (engine/work.py `process_job`) and an apply run (editors/edit_file.py `edit_job`) use it
alike: a `WorkerPool` takes the work function and the worker initializer.

A plain process pool (pebble), not a Prefect task runner: a task run per file would cost more than
many files' work, and process runners start a throwaway Prefect server in every worker. Each job
runs in a worker process with an address-space cap; a job that exceeds its time is killed with its
worker, a worker that dies (segfault, out of memory) fails only its job, and the pool replaces it.
Transient failures are retried with exponential backoff and jitter; permanent ones never are.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, wait
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pebble import ProcessExpired, ProcessPool

from documents.contracts import WorkerAnswer, WorkerJob
from documents.errors import failure
from engine.config import Config


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    backoff_s: float = 2.0
    max_backoff_s: float = 60.0
    jitter: float = 0.5

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt `attempt + 1`, after `attempt` failed."""
        base = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        return max(0.0, base * (1 + random.uniform(-self.jitter, self.jitter)))


@dataclass(frozen=True)
class RunSettings:
    """What the tasks that run files need of the config: runner, pool size, limits, retries."""

    runner: str
    workers: int
    timeout_s: float
    memory_mb: int
    retry: RetryPolicy
    run_id: str | None = None

    @property
    def local(self) -> bool:
        """Files run in this process's pool (not on Dask workers): each is reported as it ends."""
        return self.runner != "dask"


def run_settings(cfg: Config, run_id: str | None = None) -> RunSettings:
    """The run settings of a config: the same for a batch and an apply run."""
    run = cfg.run
    return RunSettings(
        runner=run.runner,
        workers=run.workers or default_workers(),
        timeout_s=cfg.limits.timeout_s,
        memory_mb=cfg.limits.memory_mb,
        retry=RetryPolicy(**cfg.raw["retries"]),
        run_id=run_id,
    )


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


J = TypeVar("J", bound=WorkerJob)
R = TypeVar("R", bound=WorkerAnswer)


@dataclass(frozen=True)
class WorkFunction(Generic[J, R]):
    """What a pool's workers run: `work(job)` for each job, after `initializer(memory_mb)` once per
    worker. Both must be importable module-level functions (workers are spawned)."""

    work: Callable[[J], R]
    initializer: Callable[[int], None]


class WorkerPool(Generic[J, R]):
    """A process pool shared by every caller in this process (thread-safe)."""

    def __init__(self, function: WorkFunction[J, R], workers: int = 0, memory_mb: int = 0) -> None:
        self.function = function
        self.workers = workers or default_workers()
        self.memory_mb = memory_mb
        self._lock = threading.Lock()
        self._pool = self._new_pool()
        self._early: dict[tuple, list[Any]] = {}  # futures of jobs started before a run took them

    def _new_pool(self) -> ProcessPool:
        # spawn: the parent runs threads (Prefect, Rich), and forking a threaded process can deadlock.
        return ProcessPool(
            max_workers=self.workers,
            initializer=self.function.initializer,
            initargs=(self.memory_mb,),
            context=multiprocessing.get_context("spawn"),
        )

    def _working_pool(self) -> ProcessPool:
        """The pool, replaced when broken: a worker killed mid-message (SIGKILL from the OOM
        killer) can break pebble's shared channel. Call with the lock held."""
        if not self._pool.active:
            self._pool.stop()
            self._pool = self._new_pool()
        return self._pool

    def _schedule(self, job: J, timeout_s: float) -> Any:
        with self._lock:
            return self._working_pool().schedule(self.function.work, args=(job,), timeout=timeout_s)

    def call_each(self, function: Callable, arguments: list[tuple], timeout_s: float) -> list:
        """Run `function(*args)` for each args in the workers, with the per-file time limit and
        the workers' memory cap; each call's result, or the exception that ended it."""
        with self._lock:
            pool = self._working_pool()
            futures = [pool.schedule(function, args=args, timeout=timeout_s) for args in arguments]
        results: list = []
        for future in futures:
            try:
                results.append(future.result())
            except FutureTimeout:
                results.append(TimeoutError(f"no result within {timeout_s:g} s; worker stopped"))
            except Exception as exc:  # the function's own error, a crashed worker
                results.append(exc)
        return results

    def call_beside(self, function: Callable, *args: Any) -> Any:
        """Start `function(*args)` in a worker, without a time limit, and return its future: work
        of the caller's that can run on another core meanwhile. The worker's memory cap is a
        file's: a caller whose work may need more runs it itself when the future fails so."""
        with self._lock:
            return self._working_pool().schedule(function, args=args)

    def warm_up(self) -> None:
        """Start the worker processes now (each imports the drawing libraries, seconds), for
        example while the Prefect server starts, instead of when the first file arrives."""
        with self._lock:
            self._pool.schedule(os.getpid)

    def start_early(self, jobs: list[J], timeout_s: float) -> None:
        """Start `jobs` now, before the run that will take them exists: the workers then draw
        while the Prefect server starts and the flow run begins, cores that would idle. A later
        `run` with the same job (same file, identity and attempt) takes its running future instead of
        starting the file again; `drop_early` cancels what no run took."""
        with self._lock:
            pool = self._working_pool()
            for job in jobs:
                future = pool.schedule(self.function.work, args=(job,), timeout=timeout_s)
                self._early.setdefault(_job_key(job), []).append(future)

    def drop_early(self) -> int:
        """Cancel the jobs started early that no run took (the run was refused or never began);
        how many there were."""
        with self._lock:
            left = [future for futures in self._early.values() for future in futures]
            self._early.clear()
        for future in left:
            future.cancel()
        return len(left)

    def _take_early(self, job: J) -> Any | None:
        with self._lock:
            futures = self._early.get(_job_key(job))
            if not futures:
                return None
            future = futures.pop(0)
            if not futures:
                del self._early[_job_key(job)]
            return future

    def close(self) -> None:
        self.drop_early()
        with self._lock:
            self._pool.close()
            self._pool.join()

    def stop(self) -> None:
        self.drop_early()
        with self._lock:
            self._pool.stop()
            self._pool.join()

    def __enter__(self) -> WorkerPool[J, R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop() if exc[0] else self.close()

    def run(
        self,
        jobs: list[J],
        *,
        timeout_s: float,
        retry: RetryPolicy = RetryPolicy(),
        on_result: Callable[[J, R | Any], None] | None = None,
    ) -> list[R | Any]:
        """Process every job; return one final answer per job, in the jobs' order: the work
        function's, or the failure envelope's (documents/errors.py) when the worker timed out,
        died or could not take the job.

        `on_result(job, answer)` is called as each job reaches its final state.
        """
        results: list[Any] = [None] * len(jobs)
        running: dict[Any, tuple[int, J]] = {}
        waiting: list[tuple[float, int, J]] = []  # (ready_at, index, job) retries in backoff

        def submit(index: int, job: J) -> None:
            running[self._take_early(job) or self._schedule(job, timeout_s)] = (index, job)

        for index, job in enumerate(jobs):
            submit(index, job)
        while running or waiting:
            now = time.monotonic()
            for entry in [w for w in waiting if w[0] <= now]:
                waiting.remove(entry)
                submit(entry[1], entry[2])
            if not running:
                time.sleep(max(0.0, min(w[0] for w in waiting) - time.monotonic()))
                continue
            next_retry = min((w[0] for w in waiting), default=None)
            timeout = None if next_retry is None else max(0.0, next_retry - time.monotonic())
            done, _ = wait(list(running), timeout=timeout, return_when=FIRST_COMPLETED)
            for future in done:
                index, job = running.pop(future)
                result = _outcome(future, job, timeout_s)
                if result.status == "failed" and not result.permanent and job.attempt < retry.attempts:
                    waiting.append((time.monotonic() + retry.delay(job.attempt), index, job.retried()))
                    continue
                results[index] = result
                if on_result:
                    on_result(job, result)
        return results


def _job_key(job: WorkerJob) -> tuple:
    """A job's identity for `start_early`: the same file, content, options and attempt."""
    return (job.source_root, job.path, job.work_id, job.attempt)


def _outcome(future: Any, job: WorkerJob, timeout_s: float) -> Any:
    try:
        return future.result()
    except FutureTimeout:
        return failure(
            job, "process", "Timeout", f"no result within {timeout_s:g} s; worker stopped", False, limit=timeout_s
        )
    except ProcessExpired as exc:
        return failure(job, "process", "WorkerCrashed", f"worker process died (exit code {exc.exitcode})", False)
    except BrokenProcessPool as exc:
        return failure(job, "process", "WorkerCrashed", f"worker pool broke ({exc or 'a worker died'})", False)
    except Exception as exc:  # pickling errors and the like: a fault of ours, not the file's
        return failure(job, "process", type(exc).__name__, str(exc), True)


_shared: dict[WorkFunction[Any, Any], WorkerPool[Any, Any]] = {}
_shared_lock = threading.Lock()


def shared_pool(function: WorkFunction[J, R], workers: int = 0, memory_mb: int = 0) -> WorkerPool[J, R]:
    """One pool per process and work function, created on first use: the flow process, or each
    Dask worker. Asking for a different size or memory cap replaces the pool once it is idle."""
    with _shared_lock:
        wanted = (workers or default_workers(), memory_mb)
        pool = _shared.get(function)
        if pool is not None and (pool.workers, pool.memory_mb) != wanted:
            pool.close()
            pool = None
        if pool is None:
            pool = _shared[function] = WorkerPool(function, *wanted)
        return pool


def started_shared_pool(function: WorkFunction[J, R]) -> WorkerPool[J, R] | None:
    """The shared pool of `function` if this process has started it, else None."""
    with _shared_lock:
        return _shared.get(function)


def close_shared_pool(function: WorkFunction[Any, Any] | None = None) -> None:
    """Close the shared pool of `function` (None: every shared pool)."""
    with _shared_lock:
        for key in [f for f in _shared if function is None or f == function]:
            _shared.pop(key).close()
