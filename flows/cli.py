"""`cadpipe` command line: the batch flow with a progress bar and a summary (flows/terminal.py).

Exit codes, for every command: 0 done (every file ok, or only known failures: engine/failures.py),
1 a file failed (per `[run] fail_on`), 2 a usage or configuration mistake (found before anything
starts), 3 the batch could not run (the Prefect server does not answer, a Dask cluster cannot
isolate files, part of the batch could not be processed). Errors are one line; set
CADPIPE_DEBUG=1 for the traceback of an unexpected one.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import posixpath
from typing import Any, NoReturn

from rich.text import Text

from documents.names import printable, to_text
from documents.process_exit import run_then_exit
from engine.config import FAIL_ON, ConfigError, check_roots, load_config
from flows import temporary_server
from flows.terminal import ProgressBar, Shown, labelled, print_json, print_summary, progress_bar, stderr_console

console = stderr_console()


class CommandFailed(Exception):
    """A command that cannot go on: its one-line reason and exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def positive_int(text: str) -> int:
    """A count given on the command line: a whole number of at least 1 (omit it for the default)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (omit the option for the default), not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Every subcommand's arguments; cheap to build (the subcommands import what they need)."""
    parser = argparse.ArgumentParser(prog="cadpipe", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="convert, measure and catalogue CAD files (only what is missing or stale)")
    run.add_argument("sources", nargs="*", metavar="SOURCE", help="folders or files (default: the config's inputs)")
    run.add_argument("--out", help="output root (default: the config's output.root)")
    run.add_argument("--config", help="config file (default: cadpipe.toml of the repository)")
    run.add_argument("--runner", choices=["processes", "dask"], help="where chunks run (default: config)")
    run.add_argument("--workers", type=positive_int, help="worker processes (default: one per core)")
    run.add_argument("--dask-address", help="scheduler of an existing Dask cluster, e.g. tcp://host:8786")
    run.add_argument("--chunk-size", type=positive_int, help="files per Prefect task run (default: automatic)")
    run.add_argument(
        "--fail-on",
        choices=FAIL_ON,
        help="which failures fail the run: new (this run's, the default) or any (also known ones)",
    )
    run.add_argument("--quiet", action="store_true", help="print only the summary and the failures")
    run.add_argument("--json", action="store_true", help="print only the summary, as one JSON object")

    failures = sub.add_parser(
        "failures", help="list the files the catalog records as failed, with how long they have been failing"
    )
    failures.add_argument("--out", help="output root (default: the config's output.root)")
    failures.add_argument("--config", help="config file (default: cadpipe.toml of the repository)")
    failures.add_argument("--json", action="store_true", help="print them as one JSON list")

    watch = sub.add_parser(
        "watch", help="process CAD files dropped into folders as they arrive (until stopped with Ctrl-C)"
    )
    watch.add_argument(
        "folders", nargs="*", metavar="FOLDER", help="drop folders (default: the config's watch.folders)"
    )
    watch.add_argument("--out", help="output root (default: the config's output.root)")
    watch.add_argument("--config", help="config file (default: cadpipe.toml of the repository)")
    watch.add_argument("--poll", action="store_true", help="poll instead of change events (network shares)")

    apply = sub.add_parser(
        "apply",
        help="apply a recipe of edits to the DXF drawings of a library (see editors/recipe.py)",
        description="Apply a YAML recipe of declarative edits to the DXF drawings of a library.",
    )
    apply.add_argument("recipe", metavar="RECIPE", help="recipe file (YAML)")
    apply.add_argument("--library", required=True, metavar="DIR", help="folder of drawings the recipe selects from")
    apply.add_argument("--out", help="output root: revisions/ and catalog/ (default: the config's output.root)")
    apply.add_argument("--dry-run", action="store_true", help="print each change, write nothing")
    apply.add_argument("--in-place", action="store_true", help="edit the library's files (needs --backup)")
    apply.add_argument("--backup", metavar="DIR", help="with --in-place: originals are copied to DIR/<run id>/ first")
    apply.add_argument("--config", help="config file (default: cadpipe.toml of the repository)")
    apply.add_argument("--workers", type=positive_int, help="worker processes (default: one per core)")
    apply.add_argument("--no-catalog", action="store_true", help="do not re-catalogue the edited drawings")
    apply.add_argument("--quiet", action="store_true", help="only failures and the summary, not each change")

    search = sub.add_parser(
        "search",
        help="find words in the catalogued drawings: texts, attributes, BOM rows, title blocks",
        description="Search the catalog's full-text index (OUT/catalog/search.sqlite, built by every run). "
        'Every word must occur in one entry, as a word or the start of one; "quoted words" as a phrase.',
    )
    search.add_argument("query", metavar="QUERY", help='words to find, e.g. "M6 bolt"')
    search.add_argument(
        "--in",
        dest="scopes",
        action="append",
        choices=["texts", "attributes", "bom", "title"],
        help="search only there (repeat for several; default: everywhere)",
    )
    search.add_argument("--json", action="store_true", help="print the hits as a JSON list")
    search.add_argument("--limit", type=positive_int, default=50, help="at most this many hits (default 50)")
    search.add_argument("--out", help="output root holding the catalog (default: the config's output.root)")
    search.add_argument("--config", help="config file (default: cadpipe.toml of the repository)")

    from flows import catalog_command  # light: no Prefect

    catalog_command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # a usage mistake exits 2 here
    # This machine may have no route out: Prefect's usage telemetry would only log DNS errors.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")  # and the client's (its first-run notice on the terminal)
    # Without a configured server a temporary one is started (ours for `run`, Prefect's for `watch`
    # and `apply`); on a busy 2-core machine that can take longer than Prefect's default 20 s wait,
    # and one of Prefect's that timed out is left running.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    try:
        return _command(args)
    except CommandFailed as exc:
        console.print(labelled("cadpipe:", "red", printable(str(exc))))
        return exc.exit_code
    except KeyboardInterrupt:
        console.print(labelled("cadpipe:", "red", "interrupted"))
        return 130
    except Exception as exc:  # a fault of ours or of the machine: never exit 1, which means "a file failed"
        if os.environ.get("CADPIPE_DEBUG"):
            raise
        console.print(
            labelled(
                "cadpipe:",
                "red",
                f"{type(exc).__name__}: {printable(str(exc))} (set CADPIPE_DEBUG=1 for the traceback)",
            )
        )
        return 3


def _command(args: argparse.Namespace) -> int:
    if args.command == "run":
        return run_command(args)
    if args.command == "failures":
        return failures_command(args)
    if args.command == "watch":
        from flows import watch

        return watch.run(args)
    if args.command == "apply":
        from flows import apply

        return apply.run(args)
    if args.command == "catalog":
        from flows import catalog_command

        return catalog_command.run(args)
    if args.command == "search":
        return search_command(args)
    return 2


def failures_command(args: argparse.Namespace) -> int:
    from engine.catalog import Catalog
    from flows.terminal import print_failures

    try:
        cfg = load_config(args.config, out=to_text(args.out) if args.out else None)
    except ConfigError as exc:
        raise CommandFailed(f"configuration error: {exc}", 2) from None
    catalog = Catalog(cfg.out)
    if not (catalog.table_path("files").exists() or (catalog.dir / "files.parquet").exists()):
        raise CommandFailed(f"no catalog at {to_text(catalog.dir)}: give the output root of a run with --out", 2)
    print_failures(catalog.failures(), to_text(cfg.out), as_json=args.json)
    return 0


def search_command(args: argparse.Namespace) -> int:
    """Print the hits, best first; exit 0 with hits, 1 without, 2 when there is no index to ask."""
    import json

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from engine.search_index import SearchError, search

    try:
        cfg = load_config(args.config, out=to_text(args.out) if args.out else None)
        hits = search(cfg.out, args.query, args.scopes or (), args.limit)
    except (ConfigError, SearchError) as exc:
        raise CommandFailed(f"search: {exc}", 2) from None
    if args.json:
        print(json.dumps([h.as_dict() for h in hits], ensure_ascii=False, indent=1))
        return 0 if hits else 1
    if not hits:
        console.print(Text(f"nothing found for {args.query!r}"))
        return 1
    table = Table(title=f"{len(hits)} hits for {args.query!r}", show_lines=False)
    for column in ("drawing", "layout", "handle", "what", "text", "output"):
        table.add_column(column, overflow="fold")
    for h in hits:
        table.add_row(
            Text(posixpath.join(h.source_root, h.path)),
            Text(h.layout or ""),
            Text(h.handle or ""),
            Text(h.label),
            marked(h.snippet),
            Text(h.output or h.datasheet),
        )
    Console(markup=False, highlight=False).print(table)
    return 0


def marked(snippet: str):
    """A snippet with its «matched» words highlighted (drawing text: never markup)."""
    from rich.text import Text

    text = Text()
    for i, part in enumerate(snippet.replace("»", "«").split("«")):
        text.append(part, style="bold yellow" if i % 2 else "")
    return text


def run_command(args: argparse.Namespace) -> int:
    if args.dask_address and not args.runner:
        args.runner = "dask"
    params = dict(  # Prefect parameters are JSON: paths in the catalog's text form (documents/names.py)
        sources=[to_text(s) for s in args.sources] or None,
        out=to_text(args.out) if args.out else None,
        config=args.config,
        runner=args.runner,
        workers=args.workers,
        dask_address=args.dask_address,
        chunk_size=args.chunk_size,
        fail_on=args.fail_on,
    )
    # Check the config and sources before starting Prefect: a typo should cost a second, not a server start.
    try:
        chosen = (("runner", args.runner), ("workers", args.workers), ("chunk_size", args.chunk_size))
        overrides = {"run": {k: v for k, v in (*chosen, ("fail_on", args.fail_on)) if v}}
        cfg = load_config(args.config, sources=params["sources"], out=params["out"], overrides=overrides)
        check_roots(cfg.sources, cfg.out)
    except ConfigError as exc:
        raise CommandFailed(f"configuration error: {exc}", 2) from None
    missing = [to_text(s) for s in cfg.sources if not s.exists()]
    if missing:
        raise CommandFailed(f"input not found: {', '.join(missing)}", 2)
    from flows import batch_steps  # light: no Prefect

    if not temporary_server.surely_unconfigured():
        # Before any heavy import: the server's start-up then runs beside them (flows/temporary_server.py).
        # It stops at exit, after Prefect has sent its last logs and events (Prefect's exit hooks run first).
        server = temporary_server.launch_unless_configured()
        url = os.environ.get("PREFECT_API_URL")
        if not url:  # a server a settings file may name: known once Prefect has read them
            return _run_batch(args, params, cfg, server)
        from flows import prefect_api  # httpx only: the server's answer decides before a file starts

        problem = prefect_api.unreachable(url=url)
        if problem:
            raise CommandFailed(problem, 3)
        return _run_planned(args, params, cfg, server, batch_steps.plan_run(cfg))
    # The embedded default: plan first, without Prefect. A run with no file for the workers (an
    # unchanged rerun) is finished here without a Prefect server; a first run into an output root
    # (no catalog yet: every file found is work) starts the server at once, beside the planning.
    server = None if os.path.isdir(cfg.out / "catalog") else temporary_server.TemporaryServer()
    planned = batch_steps.plan_run(cfg)
    if not planned.has_work and not batch_steps.needs_prefect(cfg):
        if server is not None:
            server.stop()
        return _run_without_workers(args, cfg, planned)
    if server is None:
        server = temporary_server.TemporaryServer()
    return _run_planned(args, params, cfg, server, planned)


def _run_planned(args: argparse.Namespace, params: dict, cfg, server, planned) -> int:
    """The batch flow on a plan made here, before Prefect is imported. The workers start on its
    files at once, while Prefect loads, the server starts and the flow run begins (seconds, with
    a core idle otherwise); the flow's discover-and-plan task takes the plan, its chunks take
    those files as they run."""
    from flows import batch_steps

    batch_steps.hand_over(cfg, planned)
    batch_steps.start_files_early(cfg, planned)
    try:
        return _run_batch(args, params, cfg, server)
    finally:
        batch_steps.drop_early_files(cfg)  # a run refused or lost at its start leaves none running


def _warm_workers(cfg) -> None:
    """Start the worker processes now: they load their libraries while the server starts."""
    from engine.executor import run_settings, shared_pool
    from engine.work import BATCH_WORK

    settings = run_settings(cfg)
    if settings.runner == "processes":
        shared_pool(BATCH_WORK, settings.workers, settings.memory_mb).warm_up()


def _run_without_workers(args: argparse.Namespace, cfg, planned) -> int:
    """A run whose plan has no file for the workers, on the embedded default: finished in this
    process without Prefect (flows/batch_steps.py); its log lines printed as Prefect's would be."""
    import logging

    from flows import batch_steps, progress

    quiet = args.quiet or args.json
    logger = logging.getLogger("cadpipe.batch")
    shown = logging.StreamHandler(_ConsoleStream())
    shown.setLevel(os.environ.get("PREFECT_LOGGING_LEVEL", "INFO").upper())
    shown.setFormatter(logging.Formatter("%(asctime)s.%(msecs)03d | %(levelname)-7s | %(message)s", "%H:%M:%S"))
    shown.addFilter(Shown(quiet))
    ours = logging.getLogger("cadpipe")
    bar = progress_bar(console, shown=not quiet and console.is_terminal)
    unsubscribe = progress.subscribe(ProgressBar(bar))
    ours.addHandler(shown)
    try:
        with bar:
            summary = batch_steps.finish_without_workers(cfg, planned, logger)
    finally:
        ours.removeHandler(shown)
        unsubscribe()
    _show(summary, args)
    return int(summary.get("exit_code", 1 if summary["failed"] else 0))


class _ConsoleStream:
    """A stream for a logging handler that prints each line through the (bar's) console."""

    def write(self, text: str) -> None:
        if text.strip():
            console.print(Text(text.rstrip("\n")))

    def flush(self) -> None:
        pass


def _run_batch(args: argparse.Namespace, params: dict, cfg, server) -> int:
    from prefect.settings import temporary_settings

    from flows import prefect_api, progress
    from flows.batch import batch
    from flows.outcomes import RunRefused, summary_of
    from flows.terminal import prefect_logs_through

    server = temporary_server.keep_if_needed(server)
    if server is None:  # a configured server: it must answer, or nothing can run
        problem = prefect_api.unreachable()
        if problem:
            raise CommandFailed(problem, 3)
    _warm_workers(cfg)  # a no-op job if run_command warmed them already
    prefect_settings: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if server is not None:
        try:
            server.wait_ready(float(os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"]))
        except RuntimeError as exc:
            raise CommandFailed(f"batch did not start: {exc}", 3) from None
        prefect_settings = temporary_settings(updates=server.prefect_settings())
    quiet = args.quiet or args.json
    bar = progress_bar(console, shown=not quiet and console.is_terminal)
    unsubscribe = progress.subscribe(ProgressBar(bar))
    try:
        with prefect_settings, prefect_logs_through(console, quiet):
            try:
                with bar:
                    state = prefect_api.synchronous(batch(**params, return_state=True))
            except Exception as exc:  # the flow run could not even report its end
                return _lost(exc, args)
            finally:
                if server is not None:  # while it still listens: at exit it is gone
                    temporary_server.send_what_is_queued()
    finally:
        unsubscribe()
        if server is not None:
            server.stop()  # now, not at exit: the summary below needs no server
    result = state.result(raise_on_failure=False)
    summary = summary_of(result)
    if summary is None:
        if isinstance(result, RunRefused):  # refused at its start: nothing was touched
            raise CommandFailed(str(result), result.exit_code)
        raise CommandFailed(f"batch did not complete: {state.message}", 3)
    _show(summary, args)
    return int(summary.get("exit_code", 1 if summary["failed"] else 0))


def _show(summary: dict, args: argparse.Namespace) -> None:
    if args.json:
        print_json(summary)
    else:
        print_summary(summary)


def _lost(exc: Exception, args: argparse.Namespace) -> int:
    """Exit 3 with the reason. A run whose Prefect server went away still processed and
    published every file (flows/batch.py): its summary is shown, and the lost server named."""
    from flows import prefect_api
    from flows.batch import finished_summary

    summary = finished_summary()
    if summary is None or prefect_api.reachable():
        raise CommandFailed(f"batch did not complete: {type(exc).__name__}: {exc}", 3)
    _show(summary, args)
    console.print(
        labelled(
            "batch did not complete:",
            "red",
            f"{prefect_api.lost_message(exc)}; every file was processed and the catalog is complete, "
            "but Prefect's record of the run is not",
        )
    )
    prefect_api.drop_undeliverable()  # else the exit waits for each queued event to fail to send
    return 3


def entry() -> NoReturn:
    """The `cadpipe` command: `main`, then the process ends without Python's interpreter teardown,
    which Arrow's thread pools can abort after the work is done (documents/process_exit.py)."""
    run_then_exit(main)


if __name__ == "__main__":
    entry()
