"""Run file jobs in isolated worker processes, with per-file timeouts and retries.

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

from pebble import ProcessExpired, ProcessPool

from documents.errors import failure
from engine.work import init_worker, process_job


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


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


class FileExecutor:
    """A process pool shared by every caller in this process (thread-safe)."""

    def __init__(self, workers: int = 0, memory_mb: int = 0) -> None:
        self.workers = workers or default_workers()
        self.memory_mb = memory_mb
        self._lock = threading.Lock()
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPool:
        # spawn: the parent runs threads (Prefect, Rich), and forking a threaded process can deadlock.
        return ProcessPool(
            max_workers=self.workers,
            initializer=init_worker,
            initargs=(self.memory_mb,),
            context=multiprocessing.get_context("spawn"),
        )

    def _schedule(self, job: dict, timeout_s: float):
        """Schedule on a working pool: a worker killed mid-message (SIGKILL from the OOM killer)
        can break pebble's shared channel, and then the whole pool is replaced."""
        with self._lock:
            if not self._pool.active:
                self._pool.stop()
                self._pool = self._new_pool()
            return self._pool.schedule(process_job, args=(job,), timeout=timeout_s)

    def call_each(self, function: Callable, arguments: list[tuple], timeout_s: float) -> list:
        """Run `function(*args)` for each args in the workers, with the per-file time limit and
        the workers' memory cap; each call's result, or the exception that ended it."""
        with self._lock:
            if not self._pool.active:
                self._pool.stop()
                self._pool = self._new_pool()
            futures = [self._pool.schedule(function, args=args, timeout=timeout_s) for args in arguments]
        results: list = []
        for future in futures:
            try:
                results.append(future.result())
            except FutureTimeout:
                results.append(TimeoutError(f"no result within {timeout_s:g} s; worker stopped"))
            except Exception as exc:  # the function's own error, a crashed worker
                results.append(exc)
        return results

    def warm_up(self) -> None:
        """Start the worker processes now (each imports the drawing libraries, seconds), for
        example while the Prefect server starts, instead of when the first file arrives."""
        with self._lock:
            self._pool.schedule(os.getpid)

    def close(self) -> None:
        with self._lock:
            self._pool.close()
            self._pool.join()

    def stop(self) -> None:
        with self._lock:
            self._pool.stop()
            self._pool.join()

    def __enter__(self) -> FileExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.stop() if exc[0] else self.close()

    def run(
        self,
        jobs: list[dict],
        *,
        timeout_s: float,
        retry: RetryPolicy = RetryPolicy(),
        on_result: Callable[[dict, dict], None] | None = None,
    ) -> list[dict]:
        """Process every job; return one final result per job, in the jobs' order.

        `on_result(job, result)` is called as each job reaches its final state.
        """
        results: list[dict | None] = [None] * len(jobs)
        running: dict = {}
        waiting: list[tuple[float, int, dict]] = []  # (ready_at, index, job) retries in backoff

        def submit(index: int, job: dict) -> None:
            running[self._schedule(job, timeout_s)] = (index, job)

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
                if result["status"] == "failed" and not result["permanent"] and job["attempt"] < retry.attempts:
                    retry_job = {**job, "attempt": job["attempt"] + 1}
                    waiting.append((time.monotonic() + retry.delay(job["attempt"]), index, retry_job))
                    continue
                results[index] = result
                if on_result:
                    on_result(job, result)
        return results  # type: ignore[return-value]


def _outcome(future, job: dict, timeout_s: float) -> dict:
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


_shared: FileExecutor | None = None
_shared_lock = threading.Lock()


def shared_executor(workers: int = 0, memory_mb: int = 0) -> FileExecutor:
    """One pool per process, created on first use: the flow process, or each Dask worker.

    Asking for a different size or memory cap replaces the pool once the previous one is idle.
    """
    global _shared
    with _shared_lock:
        wanted = (workers or default_workers(), memory_mb)
        if _shared is not None and (_shared.workers, _shared.memory_mb) != wanted:
            _shared.close()
            _shared = None
        if _shared is None:
            _shared = FileExecutor(*wanted)
        return _shared


def close_shared_executor() -> None:
    global _shared
    with _shared_lock:
        if _shared is not None:
            _shared.close()
            _shared = None
