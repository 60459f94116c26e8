"""The batch flow: discover, plan, map chunks of files over workers, collect, publish.

One Prefect task run per chunk of files, not per file: a task run costs 12-16 ms on threads and
115-245 ms on process or Dask runners, and thousands of task runs per flow overload a small
server. Per-file state lives in our own catalog; per-file retries and timeouts live in the process
pool (engine/executor.py). The flow run ends Failed when a file failed in this run (or any failed
file, with `[run] fail_on = "any"`: engine/failures.py), after every other file was finished and
published, so the UI shows it and its Retry redoes only what is not done; its state message and
its summary artifact name the failed files. A run refused at its start (an empty parameter, a
config mistake, a Dask cluster that cannot isolate files) ends Failed before touching a file.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.futures import as_completed
from prefect.runtime import flow_run
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.states import Completed, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from documents.contracts import FileOutcome, Job
from engine.catalog import Outcome
from engine.config import Config, ConfigError, check_roots, load_config
from engine.discover import InputFile
from engine.executor import RunSettings, run_settings, shared_pool
from engine.plan import Plan
from engine.work import BATCH_WORK
from flows import batch_steps, dask_cluster, deployments, logs, prefect_api, progress
from flows.artifacts import create_run_artifacts, track_progress
from flows.notify import notify_crash, notify_run
from flows.outcomes import FilesFailed, RunRefused, quiet_expected_outcomes

MAX_TASK_RUNS = 200
quiet_expected_outcomes()  # a Failed run with a reason is not a crash: no traceback (flows/outcomes.py)

# Results of the chunks this process ran, by (run_id, chunk index): what a run keeps when the
# Prefect server goes away under it and the subflow of its chunks cannot report its end.
_chunk_results: dict[tuple[str, int], list[FileOutcome]] = {}
_results_lock = threading.Lock()


def chunk_size_for(files: int, workers: int, configured: int = 0) -> int:
    """Files per task run: few enough task runs for the server, enough chunks to keep workers busy."""
    if configured:
        return configured
    return max(math.ceil(files / MAX_TASK_RUNS), min(50, math.ceil(files / (workers * 4))), 1)


@task(name="discover-and-plan")
def discover_and_plan(cfg: Config, roots: list[str] | None = None) -> tuple[list[InputFile], Plan]:
    """`roots`: folders (text form) that name identities besides the sources (the watcher's drop
    folders). The plan `cadpipe run` made while the server started, if it handed one over."""
    planned = batch_steps.take_plan(cfg, roots)
    batch_steps.log_plan(planned, get_run_logger())
    return planned.inputs, planned.plan


@task(
    name="process-chunk",
    task_run_name="chunk-{index}",
    retries=2,
    retry_delay_seconds=[5, 20],
    retry_jitter_factor=0.5,
)
def process_chunk(index: int, jobs: list[Job], settings: RunSettings) -> list[FileOutcome]:
    """Run one chunk's files in the worker pool of the process this task runs in.

    A task retry (an infrastructure fault) redoes only the files whose output is not complete yet.
    """
    logger = get_run_logger()
    workers = settings.workers
    if settings.runner == "dask":  # size the pool of this Dask worker to its threads
        import multiprocessing

        from distributed import get_worker

        if multiprocessing.current_process().daemon:
            raise RuntimeError(
                "this Dask worker is a daemonic process and cannot start the child processes that "
                "isolate each file: start the workers with DASK_DISTRIBUTED__WORKER__DAEMON=False"
            )
        workers = get_worker().state.nthreads
    pool = shared_pool(BATCH_WORK, workers, settings.memory_mb)

    def report(job: Job, outcome: FileOutcome) -> None:
        logs.file_event(logger, job, outcome)  # a warning with the reason when it failed
        if settings.local:
            progress.file_done(job.path, outcome)

    results = pool.run(jobs, timeout_s=settings.timeout_s, retry=settings.retry, on_result=report)
    if settings.run_id and settings.local:  # a Dask worker's are its own
        _keep_chunk_results(settings.run_id, index, results)
    return results


def _keep_chunk_results(run_id: str, index: int, results: list[FileOutcome]) -> None:
    """Out of the task's own body: Dask pickles that body by value with the globals it names, and
    a lock cannot be pickled."""
    with _results_lock:
        _chunk_results[(run_id, index)] = results


@task(name="publish")
def publish(cfg: Config, run: dict, outcomes: list[Outcome]) -> dict:
    return batch_steps.publish(cfg, run, outcomes)


@task(name="revision-diff")
def diff_revisions(cfg: Config, run_id: str, settings: RunSettings) -> list[dict]:
    """Compare every drawing that came back with new content with its version before (the
    `changes` table); the diffs and overlays run in the batch's worker pool, under the file limits."""
    logger = get_run_logger()
    return batch_steps.record_changes(cfg, run_id, settings.workers, settings.memory_mb, settings.timeout_s, logger)


def _task_runner(runner: str, workers: int, dask_address: str | None):
    if runner == "dask":
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=dask_address) if dask_address else DaskTaskRunner()
    # Threads only wait on the process pool; two chunks per worker keep the pool's queue full.
    return ThreadPoolTaskRunner(max_workers=max(2, workers * 2))


class Chunks:
    """The chunks of one `cadpipe-chunks` subflow run, handed over in this process: a subflow's
    parameters are stored by the server, which refuses more than 512 KB of them (1,000 jobs are
    about 700 KB), and encoding them costs the CLI's CPU. The run records only its counts."""

    _handed: dict[str, list[list[Job]]] = {}

    def __init__(self, chunks: list[list[Job]]) -> None:
        self.key = uuid.uuid4().hex
        self.files = sum(len(c) for c in chunks)
        self.count = len(chunks)
        with _results_lock:
            Chunks._handed[self.key] = chunks

    def parameters(self) -> dict[str, Any]:
        return {"handed": self.key, "files": self.files, "chunk_count": self.count}

    @classmethod
    def take(cls, key: str) -> list[list[Job]]:
        with _results_lock:
            chunks = cls._handed.get(key)
        if chunks is None:
            raise RuntimeError("cadpipe-chunks runs only inside the batch flow that plans its chunks")
        return chunks

    def release(self) -> None:
        with _results_lock:
            Chunks._handed.pop(self.key, None)


def chunks_subflow(chunks: list[list[Job]], settings: RunSettings, task_runner) -> list[list[FileOutcome]]:
    """Run `chunks` as one `cadpipe-chunks` subflow run on `task_runner` (in a flow run)."""
    handed = Chunks(chunks)
    try:
        # No heartbeats of its own: the batch's flow run has them (where a server reads them, to
        # mark a run whose process died), and the subflow's end would wait up to a second for
        # its heartbeat thread, which sleeps in whole seconds.
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            return run_chunks.with_options(task_runner=task_runner)(**handed.parameters(), settings=settings)
    finally:
        handed.release()


@flow(name="cadpipe-chunks")
def run_chunks(handed: str, files: int, chunk_count: int, settings: RunSettings) -> list[list[FileOutcome]]:
    """`files` in `chunk_count` chunks (handed over by `chunks_subflow`), one task run each."""
    chunks = Chunks.take(handed)
    futures = {process_chunk.submit(i, jobs, settings): i for i, jobs in enumerate(chunks)}
    collected: list[list[FileOutcome]] = [[] for _ in chunks]
    for future in as_completed(list(futures)):
        index = futures[future]
        jobs = chunks[index]
        future.wait()  # records the final state; without it .state reads the API, which may lag behind
        state = future.state
        if state.is_completed():
            results = future.result()
            local = settings.local  # local chunks reported each file as it finished
        else:  # the chunk itself failed after its retries: not the files' fault (see deferred_results)
            results = deferred_results(index, jobs, state.message or "chunk task failed")
            for job, result in zip(jobs, results):
                progress.file_done(job.path, result)
            collected[index] = results
            continue
        if not local:
            for job, result in zip(jobs, results):
                progress.file_done(job.path, result)
                logs.file_event(logs.local_logger, job, result)
        collected[index] = results
    return collected


def deferred_results(index: int, jobs: list[Job], reason: str) -> list[FileOutcome]:
    """A chunk that could not run (an orchestration fault: a lost worker, a cluster that cannot
    start processes) after its task retries: its files are not recorded as failed nor
    quarantined, but left as they were for the next run; the cause is logged once, here."""
    get_run_logger().error(
        "chunk-%d could not run (%s); its %d files are left for the next run, not recorded as failed",
        index,
        reason,
        len(jobs),
        extra={"event": "chunk.failed"},
    )
    return [FileOutcome(status="deferred", work_id=job.work_id, error_message=reason) for job in jobs]


@flow(name="cadpipe-batch")
def batch(
    sources: list[str] | None = None,
    out: str | None = None,
    config: str | None = None,
    runner: str | None = None,
    workers: int | None = None,
    dask_address: str | None = None,
    chunk_size: int | None = None,
    roots: list[str] | None = None,
    fail_on: str | None = None,
):
    """Convert, measure and catalogue every CAD file under `sources` into `out`.

    Parameters left empty take their value from the config file (default: the repository's
    cadpipe.toml). Rerunning is always safe: only missing or stale work is done. Paths are in
    the text form of the catalog (documents/names.py: a backslash doubled, a byte that is not UTF-8
    as backslash-x and two hex digits); `roots` are folders that files of `sources` are known
    under (drop folders). `fail_on`: "new" or "any" (default: the config's run.fail_on).
    """
    logger = get_run_logger()
    chosen = (("runner", runner), ("workers", workers), ("chunk_size", chunk_size), ("fail_on", fail_on))
    try:
        deployments.check_parameters(sources, out)  # before anything is read or written
        try:
            cfg = load_config(config, sources=sources, out=out, overrides={"run": {k: v for k, v in chosen if v}})
            check_roots(cfg.sources, cfg.out)
        except ConfigError as exc:
            raise RunRefused(f"configuration error: {exc}") from None
        deployments.check_output_root(cfg.out)
    except RunRefused as refused:
        logger.error("%s", refused, extra={"event": "run.refused"})
        return Failed(message=str(refused), data=refused)
    flow_run_id = str(flow_run.id) if flow_run.id else None
    run = batch_steps.new_run(cfg, flow_run_id, flow_run.run_count or 1)
    settings = run_settings(cfg, run["run_id"])
    run_log = logs.configure(cfg.out, run["run_id"], stdout=cfg.raw["logs"]["stdout"], flow_run_id=flow_run_id)
    try:
        with contextlib.ExitStack() as stack:
            if settings.runner == "dask":  # checked (or started) before any file is touched
                try:
                    if not dask_address:
                        dask_address = stack.enter_context(dask_cluster.local_cluster(settings.workers))
                    dask_cluster.check_cluster(dask_address)
                except RunRefused as refused:
                    logger.error("%s", refused, extra={"event": "run.refused"})
                    return Failed(message=str(refused), data=refused)
            return _run_batch(cfg, run, settings, dask_address, logger, roots)
    except BaseException as exc:
        # The batch itself could not finish (not a file's fault: those are recorded and published).
        # Say so where a per-file failure would be heard, then let Prefect mark the run Crashed/Failed.
        logger.error("batch could not finish: %s: %s", type(exc).__name__, exc, extra={"event": "run.crashed"})
        notify_crash(cfg, run, exc)
        raise
    finally:
        run_log.close()


def _run_batch(cfg: Config, run: dict, settings: RunSettings, dask_address: str | None, logger, roots=None) -> State:
    inputs, plan = discover_and_plan(cfg, roots)
    stop_progress = track_progress()  # the run's progress artifact, until the files are done
    try:
        batch_steps.announce(plan, logger)
        jobs = batch_steps.jobs_of(cfg, plan)
        size = chunk_size_for(len(jobs), settings.workers, cfg.run.chunk_size)
        chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
        results: list[FileOutcome] = []
        if chunks:
            task_runner = _task_runner(settings.runner, settings.workers, dask_address)
            for chunk_results in _chunks_despite_the_api(chunks, settings, task_runner):
                results.extend(chunk_results)
    finally:
        stop_progress()

    outcomes, deferred_reason = batch_steps.outcomes_of(plan, results)
    row = publish(cfg, run, outcomes)
    summary, verdict = batch_steps.summarise(
        cfg, run, plan, outcomes, row, deferred_reason, lambda: diff_revisions(cfg, run["run_id"], settings), logger
    )
    if prefect_api.reachable():  # else each would be retried for a minute, and lost anyway
        create_run_artifacts(cfg.out, summary, outcomes)
    else:
        logger.error("run artifacts not created: %s", prefect_api.lost_message())
    message = summary["message"]
    notify_run(cfg, summary)
    logger.info("%s", message, extra={"event": "run.finished"})  # file names are data, never a format
    if verdict.failed:
        return Failed(message=message, data=FilesFailed(message, summary))
    return Completed(message=message, data=summary)


def _chunks_despite_the_api(chunks: list[list[Job]], settings: RunSettings, task_runner) -> list[list[FileOutcome]]:
    """The chunks' results, through the `cadpipe-chunks` subflow. When the Prefect server goes away
    the subflow cannot report its end (or start): the results of the chunks this process ran are
    kept, the others run here without the subflow, and the run goes on to the catalog."""
    try:
        return chunks_subflow(chunks, settings, task_runner)
    except Exception as exc:
        if prefect_api.reachable():
            raise
        get_run_logger().error("%s; the files and the catalog go on without it", prefect_api.lost_message(exc))
        with _results_lock:
            done = {i: _chunk_results.get((settings.run_id or "", i)) for i in range(len(chunks))}
        missing = [i for i, results in done.items() if results is None]
        here = dataclasses.replace(settings, runner="processes")  # also what a Dask cluster did not report
        with ThreadPoolExecutor(max_workers=max(2, settings.workers * 2)) as pool:
            futures = {
                i: pool.submit(contextvars.copy_context().run, process_chunk.fn, i, chunks[i], here) for i in missing
            }
            for i, future in futures.items():
                done[i] = future.result()
        return [done[i] or [] for i in range(len(chunks))]  # every chunk ran here or before
    finally:
        with _results_lock:
            for i in range(len(chunks)):
                _chunk_results.pop((settings.run_id or "", i), None)


# Where they were before the steps moved to flows/batch_steps.py.
finished_summary = batch_steps.finished_summary
unreadable_result = batch_steps.unreadable_result
as_read = batch_steps.as_read
new_run_id = batch_steps.new_run_id
completed_work = batch_steps.completed_work
