"""`cadpipe` command line: the batch flow with a progress bar and a summary table."""

from __future__ import annotations

import argparse
import os
import sys
import threading

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from flows.config import ConfigError, load_config

console = Console(stderr=True)


class ProgressBar:
    """Feeds Rich's progress bar from the batch's progress events (thread-safe)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("discovering", total=None)
        self.failed = 0
        self.lock = threading.Lock()

    def planned(self, total: int, todo: int) -> None:
        self.progress.update(self.task, total=total, description=f"{todo} to process")

    def file_done(self, path: str, result: dict) -> None:
        with self.lock:
            if result.get("status") == "failed":
                self.failed += 1
                self.progress.console.print(f"[red]failed[/red] {result.get('error_message')}")
            self.progress.advance(self.task)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cadpipe", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="convert, measure and catalogue CAD files (only what is missing or stale)")
    run.add_argument("sources", nargs="*", metavar="SOURCE", help="folders or files (default: the config's inputs)")
    run.add_argument("--out", help="output root (default: the config's output.root)")
    run.add_argument("--config", help="config file (default: cadpipe.toml of the repository)")
    run.add_argument("--runner", choices=["processes", "dask"], help="where chunks run (default: config)")
    run.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    run.add_argument("--dask-address", help="scheduler of an existing Dask cluster, e.g. tcp://host:8786")
    run.add_argument("--chunk-size", type=int, help="files per Prefect task run (default: automatic)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    from flows import apply, watch

    watch.add_parser(sub)
    apply.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # This machine may have no route out: Prefect's usage telemetry would only log DNS errors.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Without a configured server Prefect starts a temporary one; on a busy 2-core machine that can
    # take longer than Prefect's default wait.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    if args.command == "run":
        return run_command(args)
    if args.command == "watch":
        from flows import watch

        return watch.run(args)
    if args.command == "apply":
        from flows import apply

        return apply.run(args)
    return 2


def run_command(args: argparse.Namespace) -> int:
    from flows import progress
    from flows.batch import batch

    if args.dask_address and not args.runner:
        args.runner = "dask"
    params = dict(
        sources=args.sources or None,
        out=args.out,
        config=args.config,
        runner=args.runner,
        workers=args.workers,
        dask_address=args.dask_address,
        chunk_size=args.chunk_size,
    )
    # Check the config and sources before starting Prefect: a typo should cost a second, not a server start.
    try:
        overrides = {"run": {k: v for k, v in (("runner", args.runner), ("workers", args.workers)) if v}}
        cfg = load_config(args.config, sources=params["sources"], out=args.out, overrides=overrides)
    except ConfigError as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        return 2
    missing = [str(s) for s in cfg.sources if not s.exists()]
    if missing:
        console.print(f"[red]input not found:[/red] {', '.join(missing)}")
        return 2
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
        with bar:
            state = batch(**params, return_state=True)
    finally:
        unsubscribe()
    summary = state.result(raise_on_failure=False)
    if not isinstance(summary, dict):  # the flow itself crashed before publishing
        console.print(f"[red]batch did not complete:[/red] {state.message}")
        return 3
    print_summary(summary)
    return 1 if summary["failed"] else 0


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
        out.print(f"  [red]failed[/red] {message}")
    out.print(f"catalog: {os.path.join(summary['out'], 'catalog')}")
    if summary.get("documents"):
        out.print(f"report:  {os.path.join(summary['out'], summary['documents'][0])}")


if __name__ == "__main__":
    sys.exit(main())
