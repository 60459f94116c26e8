"""The steps of a batch run that need no Prefect: plan it, then after its files publish it,
judge it, document it and tell others (flows/batch.py runs them in the `cadpipe-batch` flow).

Without Prefect so that `cadpipe run` can plan before any Prefect server exists, and finish a run
whose plan has no file to process without starting one (flows/cli.py: an unchanged rerun on the
embedded default). A run is the same whichever runs it: its `runs` row, JSON log lines, summary,
verdict (`[run] fail_on`) and webhooks; `logger` is the flow run's logger in a flow, else ours.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

from documents.contracts import FileOutcome, Job
from documents.names import to_text
from engine.catalog import Catalog, Outcome, maintenance_rule, now_iso
from engine.config import Config, fingerprint
from engine.discover import InputFile, Unreadable, scan, sources_without_inputs
from engine.failures import Verdict
from engine.plan import Plan, make_plan, work_id
from engine.version import pipeline_version
from engine.work import is_complete, sweep_abandoned
from flows import logs, progress

Logger = logging.Logger | logging.LoggerAdapter

_finished: dict[str, dict] = {}  # run_id -> summary of the latest run this process published
_handed: dict[tuple, Planned] = {}  # plans made before the flow, by the run they are for
_lock = threading.Lock()


@dataclasses.dataclass
class Planned:
    """A run's discovery and plan, and what planning did (said in the run's log by `log_plan`)."""

    inputs: list[InputFile]
    plan: Plan
    abandoned: int = 0  # unfinished output folders of interrupted runs, removed

    @property
    def has_work(self) -> bool:
        """Files for the workers: an unchanged, reused, known-failed or unreadable file needs none."""
        return bool(self.plan.todo)


def completed_work(out, inputs: list[InputFile], cfg: Config, version: str) -> set[str]:
    readable = [(f.sha256, f.format) for f in inputs if f.sha256 and f.format]
    keys = {fmt: cfg.options_key(fmt) for fmt in {fmt for _, fmt in readable}}  # a fingerprint each: once per format
    ids = {work_id(sha, keys[fmt], version) for sha, fmt in readable}
    return {wid for wid in ids if is_complete(out, wid)}


def plan_run(cfg: Config, roots: list[str] | None = None) -> Planned:
    """Discover and plan (hashing only what the catalog does not know unchanged by size and time).
    `roots`: folders (text form) that name identities besides the sources (the watcher's drop folders)."""
    catalog = Catalog(cfg.out)
    abandoned = sweep_abandoned(cfg.out)
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
    plan.warnings.extend(sources_without_inputs(cfg.sources, inputs, found.problems, list(cfg.inputs.formats)))
    return Planned(inputs, plan, len(abandoned))


def log_plan(planned: Planned, logger: Logger) -> None:
    plan = planned.plan
    if planned.abandoned:
        logger.info("removed %d unfinished output folders of earlier, interrupted runs", planned.abandoned)
    for warning in plan.warnings:
        logger.warning("%s", warning, extra={"event": "source.empty"})
    logger.info(
        "%d input files: %d to process, %d already done elsewhere, %d unchanged, %d failed before (not retried), "
        "%d unreadable",
        plan.total,
        len(plan.todo),
        len(plan.reuse),
        len(plan.unchanged),
        len(plan.still_failed),
        len(plan.unreadable),
    )


def _run_key(cfg: Config, roots: list[str] | None) -> tuple:
    return (to_text(cfg.out), tuple(to_text(s) for s in cfg.sources), fingerprint(cfg.raw), tuple(roots or ()))


def hand_over(cfg: Config, planned: Planned) -> None:
    """Keep a plan made before the flow (by the CLI, while the Prefect server starts) for the flow
    run of this config in this process: `take_plan` gives it once."""
    with _lock:
        _handed.clear()
        _handed[_run_key(cfg, None)] = planned


def jobs_of(cfg: Config, plan: Plan) -> list[Job]:
    """The workers' jobs of a plan, in the plan's order: the order the chunks take them."""
    out_dir = to_text(cfg.out)
    return [item.to_job(out_dir, follow_symlinks=cfg.inputs.follow_symlinks) for item in plan.todo]


def start_files_early(cfg: Config, planned: Planned) -> None:
    """Hand a plan's jobs to this process's worker pool now, before Prefect and its server are
    up: the chunk task runs of the flow take them as they are (engine/executor.py
    `start_early`); `drop_early_files` cancels what no run took."""
    pool = _local_pool(cfg, start=True)
    if pool is not None:
        pool.start_early(jobs_of(cfg, planned.plan), cfg.limits.timeout_s)


def drop_early_files(cfg: Config) -> int:
    """Cancel the jobs `start_files_early` started that no chunk took; how many."""
    pool = _local_pool(cfg, start=False)
    return 0 if pool is None else pool.drop_early()


def _local_pool(cfg: Config, *, start: bool):
    """The batch's worker pool in this process, where files run here (None on Dask): started if
    `start`, else only the one already running (None if there is none)."""
    from engine.executor import run_settings, shared_pool, started_shared_pool
    from engine.work import BATCH_WORK

    settings = run_settings(cfg)
    if settings.runner != "processes":
        return None
    return shared_pool(BATCH_WORK, settings.workers, settings.memory_mb) if start else started_shared_pool(BATCH_WORK)


def take_plan(cfg: Config, roots: list[str] | None = None) -> Planned:
    """The plan handed over for this run, else a new one."""
    with _lock:
        planned = _handed.pop(_run_key(cfg, roots), None)
    return planned if planned is not None else plan_run(cfg, roots)


def new_run(cfg: Config, flow_run_id: str | None, attempt: int = 1) -> dict[str, Any]:
    """The run's row as it starts. A Retry of a flow run is that run again: its row is updated."""
    return {
        "run_id": Catalog(cfg.out).run_of_flow_run(flow_run_id) or new_run_id(),
        "flow_run_id": flow_run_id,
        "attempt": attempt,
        "started_at": now_iso(),
        "sources": [to_text(s) for s in cfg.sources],
        "pipeline_version": pipeline_version(),
        "config": fingerprint(cfg.raw),
    }


def announce(plan: Plan, logger: Logger) -> None:
    """Tell the listeners the plan, and each file that needs no worker; log the unreadable ones."""
    progress.planned(plan.total, len(plan.todo))
    for item in plan.reuse + plan.unchanged + plan.still_failed:
        progress.file_done(item.input.path, None)
    for problem in plan.unreadable:  # failed already: said like any other failed file
        result = unreadable_result(problem)
        logs.file_event(logger, problem, result)
        progress.file_done(problem.path, result)


def outcomes_of(plan: Plan, results: list[FileOutcome]) -> tuple[list[Outcome], str | None]:
    """Every file's outcome for the catalog (`results`: the workers', in the order of `plan.todo`),
    and the reason of the first chunk that could not run."""
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
    return outcomes, deferred_reason


def publish(cfg: Config, run: dict, outcomes: list[Outcome]) -> dict:
    walked = [to_text(os.path.realpath(s)) for s in cfg.sources if s.is_dir()]
    catalog = Catalog(cfg.out, maintenance_rule(cfg.catalog))
    return catalog.publish(run, outcomes, walked, cfg.inputs.follow_symlinks)


def summarise(
    cfg: Config,
    run: dict,
    plan: Plan,
    outcomes: list[Outcome],
    row: dict,
    deferred_reason: str | None,
    changes: Callable[[], list[dict]],
    logger: Logger,
) -> tuple[dict, Verdict]:
    """After the publish: the run's verdict and summary, its revision diffs (`changes()`), its
    documents and deliverables; the summary is kept for `finished_summary`."""
    from engine.docs import publish_docs

    catalog = Catalog(cfg.out)
    failed_keys = {o.input.key for o in outcomes if o.state == "failed"}
    found = catalog.failures(failed_keys, catalog.known_failures(outcomes, run["run_id"]))
    verdict = Verdict.of(cfg.run.fail_on, found, row["deferred"], deferred_reason)
    summary = {
        **row,
        "out": to_text(cfg.out),
        "failures": [f.error_message for f in found],
        "failed_files": [f.to_dict() for f in found],
        "fail_on": verdict.fail_on,
        "exit_code": verdict.exit_code,
        "warnings": list(plan.warnings),
        "message": verdict.message(row),
    }
    summary["changes"] = changes()
    # The deliverables read none of what the docs write: a worker builds them meanwhile.
    beside = _deliverables_beside(cfg)
    summary["documents"] = publish_docs(cfg, row, [o for o in outcomes if o.state != "deferred"])
    summary["deliverables"] = publish_deliverables(cfg, logger, beside)
    with _lock:
        _finished.clear()  # the latest only: a watcher runs batch after batch in one process
        _finished[run["run_id"]] = summary
    return summary, verdict


def _deliverables_beside(cfg: Config) -> Future | None:
    """The deliverables' build started in a worker of the batch's pool, if this process has one
    running (a batch with files; not a run without work, which would wait seconds for one)."""
    from engine.deliverables import publish_deliverables as build

    pool = _local_pool(cfg, start=False)
    return None if pool is None else pool.call_beside(build, cfg)


def publish_deliverables(cfg: Config, logger: Logger, beside: Future | None = None) -> dict:
    """The register, BOM exports and PDF sets (engine/deliverables.py), after the docs or beside
    them (`beside`: their build started in a worker). A fault here is the output root's, not a
    file's: it is said, and the run's record stands."""
    from engine.deliverables import publish_deliverables as build

    try:
        built = _built_beside(beside) if beside is not None else None
        if built is None:  # not started beside, or the worker could not finish it
            built = build(cfg)
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


def _built_beside(beside: Future):
    """What the worker built; None when the worker, not the build, failed: its limits are a
    file's (memory cap), or it died. The build is then done here (it is locked and atomic)."""
    from concurrent.futures import CancelledError
    from concurrent.futures.process import BrokenProcessPool

    from pebble import ProcessExpired

    try:
        return beside.result()
    except (MemoryError, ProcessExpired, BrokenProcessPool, CancelledError):
        return None


def record_changes(cfg: Config, run_id: str, workers: int, memory_mb: int, timeout_s: float, logger: Logger):
    """Compare every drawing that came back with new content with its version before (the
    `changes` table); the diffs and overlays run in the batch's worker pool, under the file limits
    (started only if there is a diff to make)."""
    from engine.executor import shared_pool
    from engine.revision_diff import record_changes as record
    from engine.work import BATCH_WORK

    def call(function, arguments):
        return shared_pool(BATCH_WORK, workers, memory_mb).call_each(function, list(arguments), timeout_s)

    rows = record(cfg.out, run_id, call)
    if rows:
        logger.info("%d drawings changed since their last version", len(rows))
    return rows


def needs_prefect(cfg: Config) -> bool:
    """True when finishing a run needs the Prefect API even without files to run: webhooks
    signed with the secret of a Prefect Secret block (the environment variable not set)."""
    hooks = cfg.raw["webhooks"]
    urls = any(hooks[key] for key in ("batch_completed", "batch_failed", "file_failed"))
    return bool(urls and hooks["secret_block"] and not os.environ.get(hooks["secret_env"] or ""))


def finish_without_workers(cfg: Config, planned: Planned, logger: Logger) -> dict:
    """A whole run whose plan has no file for the workers (`planned.has_work` false), outside any
    flow run: the same `runs` row (no flow run id), JSON log, documents, verdict and webhooks as
    the batch flow's; returns its summary. Revision diffs still pending (of an interrupted run)
    are made in the worker pool, started for them only."""
    from engine.executor import run_settings
    from flows.notify import notify_crash, notify_run

    run = new_run(cfg, None)
    settings = run_settings(cfg, run["run_id"])
    run_log = logs.configure(cfg.out, run["run_id"], stdout=cfg.raw["logs"]["stdout"])
    try:
        plan = planned.plan
        log_plan(planned, logger)
        announce(plan, logger)
        outcomes, deferred_reason = outcomes_of(plan, [])
        row = publish(cfg, run, outcomes)

        def changes() -> list[dict]:
            return record_changes(cfg, run["run_id"], settings.workers, settings.memory_mb, settings.timeout_s, logger)

        summary, _ = summarise(cfg, run, plan, outcomes, row, deferred_reason, changes, logger)
        notify_run(cfg, summary)
        logger.info("%s", summary["message"], extra={"event": "run.finished"})
        return summary
    except BaseException as exc:
        logger.error("batch could not finish: %s: %s", type(exc).__name__, exc, extra={"event": "run.crashed"})
        notify_crash(cfg, run, exc)
        raise
    finally:
        run_log.close()


def finished_summary(run_id: str | None = None) -> dict | None:
    """The summary of a run this process published (the latest, without `run_id`): what the
    command line reports when the Prefect server went away before the flow run could end."""
    with _lock:
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
