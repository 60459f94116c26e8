"""`cadpipe` command line: the batch flow with a progress bar and a summary table."""

from __future__ import annotations

import argparse
import contextlib
import os
import posixpath
import sys
import threading

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from documents.contracts import FileOutcome
from documents.names import to_text
from engine.config import ConfigError, check_roots, load_config
from flows import temporary_server

console = Console(stderr=True)
CHANGES_SHOWN = 20  # changed drawings named in the summary; the report has every one


def labelled(label: str, style: str, message: object) -> Text:
    """`label` in `style`, then `message` as plain text: file names, drawing content and library
    errors are data, never Rich markup (a `[/x]` in a message would otherwise raise)."""
    return Text.assemble((label, style), " ", str(message))


class ProgressBar:
    """Feeds Rich's progress bar from the batch's progress events (thread-safe)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("discovering", total=None)
        self.failed = 0
        self.lock = threading.Lock()

    def planned(self, total: int, todo: int) -> None:
        self.progress.update(self.task, total=total, description=f"{todo} to process")

    def file_done(self, path: str, outcome: FileOutcome | None) -> None:
        with self.lock:
            if outcome is not None and not outcome.ok:
                self.failed += 1
                self.progress.console.print(labelled("failed", "red", outcome.error_message))
            self.progress.advance(self.task)


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
    run.add_argument("--quiet", action="store_true", help="no progress bar")

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
    args = build_parser().parse_args(argv)
    # This machine may have no route out: Prefect's usage telemetry would only log DNS errors.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Without a configured server a temporary one is started (ours for `run`, Prefect's for `watch`
    # and `apply`); on a busy 2-core machine that can take longer than Prefect's default 20 s wait,
    # and one of Prefect's that timed out is left running.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    if args.command == "run":
        return run_command(args)
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


def search_command(args: argparse.Namespace) -> int:
    """Print the hits, best first; exit 0 with hits, 1 without, 2 when there is no index to ask."""
    import json

    from engine.search_index import SearchError, search

    try:
        cfg = load_config(args.config, out=to_text(args.out) if args.out else None)
        hits = search(cfg.out, args.query, args.scopes or (), args.limit)
    except (ConfigError, SearchError) as exc:
        console.print(labelled("search:", "red", exc))
        return 2
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
    Console().print(table)
    return 0


def marked(snippet: str) -> Text:
    """A snippet with its «matched» words highlighted (drawing text: never markup)."""
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
    )
    # Check the config and sources before starting Prefect: a typo should cost a second, not a server start.
    try:
        chosen = (("runner", args.runner), ("workers", args.workers), ("chunk_size", args.chunk_size))
        overrides = {"run": {k: v for k, v in chosen if v}}
        cfg = load_config(args.config, sources=params["sources"], out=params["out"], overrides=overrides)
        check_roots(cfg.sources, cfg.out)
    except ConfigError as exc:
        console.print(labelled("configuration error:", "red", exc))
        return 2
    missing = [to_text(s) for s in cfg.sources if not s.exists()]
    if missing:
        console.print(labelled("input not found:", "red", ", ".join(missing)))
        return 2
    # Before any heavy import: the server's start-up then runs beside them (flows/temporary_server.py).
    # It stops at exit, after Prefect has sent its last logs and events (Prefect's exit hooks run first).
    server = temporary_server.launch_unless_configured()
    return _run_batch(args, params, cfg, server)


def _run_batch(args: argparse.Namespace, params: dict, cfg, server) -> int:
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

    from engine.executor import run_settings, shared_pool
    from engine.work import BATCH_WORK
    from flows import prefect_api, progress
    from flows.batch import batch

    server = temporary_server.keep_if_needed(server)
    settings = run_settings(cfg)
    if settings.runner == "processes":  # workers load their libraries while the server starts
        shared_pool(BATCH_WORK, settings.workers, settings.memory_mb).warm_up()
    prefect_settings: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
    if server is not None:
        try:
            server.wait_ready(float(os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"]))
        except RuntimeError as exc:
            console.print(labelled("batch did not start:", "red", exc))
            return 3
        # No UI link in the logs: the temporary server has no UI and ends with this command.
        prefect_settings = temporary_settings(updates={PREFECT_API_URL: server.api_url, PREFECT_UI_URL: ""})
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=args.quiet or not console.is_terminal,
    )
    listener = ProgressBar(bar)
    unsubscribe = progress.subscribe(listener)
    try:
        with prefect_settings:
            try:
                with bar:
                    state = prefect_api.synchronous(batch(**params, return_state=True))
            except Exception as exc:  # the flow run could not even report its end
                return _lost(exc)
    finally:
        unsubscribe()
    summary = state.result(raise_on_failure=False)
    if not isinstance(summary, dict):  # the flow itself crashed before publishing
        console.print(labelled("batch did not complete:", "red", state.message))
        return 3
    print_summary(summary)
    return 1 if summary["failed"] else 0


def _lost(exc: Exception) -> int:
    """Exit 3 with the reason. A run whose Prefect server went away still processed and
    published every file (flows/batch.py): its summary is shown, and the lost server named."""
    from flows import prefect_api
    from flows.batch import finished_summary

    summary = finished_summary()
    if summary is None or prefect_api.reachable():
        console.print(labelled("batch did not complete:", "red", f"{type(exc).__name__}: {exc}"))
        return 3
    print_summary(summary)
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


def print_summary(summary: dict) -> None:
    table = Table(title=f"cadpipe run {summary['run_id']}", show_header=True)
    for column in ("files seen", "processed", "unchanged", "failed"):
        table.add_column(column, justify="right")
    table.add_row(
        str(summary["files_seen"]),
        str(summary["processed"]),
        str(summary["unchanged"] + summary["reused"]),
        f"[red]{summary['failed']}[/red]" if summary["failed"] else "0",
    )
    out = Console()
    out.print(table)
    for message in summary["failures"]:
        out.print(Text("  ").append(labelled("failed", "red", message)))
    changes = summary.get("changes") or []
    for change in changes[:CHANGES_SHOWN]:
        out.print(Text("  ").append(labelled("changed", "yellow", f"{change['path']}: {change['summary']}")))
    if len(changes) > CHANGES_SHOWN:
        out.print(Text(f"  and {len(changes) - CHANGES_SHOWN} more changed drawings (the report lists them)"))
    out.print(Text(f"catalog: {os.path.join(summary['out'], 'catalog')}"))
    if summary.get("documents"):
        out.print(Text(f"report:  {os.path.join(summary['out'], summary['documents'][0])}"))
        out.print(Text(f"gallery: {os.path.join(summary['out'], 'docs', 'gallery.html')}"))
    deliverables = summary.get("deliverables") or {}
    register = os.path.join(summary["out"], "register.xlsx")
    if os.path.isfile(register):
        out.print(Text(f"register: {register}"))
    for problem in deliverables.get("problems", []):
        out.print(Text("  ").append(labelled("deliverables", "yellow", problem)))


if __name__ == "__main__":
    sys.exit(main())
