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
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.futures import as_completed
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from documents.contracts import FileOutcome, Job
from documents.names import to_text
from engine.catalog import Catalog, Outcome, maintenance_rule, now_iso
from engine.config import Config, ConfigError, check_roots, fingerprint, load_config
from engine.deliverables import publish_deliverables
from engine.discover import InputFile, Unreadable, scan, sources_without_inputs
from engine.docs import publish_docs
from engine.executor import RunSettings, run_settings, shared_pool
from engine.failures import Verdict
from engine.plan import Plan, make_plan, work_id
from engine.revision_diff import record_changes
from engine.version import pipeline_version
from engine.work import BATCH_WORK, is_complete, sweep_abandoned
from flows import dask_cluster, deployments, logs, prefect_api, progress
from flows.artifacts import create_run_artifacts, track_progress
from flows.notify import notify_crash, notify_run
from flows.outcomes import FilesFailed, RunRefused, quiet_expected_outcomes

MAX_TASK_RUNS = 200
quiet_expected_outcomes()  # a Failed run with a reason is not a crash: no traceback (flows/outcomes.py)

# Results of the chunks this process ran, by (run_id, chunk index): what a run keeps when the
# Prefect server goes away under it and the subflow of its chunks cannot report its end.
_chunk_results: dict[tuple[str, int], list[FileOutcome]] = {}
_finished: dict[str, dict] = {}  # run_id -> summary of the latest run this process published
_results_lock = threading.Lock()


def chunk_size_for(files: int, workers: int, configured: int = 0) -> int:
    """Files per task run: few enough task runs for the server, enough chunks to keep workers busy."""
    if configured:
        return configured
    return max(math.ceil(files / MAX_TASK_RUNS), min(50, math.ceil(files / (workers * 4))), 1)


def completed_work(out: Path, inputs: list[InputFile], cfg: Config, version: str) -> set[str]:
    readable = [(f.sha256, f.format) for f in inputs if f.sha256 and f.format]
    keys = {fmt: cfg.options_key(fmt) for fmt in {fmt for _, fmt in readable}}  # a fingerprint each: once per format
    ids = {work_id(sha, keys[fmt], version) for sha, fmt in readable}
    return {wid for wid in ids if is_complete(out, wid)}


@task(name="discover-and-plan")
def discover_and_plan(cfg: Config, roots: list[str] | None = None) -> tuple[list[InputFile], Plan]:
    """`roots`: folders (text form) that name identities besides the sources (the watcher's drop folders)."""
    catalog = Catalog(cfg.out)
    abandoned = sweep_abandoned(cfg.out)
    if abandoned:
        get_run_logger().info("removed %d unfinished output folders of earlier, interrupted runs", len(abandoned))
    recorded = catalog.recorded(cfg.limits.memory_mb)  # read once: discovery and the plan
    found = scan(
        list(cfg.sources),
        exclude=list(cfg.inputs.exclude),
        formats=list(cfg.inputs.formats),
        known=recorded,
        skip=[cfg.out],
        roots=[*(roots or []), *catalog.roots()],
        follow_symlinks=cfg.inputs.follow_symlinks,
    )
    inputs = found.inputs
    version = pipeline_version()
    plan = make_plan(
        inputs,
        options_for=cfg.options_for,
        options_key=cfg.options_key,
        version=version,
        recorded=recorded,
        completed=completed_work(cfg.out, inputs, cfg, version),
    )
    plan.unreadable = found.problems
    for warning in sources_without_inputs(cfg.sources, inputs, found.problems, list(cfg.inputs.formats)):
        get_run_logger().warning("%s", warning, extra={"event": "source.empty"})
        plan.warnings.append(warning)
    get_run_logger().info(
        "%d input files: %d to process, %d already done elsewhere, %d unchanged, %d failed before (not retried), "
        "%d unreadable",
        plan.total,
        len(plan.todo),
        len(plan.reuse),
        len(plan.unchanged),
        len(plan.still_failed),
        len(plan.unreadable),
    )
    return inputs, plan


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
    walked = [to_text(os.path.realpath(s)) for s in cfg.sources if s.is_dir()]
    catalog = Catalog(cfg.out, maintenance_rule(cfg.catalog))
    return catalog.publish(run, outcomes, walked, cfg.inputs.follow_symlinks)


@task(name="revision-diff")
def diff_revisions(cfg: Config, run_id: str, settings: RunSettings) -> list[dict]:
    """Compare every drawing that came back with new content with its version before (the
    `changes` table); the diffs and overlays run in the batch's worker pool, under the file limits."""
    pool = shared_pool(BATCH_WORK, settings.workers, settings.memory_mb)

    def call(function, arguments):
        return pool.call_each(function, list(arguments), settings.timeout_s)

    rows = record_changes(cfg.out, run_id, call)
    if rows:
        get_run_logger().info("%d drawings changed since their last version", len(rows))
    return rows


def _task_runner(runner: str, workers: int, dask_address: str | None):
    if runner == "dask":
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=dask_address) if dask_address else DaskTaskRunner()
    # Threads only wait on the process pool; two chunks per worker keep the pool's queue full.
    return ThreadPoolTaskRunner(max_workers=max(2, workers * 2))


@flow(name="cadpipe-chunks")
def run_chunks(chunks: list[list[Job]], settings: RunSettings) -> list[list[FileOutcome]]:
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
    run: dict[str, Any] = {
        # A Retry of a flow run is that run again: its row in `runs` is updated, not added to.
        "run_id": Catalog(cfg.out).run_of_flow_run(flow_run_id) or new_run_id(),
        "flow_run_id": flow_run_id,
        "attempt": flow_run.run_count or 1,
        "started_at": now_iso(),
        "sources": [to_text(s) for s in cfg.sources],
        "pipeline_version": pipeline_version(),
        "config": fingerprint(cfg.raw),
    }
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
        progress.planned(plan.total, len(plan.todo))
        for item in plan.reuse + plan.unchanged + plan.still_failed:
            progress.file_done(item.input.path, None)
        for problem in plan.unreadable:  # failed already: said like any other failed file
            result = unreadable_result(problem)
            logs.file_event(logger, problem, result)
            progress.file_done(problem.path, result)

        out_dir = to_text(cfg.out)
        jobs = [item.to_job(out_dir, follow_symlinks=cfg.inputs.follow_symlinks) for item in plan.todo]
        size = chunk_size_for(len(jobs), settings.workers, cfg.run.chunk_size)
        chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
        results: list[FileOutcome] = []
        if chunks:
            task_runner = _task_runner(settings.runner, settings.workers, dask_address)
            for chunk_results in _chunks_despite_the_api(chunks, settings, task_runner):
                results.extend(chunk_results)
    finally:
        stop_progress()

    outcomes = [Outcome(item.input, item.work_id, "unchanged") for item in plan.unchanged]
    outcomes += [Outcome(item.input, item.work_id, "failed", {"unchanged": True}) for item in plan.still_failed]
    outcomes += [Outcome(item.input, item.work_id, "reused") for item in plan.reuse]
    deferred_reason = None
    for item, result in zip(plan.todo, results):
        if result.status == "deferred":  # its chunk could not run: left as recorded
            outcomes.append(Outcome(item.input, item.work_id, "deferred", result.record()))
            deferred_reason = deferred_reason or result.error_message
            continue
        state = "processed" if result.ok else "failed"
        outcomes.append(Outcome(as_read(item.input, result), result.work_id or item.work_id, state, result.record()))
    outcomes += [Outcome(p.as_input(), None, "failed", unreadable_result(p).record()) for p in plan.unreadable]
    row = publish(cfg, run, outcomes)
    catalog = Catalog(cfg.out)
    failed_keys = {o.input.key for o in outcomes if o.state == "failed"}
    found = catalog.failures(failed_keys, catalog.known_failures(outcomes, run["run_id"]))
    verdict = Verdict.of(cfg.run.fail_on, found, row["deferred"], deferred_reason)
    summary = {
        **row,
        "out": out_dir,
        "failures": [f.error_message for f in found],
        "failed_files": [f.to_dict() for f in found],
        "fail_on": verdict.fail_on,
        "exit_code": verdict.exit_code,
        "warnings": list(plan.warnings),
        "message": verdict.message(row),
    }
    summary["changes"] = diff_revisions(cfg, run["run_id"], settings)
    summary["documents"] = publish_docs(cfg, row, [o for o in outcomes if o.state != "deferred"])
    summary["deliverables"] = _publish_deliverables(cfg, logger)
    with _results_lock:
        _finished.clear()  # the latest only: a watcher runs batch after batch in one process
        _finished[run["run_id"]] = summary
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


def _publish_deliverables(cfg: Config, logger) -> dict:
    """The register, BOM exports and PDF sets (engine/deliverables.py), after the docs. A fault
    here is the output root's, not a file's: it is said, and the run's record stands."""
    try:
        built = publish_deliverables(cfg)
    except Exception as exc:
        logger.error("deliverables not built: %s: %s", type(exc).__name__, exc, extra={"event": "deliverables.failed"})
        return {"written": [], "removed": [], "unchanged": 0, "problems": [f"{type(exc).__name__}: {exc}"]}
    for problem in built.problems:
        logger.warning("deliverables: %s", problem, extra={"event": "deliverables.problem"})
    if built.written or built.removed:
        logger.info(
            "deliverables: %d files written, %d removed, %d up to date",
            len(built.written),
            len(built.removed),
            built.unchanged,
            extra={"event": "deliverables.built"},
        )
    return dataclasses.asdict(built)


def _chunks_despite_the_api(chunks: list[list[Job]], settings: RunSettings, task_runner) -> list[list[FileOutcome]]:
    """The chunks' results, through the `cadpipe-chunks` subflow. When the Prefect server goes away
    the subflow cannot report its end (or start): the results of the chunks this process ran are
    kept, the others run here without the subflow, and the run goes on to the catalog."""
    try:
        return run_chunks.with_options(task_runner=task_runner)(chunks, settings)
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


def finished_summary(run_id: str | None = None) -> dict | None:
    """The summary of a run this process published (the latest, without `run_id`): what the
    command line reports when the Prefect server went away before the flow run could end."""
    with _results_lock:
        if run_id is not None:
            return _finished.get(run_id)
        return list(_finished.values())[-1] if _finished else None


def unreadable_result(problem: Unreadable) -> FileOutcome:
    """The failure of something discovery could not take (engine/discover.py: Unreadable)."""
    return FileOutcome(
        status="failed",
        work_id=None,
        stage="discover",
        error_class=problem.error_class,
        error_message=problem.message,
        permanent=problem.permanent,
        attempt=1,  # integers, not nulls: the catalog's columns stay integer
        duration_ms=0,
    )


def as_read(item: InputFile, result: FileOutcome) -> InputFile:
    """The input as the worker found it: a file rewritten since discovery is recorded with the
    content the worker hashed and processed (engine/work.py)."""
    if not result.sha256 or result.sha256 == item.sha256:
        return item
    return dataclasses.replace(
        item,
        sha256=result.sha256,
        format=result.format or item.format,
        size=result.size if result.size is not None else item.size,
        mtime_ns=result.mtime_ns if result.mtime_ns is not None else item.mtime_ns,
    )


def new_run_id() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:8]}"
