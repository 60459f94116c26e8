"""`cadpipe catalog`: the catalog's history, plain-file exports and maintenance, from the command line.

    cadpipe catalog history [--table NAME] [--limit N] [--as-of TIME]
    cadpipe catalog export --format parquet|csv|xlsx DIR [--as-of TIME]
    cadpipe catalog maintain

Each takes `--out` and `--config` as `cadpipe run` does. No Prefect: these only read (or tidy)
the tables under OUT/catalog/.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table
from rich.text import Text

from documents.names import to_text
from engine.catalog import Catalog, maintenance_rule
from engine.catalog_store import TABLES, CatalogError, SchemaError
from engine.config import ConfigError, load_config

FORMATS = ("parquet", "csv", "xlsx")


def add_parser(sub) -> None:
    catalog = sub.add_parser(
        "catalog",
        help="the catalog's history, plain Parquet/CSV/XLSX exports, compaction and vacuum",
        description="Read the catalog's history, export it as plain files, or maintain it now.",
    )
    actions = catalog.add_subparsers(dest="action", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", help="output root holding catalog/ (default: the config's output.root)")
    common.add_argument("--config", help="config file (default: cadpipe.toml of the repository)")

    history = actions.add_parser(
        "history",
        parents=[common],
        help="the versions of a table, newest first (or each table's version at a time: --as-of)",
    )
    history.add_argument("--table", default="files", choices=sorted(TABLES), help="table (default: files)")
    history.add_argument("--limit", type=int, default=20, help="versions shown (default 20; 0 = all)")
    history.add_argument(
        "--as-of", type=when, metavar="TIME", help="ISO 8601 time (no offset: local time): each table's version then"
    )

    export = actions.add_parser("export", parents=[common], help="every table as plain files in DIR")
    export.add_argument("folder", metavar="DIR", help="folder to write into (created if missing)")
    export.add_argument("--format", choices=FORMATS, default="parquet", help="parquet (default), csv or xlsx")
    export.add_argument("--as-of", type=when, metavar="TIME", help="the catalog as it was then (ISO 8601)")

    actions.add_parser(
        "maintain", parents=[common], help="compact small files and vacuum old versions now (runs on a schedule too)"
    )


def when(text: str) -> datetime:
    """A time on the command line: ISO 8601; without an offset it is this machine's local time."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r} (e.g. 2026-11-30T23:00)") from None
    return value.astimezone(UTC) if value.tzinfo else value.astimezone().astimezone(UTC)


def run(args: argparse.Namespace) -> int:
    """0 when done; 2 for a configuration mistake or a catalog that is missing or unusable."""
    console = Console(stderr=True)
    try:
        cfg = load_config(args.config, out=to_text(args.out) if args.out else None)
    except ConfigError as exc:
        console.print(Text.assemble(("configuration error:", "red"), " ", str(exc)))
        return 2
    catalog = Catalog(cfg.out, maintenance_rule(cfg.catalog))
    if not catalog.dir.is_dir():
        console.print(Text.assemble(("no catalog:", "red"), " ", f"{to_text(catalog.dir)} does not exist"))
        return 2
    try:
        if args.action == "history":
            return _history(catalog, args)
        if args.action == "export":
            written = catalog.export(args.folder, args.format, args.as_of)
            for path in written:
                print(to_text(path))
            return 0
        report = catalog.maintain()
        _print_maintenance(report)
        return 0
    except (CatalogError, SchemaError) as exc:
        console.print(Text.assemble(("catalog error:", "red"), " ", str(exc)))
        return 2


def _stdout() -> Console:
    """Wide enough for run ids and times when the output goes to a file or a pipe."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


def _history(catalog: Catalog, args: argparse.Namespace) -> int:
    out = _stdout()
    if args.as_of is not None:
        table = Table(title=f"the catalog as of {args.as_of.isoformat(timespec='seconds')}")
        for column in ("table", "version", "rows"):
            table.add_column(column, justify="right" if column != "table" else "left")
        for name in TABLES:
            version = catalog.store.version_as_of(name, args.as_of)
            rows = "" if version is None else str(catalog.store.row_count(name, version))
            table.add_row(name, "-" if version is None else str(version), rows)
        out.print(table)
        return 0
    versions = catalog.history(args.table, args.limit or None)
    table = Table(title=f"catalog table {args.table}: {len(versions)} versions shown, newest first")
    for column in ("version", "time (UTC)", "operation", "run", "step", "rows"):
        table.add_column(column, justify="right" if column in ("version", "rows") else "left")
    for v in versions:
        table.add_row(
            str(v.version),
            v.timestamp.strftime("%Y-%m-%d %H:%M:%S"),
            v.operation,
            Text(v.run_id or ""),
            Text(v.step or ""),
            _rows(v.metrics),
        )
    out.print(table)
    return 0


def _rows(metrics: dict) -> str:
    """Rows a commit added, changed and removed, from Delta's operation metrics."""
    added = int(metrics.get("num_target_rows_inserted", metrics.get("num_added_rows")) or 0)
    changed = int(metrics.get("num_target_rows_updated") or 0)
    removed = sum(int(metrics.get(k) or 0) for k in ("num_deleted_rows", "num_target_rows_deleted"))
    parts = [f"+{added}" if added else "", f"~{changed}" if changed else "", f"-{removed}" if removed else ""]
    return " ".join(p for p in parts if p)


def _print_maintenance(report: dict[str, dict]) -> None:
    table = Table(title="catalog maintenance")
    for column in ("table", "data files", "compacted", "vacuumed", "orphan rows"):
        table.add_column(column, justify="left" if column == "table" else "right")
    for name, entry in report.items():
        compacted = entry.get("compacted")
        table.add_row(
            name,
            str(entry["files"]),
            f"{compacted['numFilesRemoved']} -> {compacted['numFilesAdded']}" if compacted else "",
            str(entry["vacuumed"]),
            str(entry.get("pruned_rows", 0)),
        )
    _stdout().print(table)
