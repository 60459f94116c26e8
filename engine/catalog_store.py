"""The catalog as Delta Lake tables: one declared schema per table, incremental transactional
writes, history and time travel. Prefect-free; imports nothing of the pipeline.

Layout: ``OUT/catalog/<table>/`` is a Delta table (Parquet data files and a ``_delta_log/``),
written through ``deltalake`` (delta-rs), read natively by DuckDB (``delta_scan``), Polars
(``read_delta``/``scan_delta``) and pandas (``deltalake.DeltaTable(...).to_pandas()``).
``OUT/catalog/catalog.json`` records the format and :data:`SCHEMA_VERSION`.

Why these choices (measured, see engine/CATALOG_STORE.md):

- Every write is one Delta commit: a reader sees a table's previous version or its next one,
  never half of a write; a writer killed mid-commit leaves files no version refers to (removed by
  vacuum) and the previous version readable.
- Content tables (``files`` and the detail tables) are partitioned by ``sha_prefix``, the first
  hex digit of ``sha256``: Delta rewrites whole data files (copy-on-write), so a publish of one
  changed drawing rewrites at most 2 of the 16 partitions of ``files`` and adds a data file to one
  partition of each detail table.
- A publish spans several tables and Delta has no multi-table transaction, so
  :meth:`CatalogStore.publish` orders its commits: new detail rows first, then ``files``. A join
  through ``files`` is complete at every instant. Detail rows of a content no ``ok`` file refers
  to any more (superseded) are not removed by the publish (that rewrote every detail data file
  they were in: 11-20 s of a 1,000-file publish): they stay, invisible to every read that goes
  through ``files`` (:meth:`CatalogStore.read` of a detail table, the README's queries, exports),
  until maintenance prunes them. ``.superseded.json`` names them (a superset, written before any
  commit that can leave such rows), so that a content catalogued again has its rows replaced, not
  added twice, and a writer killed at any step leaves nothing unaccounted for.
- Writers take the same exclusive lock as the Parquet catalog (``OUT/catalog/.lock``): a publish
  is a read-modify-write across tables. Delta's optimistic concurrency stays as the second guard.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import shutil
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import ColumnProperties, CommitProperties, DeltaTable, Schema, WriterProperties, write_deltalake

# 2: files.previous_sha256/previous_work_id/project/bom_symbol_count, bom P&ID columns, bom_symbols, changes
# 3: files.flow_run_id, errors.flow_run_id, runs.new_failures/known_failures/deferred/attempt
# 4: superseded contents' detail rows pruned by maintenance, not by the publish (SUPERSEDED lists
#    them): an older cadpipe would append a content's rows beside rows it does not know are there
SCHEMA_VERSION = 4
FORMAT = "delta"
MARKER = "catalog.json"
JOURNAL = ".publishing.json"  # schema 3's list of contents a publish was pruning: taken over
SUPERSEDED = ".superseded.json"
LOCK = ".lock"
LEGACY_DIR = "legacy-parquet"  # where the Parquet files of a migrated catalog are kept
PARTITION = "sha_prefix"
NO_CONTENT = "_"  # sha_prefix of a file without a content hash (unreadable at discovery)

STR, INT, FLOAT, BOOL = pa.string(), pa.int64(), pa.float64(), pa.bool_()
LIST = pa.list_(pa.string())
# Delta Lake has one timestamp type: microseconds, adjusted to UTC. Values are kept to the
# millisecond (now_iso), so timestamp[ms, UTC] of the issue is stored exactly in it.
TIME = pa.timestamp("us", tz="UTC")


class CatalogError(RuntimeError):
    """The catalog on disk cannot be used as it is (newer schema, half-migrated by an old cadpipe)."""


class SchemaError(ValueError):
    """A value or column that does not fit its table's declared schema: a bug of the writer."""


def _schema(*columns: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(name, kind) for name, kind in columns])


FILES = _schema(
    ("path", STR),
    ("source_root", STR),
    ("sha256", STR),
    ("format", STR),
    ("status", STR),
    ("error_class", STR),
    ("error_message", STR),
    ("error_stage", STR),
    ("error_permanent", BOOL),
    ("error_limit", FLOAT),  # the limit a failure hit: timeout_s of a Timeout, memory_mb of a MemoryLimit
    ("outputs", LIST),
    ("warnings", LIST),
    ("quarantine", STR),
    ("processed_at", TIME),
    ("run_id", STR),
    ("flow_run_id", STR),  # the Prefect flow run of that run (the parent flow: flows/batch.py)
    ("pipeline_version", STR),
    ("work_id", STR),
    # the content the path held before its latest one, and that content's work (engine/revision_diff.py)
    ("previous_sha256", STR),
    ("previous_work_id", STR),
    ("size", INT),
    ("mtime_ns", INT),
    ("attempts", INT),
    ("duration_ms", INT),
    # drawing metadata (extractors/dxf_metadata.py)
    ("dxf_version", STR),
    ("dxf_release", STR),
    ("insunits", INT),
    ("units", STR),
    ("measurement", STR),
    ("extents_min_x", FLOAT),
    ("extents_min_y", FLOAT),
    ("extents_min_z", FLOAT),
    ("extents_max_x", FLOAT),
    ("extents_max_y", FLOAT),
    ("extents_max_z", FLOAT),
    ("extents_source", STR),
    ("created_at", TIME),
    ("updated_at", TIME),
    ("codepage", STR),
    ("entity_count", INT),
    ("block_entity_count", INT),
    ("layer_count", INT),
    ("layout_count", INT),
    ("block_count", INT),
    ("text_count", INT),
    ("ref_count", INT),
    ("missing_ref_count", INT),
    ("recovered", BOOL),
    ("audit_fix_count", INT),
    ("audit_error_count", INT),
    ("entities_read", INT),
    ("entities_kept", INT),
    ("entities_removed", INT),
    # DWG (extractors/dwg_readers.py)
    ("dwg_reader", STR),
    ("dwg_reader_version", STR),
    ("dwg_reader_warnings", LIST),
    ("dwg_unsupported_count", INT),
    # model metadata (extractors/step_metadata.py, flows/work.py)
    ("schema", STR),
    ("application_protocol", STR),
    ("originating_system", STR),
    ("preprocessor_version", STR),
    ("header_file_name", STR),
    ("time_stamp", STR),
    ("authors", LIST),
    ("organizations", LIST),
    ("file_length_unit", STR),
    ("bbox_xmin", FLOAT),
    ("bbox_ymin", FLOAT),
    ("bbox_zmin", FLOAT),
    ("bbox_xmax", FLOAT),
    ("bbox_ymax", FLOAT),
    ("bbox_zmax", FLOAT),
    ("size_x", FLOAT),
    ("size_y", FLOAT),
    ("size_z", FLOAT),
    ("volume_mm3", FLOAT),
    ("area_mm2", FLOAT),
    ("center_x", FLOAT),
    ("center_y", FLOAT),
    ("center_z", FLOAT),
    ("n_solids", INT),
    ("n_shells", INT),
    ("n_faces", INT),
    ("n_edges", INT),
    ("n_vertices", INT),
    ("n_roots", INT),
    ("n_products", INT),
    ("n_part_instances", INT),
    ("is_valid", BOOL),
    ("mesh_only", BOOL),
    ("closed_mesh", BOOL),
    ("product_names", LIST),
    ("n_external_files", INT),
    ("density_kg_m3", FLOAT),
    ("mass_kg", FLOAT),
    ("stl_triangles", INT),
    ("stl_linear_tolerance", FLOAT),
    ("stl_angular_tolerance", FLOAT),
    ("stl_adapted", BOOL),
    ("drawing_scale", STR),
    # title block (extractors/title_block.py); `material` is also a model's default material
    ("title", STR),
    ("drawing_number", STR),
    ("revision", STR),
    ("date", STR),
    ("drawn_by", STR),
    ("scale", STR),
    ("sheet", STR),
    ("material", STR),
    ("project", STR),
    ("title_block_name", STR),
    ("title_block_layout", STR),
    ("bom_row_count", INT),
    ("bom_symbol_count", INT),  # untagged symbols (extractors/dxf_bom.py): counted, not BOM rows
    (PARTITION, STR),
)

LAYOUTS = _schema(
    ("sha256", STR),
    ("name", STR),
    ("is_model", BOOL),
    ("tab_order", INT),
    ("paper_width", FLOAT),
    ("paper_height", FLOAT),
    ("paper_units", STR),
    ("entity_count", INT),
    (PARTITION, STR),
)
LAYERS = _schema(
    ("sha256", STR),
    ("name", STR),
    ("defined", BOOL),
    ("color", INT),
    ("true_color", STR),
    ("linetype", STR),
    ("is_on", BOOL),
    ("is_frozen", BOOL),
    ("is_locked", BOOL),
    ("entity_count", INT),
    (PARTITION, STR),
)
ENTITIES = _schema(("sha256", STR), ("layout", STR), ("dxftype", STR), ("count", INT), (PARTITION, STR))
BLOCKS = _schema(
    ("sha256", STR),
    ("name", STR),
    ("entity_count", INT),
    ("insert_count", INT),
    ("is_xref", BOOL),
    ("xref_path", STR),
    (PARTITION, STR),
)
TEXTS = _schema(
    ("sha256", STR),
    ("layout", STR),
    ("dxftype", STR),
    ("handle", STR),
    ("layer", STR),
    ("tag", STR),
    ("text", STR),
    (PARTITION, STR),
)
REFS = _schema(
    ("sha256", STR),
    ("kind", STR),
    ("name", STR),
    ("path", STR),
    ("resolved_path", STR),
    ("exists", BOOL),
    ("handle", STR),
    (PARTITION, STR),
)
BOM = _schema(
    ("sha256", STR),
    ("item_no", STR),
    ("part_number", STR),
    ("description", STR),
    ("qty", FLOAT),
    ("unit", STR),
    ("material", STR),
    ("mass", FLOAT),
    ("revision", STR),
    ("vendor", STR),
    # P&ID and instrument items (ISA-5.1 style): the tag, or the type and loop number it is composed of
    ("tag", STR),
    ("type", STR),
    ("loop_number", STR),
    ("service", STR),
    ("size", STR),
    ("block_name", STR),
    ("block_path", STR),
    ("layout", STR),
    ("handle", STR),
    ("level", INT),
    ("insert_count", INT),
    ("source", STR),
    ("attributes", STR),
    ("parent", STR),
    (PARTITION, STR),
)
# Attributed inserts whose attributes are all empty (a P&ID symbol not tagged yet), per
# (layout, block path): counted here, not BOM rows (extractors/dxf_bom.py).
BOM_SYMBOLS = _schema(
    ("sha256", STR),
    ("layout", STR),
    ("block_name", STR),
    ("block_path", STR),
    ("level", INT),
    ("insert_count", INT),
    ("handle", STR),
    (PARTITION, STR),
)
ERRORS = _schema(
    ("run_id", STR),
    ("flow_run_id", STR),
    ("path", STR),
    ("source_root", STR),
    ("sha256", STR),
    ("stage", STR),
    ("error_class", STR),
    ("error_message", STR),
    ("attempts", INT),
    ("permanent", BOOL),
    ("quarantine", STR),
    ("failed_at", TIME),
)
RUNS = _schema(
    ("run_id", STR),
    ("flow_run_id", STR),
    ("started_at", TIME),
    ("finished_at", TIME),
    ("sources", LIST),
    ("files_seen", INT),
    ("processed", INT),
    ("unchanged", INT),
    ("failed", INT),
    ("reused", INT),
    # failed split: in this run (new) or before and unchanged since (known: engine/failures.py)
    ("new_failures", INT),
    ("known_failures", INT),
    ("deferred", INT),  # files of chunks that could not run, left for the next run
    ("attempt", INT),  # the flow run's attempt: a Retry of it republishes the same run
    ("pipeline_version", STR),
    ("config", STR),
)
EDITS = _schema(
    ("run_id", STR),
    ("recipe_name", STR),
    ("recipe_hash", STR),
    ("mode", STR),
    ("source_root", STR),
    ("path", STR),
    ("output", STR),
    ("backup", STR),
    ("sha256_before", STR),
    ("sha256_after", STR),
    ("operation", STR),
    ("target", STR),
    ("before", STR),
    ("after", STR),
    ("edited_at", TIME),
)
# One row per new content of a path whose earlier content the catalog knew (a revision), made by
# engine/revision_diff.py after the publish; the details in OUT/<diff>.
CHANGES = _schema(
    ("run_id", STR),
    ("source_root", STR),
    ("path", STR),
    ("sha256_before", STR),
    ("sha256_after", STR),
    ("work_id_before", STR),
    ("work_id_after", STR),
    ("compared", BOOL),  # both versions' records were there to compare
    ("note", STR),  # why not compared, or what could not be (a layout without a vector render)
    ("summary", STR),  # one sentence of what changed
    ("title_changes", STR),  # JSON {field: [before, after]} of the title-block fields that changed
    ("bom_added", INT),
    ("bom_removed", INT),
    ("bom_changed", INT),
    ("layers_added", INT),
    ("layers_removed", INT),
    ("layers_changed", INT),
    ("entity_types_changed", INT),  # (layout, entity type) pairs whose count changed
    ("layouts_changed", INT),  # layouts whose overlay shows a difference
    ("pixels_removed", INT),
    ("pixels_added", INT),
    ("diff", STR),  # diff.json (every row and field before and after), relative to OUT
    ("overlays", LIST),  # overlay PNGs, relative to OUT
    ("detected_at", TIME),
)
BOM_ROLLUP = _schema(
    ("sha256", STR),
    ("part_number", STR),
    ("unit", STR),
    ("description", STR),
    ("total_qty", FLOAT),
    ("qty_unknown", INT),
    ("rows", INT),
    ("inserts", INT),
)
WHERE_USED = _schema(
    ("part_number", STR),
    ("unit", STR),
    ("description", STR),
    ("drawings", INT),
    ("contents", INT),
    ("total_qty", FLOAT),
    ("qty_unknown", INT),
    ("paths", LIST),
)


@dataclass(frozen=True)
class TableSpec:
    """One catalog table: its declared columns and how rows are replaced.

    kind: ``files`` (one row per (source_root, path), merged), ``content`` (rows of a drawing
    content, replaced by sha256), ``run`` (rows of a run, replaced by run_id), ``log`` (appended),
    ``derived`` (recomputed and replaced whole). `extensible`: extra string columns are accepted
    (title block and BOM columns a config's tag map adds).
    """

    name: str
    schema: pa.Schema
    kind: str
    key: tuple[str, ...] = ()
    extensible: bool = False

    @property
    def partitioned(self) -> bool:
        return PARTITION in self.schema.names

    @property
    def configuration(self) -> dict[str, str]:
        """Delta table properties. File statistics in the log only for the leading key columns:
        Delta computes and logs min/max of the first 32 columns of every file it writes by
        default, which was half the time of rewriting a partition (measured)."""
        if not self.key:
            return {}
        indexed = max(
            self.schema.names.index(column) for column in (*self.key, "sha256") if column in self.schema.names
        )
        return {"delta.dataSkippingNumIndexedCols": str(indexed + 1)}

    @property
    def writer_properties(self) -> WriterProperties:
        """Parquet column statistics for the key columns only, no compression: both cut the time
        of rewriting a partition (measured); deletes and merges find their rows by the key
        columns, readers' other filters read the (partitioned) data."""
        keys = [c for c in (*self.key, "sha256") if c in self.schema.names]
        return WriterProperties(
            # Dictionary encoding (on) makes these tables small already; compressing them as well
            # saved 8 % of the texts table and cost 15-20 % of a rewrite's time (measured).
            compression="UNCOMPRESSED",
            default_column_properties=ColumnProperties(statistics_enabled="NONE"),
            column_properties={c: ColumnProperties(statistics_enabled="PAGE") for c in keys},
        )


TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec("files", FILES, "files", ("source_root", "path"), extensible=True),
        TableSpec("layouts", LAYOUTS, "content", ("sha256",)),
        TableSpec("layers", LAYERS, "content", ("sha256",)),
        TableSpec("entities", ENTITIES, "content", ("sha256",)),
        TableSpec("blocks", BLOCKS, "content", ("sha256",)),
        TableSpec("texts", TEXTS, "content", ("sha256",)),
        TableSpec("refs", REFS, "content", ("sha256",)),
        TableSpec("bom", BOM, "content", ("sha256",), extensible=True),
        TableSpec("bom_symbols", BOM_SYMBOLS, "content", ("sha256",)),
        TableSpec("errors", ERRORS, "run", ("run_id",)),
        TableSpec("runs", RUNS, "run", ("run_id",)),
        TableSpec("edits", EDITS, "log"),
        TableSpec("changes", CHANGES, "log"),
        TableSpec("bom_rollup", BOM_ROLLUP, "derived"),
        TableSpec("where_used", WHERE_USED, "derived", extensible=False),
    )
}
DETAIL_TABLES = tuple(name for name, spec in TABLES.items() if spec.kind == "content")
# Columns the Parquet catalog stored as "; "-joined text and this schema stores as lists.
_JOINED_LISTS = {"product_names", "authors", "organizations"}
_COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# Casting to the declared schema.


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{text[:80]}{'...' if len(text) > 80 else ''} ({type(value).__name__})"


def _is_nan(value: Any) -> bool:
    return isinstance(value, (float, np.floating)) and math.isnan(value)


def _check_value(kind: pa.DataType, value: Any) -> Any:
    """The value as the declared type accepts it, or raise TypeError saying what was expected.
    NaN is missing (pandas' null) in every column."""
    if value is None or _is_nan(value):
        return None
    if kind == STR:
        if isinstance(value, str):
            return value
        raise TypeError("text expected")
    if kind == INT:
        if isinstance(value, (bool, np.bool_)):
            raise TypeError("an integer expected, not a flag")
        if isinstance(value, (int, np.integer)):
            if not -(2**63) <= int(value) < 2**63:
                raise TypeError("out of the int64 range")
            return int(value)
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            return int(value)
        raise TypeError("an integer expected")
    if kind == FLOAT:
        if isinstance(value, (bool, np.bool_)):
            raise TypeError("a number expected, not a flag")
        if isinstance(value, (int, float, np.integer, np.floating)):
            return float(value)
        raise TypeError("a number expected")
    if kind == BOOL:
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        raise TypeError("true or false expected")
    if kind == TIME:
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                raise TypeError("an ISO 8601 time expected") from None
        if isinstance(value, datetime):  # pandas.Timestamp included
            if value.tzinfo is None or value.utcoffset() is None:
                raise TypeError("a time with a time zone expected (naive times are ambiguous)")
            return value.astimezone(UTC)
        raise TypeError("a time expected")
    if kind == LIST:
        if isinstance(value, (list, tuple, np.ndarray)):
            items = list(value)
            if all(isinstance(item, str) for item in items):
                return items
            raise TypeError("a list of text expected (an item is not text)")
        raise TypeError("a list of text expected")
    raise TypeError(f"unsupported declared type {kind}")


def _row_name(spec: TableSpec, row: Mapping[str, Any], index: int) -> str:
    keys = [k for k in (spec.key or ("sha256", "run_id")) if row.get(k) is not None]
    where = ", ".join(f"{k}={row[k]!r}" for k in keys[:2])
    return f"row {index}" + (f" ({where})" if where else "")


def extra_columns(spec: TableSpec, names: Iterable[str]) -> list[str]:
    """Columns beyond the declared ones: accepted as text in an extensible table, else an error."""
    extra = [n for n in names if n not in spec.schema.names]
    if extra and not spec.extensible:
        raise SchemaError(f"catalog table {spec.name!r}: unknown column(s) {', '.join(map(repr, extra))}")
    for name in extra:
        if not _COLUMN_NAME.match(name):
            raise SchemaError(f"catalog table {spec.name!r}: column name {name!r} is not a plain identifier")
    return extra


def rows_to_table(name: str, rows: Sequence[Mapping[str, Any]], extra: Iterable[str] = ()) -> pa.Table:
    """Rows (dicts) as an Arrow table of the declared schema (plus the `extra` text columns and
    any the rows bring, in an extensible table). Missing columns are null; `sha_prefix` is
    derived from `sha256`. A value that does not fit raises SchemaError naming the table,
    column, row and value: never a silent change of type."""
    spec = TABLES[name]
    declared = set(spec.schema.names)
    seen = dict.fromkeys(extra)
    for row in rows:
        if not declared.issuperset(row):
            seen.update(dict.fromkeys(k for k in row if k not in declared))
    extras = extra_columns(spec, list(seen))
    fields = [f for f in spec.schema if f.name != PARTITION] + [pa.field(n, STR) for n in extras]
    arrays = []
    for f in fields:
        values = [row.get(f.name) for row in rows]
        try:
            arrays.append(_fast_array(f.type, values))
            continue
        except (TypeError, pa.ArrowException, OverflowError):
            pass
        checked = []
        for index, (row, value) in enumerate(zip(rows, values)):
            try:
                checked.append(_check_value(f.type, value))
            except TypeError as exc:
                raise SchemaError(
                    f"catalog table {name!r}, column {f.name!r}, {_row_name(spec, row, index)}: "
                    f"{_describe(value)} does not fit {f.type}: {exc}"
                ) from None
        arrays.append(pa.array(checked, f.type))
    table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    return _with_partition(spec, table)


def _fast_array(kind: pa.DataType, values: list[Any]) -> pa.Array:
    """pyarrow's conversion, used only where it cannot change a value (it truncates 1.5 to an
    int, reads a naive time as UTC, a bool as 1.0 and text as a list of letters): the other
    cases go through `_check_value`, value by value."""
    kinds = {type(v) for v in values}
    if kind == STR and kinds <= {str, type(None)}:
        return pa.array(values, kind)
    if kind == INT and kinds <= {int, type(None)}:
        return pa.array(values, kind)
    if kind == FLOAT and kinds <= {float, int, type(None)}:
        return pa.array(values, kind, from_pandas=True)
    if kind == BOOL and kinds <= {bool, type(None)}:
        return pa.array(values, kind)
    if kind == LIST and kinds <= {list, type(None)}:
        return pa.array(values, kind)  # items that are not text raise: checked one by one
    raise TypeError("checked value by value")


def _with_partition(spec: TableSpec, table: pa.Table) -> pa.Table:
    if not spec.partitioned:
        return table
    if PARTITION in table.column_names:
        table = table.drop_columns([PARTITION])
    sha = table["sha256"]
    prefix = pc.fill_null(pc.utf8_slice_codeunits(sha, 0, 1), NO_CONTENT)
    position = spec.schema.names.index(PARTITION)
    return table.add_column(min(position, table.num_columns), pa.field(PARTITION, STR), prefix)


def conform(name: str, table: pa.Table, legacy: bool = False) -> pa.Table:
    """An Arrow table cast to the declared schema (missing columns null, declared order, extra
    text columns after). Only casts that keep every value are made: an integer column may widen,
    text may change encoding, a null-typed column gets its type; anything else raises SchemaError.
    `legacy` (migration of a Parquet catalog) also accepts what the old writer produced: times as
    ISO text, "; "-joined lists, integers as doubles, empty text columns typed double."""
    spec = TABLES[name]
    declared = {f.name: f.type for f in spec.schema}
    extras = extra_columns(spec, [n for n in table.column_names if n not in declared])
    out_fields, out_arrays = [], []
    for f in list(spec.schema) + [pa.field(n, STR) for n in extras]:
        if f.name == PARTITION:
            continue
        if f.name in table.column_names:
            column = table[f.name].combine_chunks() if table.num_rows else pa.array([], table[f.name].type)
            column = _cast_column(name, f.name, column, f.type, legacy)
        else:
            column = pa.nulls(table.num_rows, f.type)
        out_fields.append(f)
        out_arrays.append(column)
    result = pa.Table.from_arrays(out_arrays, schema=pa.schema(out_fields))
    if spec.partitioned:
        result = _with_partition(spec, result)
    return result


def _cast_column(table: str, column: str, array: pa.Array, kind: pa.DataType, legacy: bool) -> pa.Array:
    source = array.type
    if pa.types.is_dictionary(source):
        array, source = array.dictionary_decode(), array.type.value_type
    if source == kind:
        return array
    if pa.types.is_null(source) or array.null_count == len(array):
        return pa.nulls(len(array), kind)
    fits = (
        (kind == STR and (pa.types.is_large_string(source) or pa.types.is_string_view(source)))
        or (kind == INT and pa.types.is_integer(source))
        or (kind == FLOAT and (pa.types.is_integer(source) or pa.types.is_floating(source)))
        or (kind == TIME and pa.types.is_timestamp(source) and source.tz is not None)
        or (kind == LIST and (pa.types.is_list(source) or pa.types.is_large_list(source)))
    )
    try:
        if fits:
            return array.cast(kind, safe=True)
        if legacy:
            return _cast_legacy(column, array, kind)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise SchemaError(f"catalog table {table!r}, column {column!r}: {source} does not fit {kind}: {exc}") from None
    sample = next((v for v in array.to_pylist() if v is not None), None)
    raise SchemaError(
        f"catalog table {table!r}, column {column!r}: a {source} column (e.g. {_describe(sample)}) does not fit {kind}"
    )


def _cast_legacy(column: str, array: pa.Array, kind: pa.DataType) -> pa.Array:
    """What the Parquet catalog wrote, read back into the declared type, value by value."""
    values = array.to_pylist()
    if kind == LIST and (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        if column not in _JOINED_LISTS:
            raise ValueError("text where a list is declared")
        return pa.array([[p for p in v.split("; ") if p] if v is not None else None for v in values], LIST)
    converted = []
    for value in values:
        try:
            converted.append(_check_value(kind, value))
        except TypeError as exc:
            raise ValueError(f"{_describe(value)}: {exc}") from None
    return pa.array(converted, kind)


# The store.


@dataclass(frozen=True)
class Version:
    """One committed version of a catalog table."""

    table: str
    version: int
    timestamp: datetime
    operation: str
    run_id: str | None
    step: str | None
    metrics: dict = field(default_factory=dict)


@dataclass
class Publication:
    """Everything one run records, published by :meth:`CatalogStore.publish` in a safe order.

    files: full rows of the inputs this run recorded (upserted by (source_root, path)).
    removed: (source_root, path) of files gone from a folder this run walked.
    contents: sha256 of the contents this run (re)catalogued: their rows in every detail table
    are replaced by those in `details`, also where a table now has none for a content.
    details: detail table name -> rows (each with its sha256, one of `contents`).
    errors: rows of this run's errors (replace the run's earlier rows: a republish is safe).
    run: the run's row of `runs` (replaces it on a republish).
    """

    run_id: str
    files: list[dict] = field(default_factory=list)
    removed: list[tuple[str, str]] = field(default_factory=list)
    contents: set[str] = field(default_factory=set)
    details: dict[str, list[dict]] = field(default_factory=dict)
    errors: list[dict] = field(default_factory=list)
    run: dict | None = None


@dataclass(frozen=True)
class MaintenanceRule:
    """When compaction and vacuum run.

    Due (:meth:`CatalogStore.maintenance_due`) `every_hours` after the last maintenance, or
    sooner once ``files`` has taken `after_commits` commits since (each publish adds a data file
    per partition it touches: a busy drop folder makes many small files). Then, per table:
    compact when a partition holds more than `max_files_per_partition` data files or the table
    more than `max_small_files` files under `small_file_bytes`; vacuum the files that no version
    of the last `keep_hours` needs (time travel reaches back that far)."""

    max_files_per_partition: int = 8
    max_small_files: int = 64
    small_file_bytes: int = 4 << 20
    target_file_bytes: int = 64 << 20
    keep_hours: float = 7 * 24
    every_hours: float = 24
    after_commits: int = 50


def _sql(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _in(column: str, values: Iterable[str]) -> str:
    return f"{column} IN ({', '.join(_sql(v) for v in sorted(values))})"


def _prefixes(shas: Iterable[str | None]) -> set[str]:
    return {s[:1] if s else NO_CONTENT for s in shas}


def _rows_of(recorded: Any) -> dict[str, int]:
    """The rows a commit inserted, updated and deleted, as cadpipe recorded them with it."""
    try:
        return {k: int(v) for k, v in json.loads(recorded).items()}
    except (TypeError, ValueError, AttributeError):
        return {}


# Detail tables written at once by a publish (threads: delta-rs releases Python's lock).
_WRITERS = 4
# At most this many keys are named in the predicate of a `files` write (else it is a MERGE).
_KEYS_IN_PREDICATE = 2000
# The columns of `files` a write of it decides by (CatalogStore.publish's `current`).
CURRENT_COLUMNS = ("source_root", "path", "sha256", "status", PARTITION)


@dataclass(frozen=True)
class _Displacement:
    """What a write of ``files`` does to the contents: the partitions of the rows it replaces or
    removes, and the superseded list before its commit (with every content it may leave without
    an ok file) and after it (with those it does)."""

    prefixes: set[str]
    replaced: set[tuple[str, str]]  # the keys written or removed that have a row now
    before: set[str]
    after: set[str]


def key_mask(files: pa.Table, keys: set[tuple[str, str]]) -> pa.Array:
    """Which rows of `files` have one of the (source_root, path) `keys`: the paths are looked
    up by Arrow, the few rows found checked with their root."""
    mask = np.zeros(files.num_rows, dtype=bool)
    if keys and files.num_rows:
        paths = pa.array(sorted({path for _, path in keys}), STR)
        found = pc.indices_nonzero(pc.fill_null(pc.is_in(files["path"], value_set=paths), False))
        pairs = zip(files["source_root"].take(found).to_pylist(), files["path"].take(found).to_pylist())
        exact = np.fromiter((pair in keys for pair in pairs), dtype=bool, count=len(found))
        mask[found.to_numpy()[exact]] = True
    return pa.array(mask)


def _present(files: pa.Table, contents: set[str]) -> set[str]:
    """Of `contents`, those an ok row of `files` refers to."""
    if not contents or not files.num_rows:
        return set()
    sha = files["sha256"]
    hit = pc.and_(pc.equal(files["status"], "ok"), pc.is_in(sha, value_set=pa.array(sorted(contents), STR)))
    return set(pc.unique(sha.filter(pc.fill_null(hit, False))).to_pylist())


class _Clock:
    """Seconds per step of a publish, for the benchmark and the logs."""

    def __init__(self) -> None:
        self.steps: dict[str, float] = {}
        self._last = time.perf_counter()

    def __call__(self, step: str) -> None:
        now = time.perf_counter()
        self.steps[step] = now - self._last
        self._last = now


@dataclass
class _HeldLock:
    """This process's hold of one catalog's lock file: the threads queue on `thread_lock`, the
    outermost holder owns the flock."""

    thread_lock: threading.RLock = field(default_factory=threading.RLock)
    depth: int = 0
    handle: Any = None


_LOCKS: dict[str, _HeldLock] = {}
_LOCKS_GUARD = threading.Lock()


class CatalogStore:
    """The catalog tables under `root` (``OUT/catalog``).

    Writers serialize on the catalog lock; every write of a table is one Delta commit. Readers
    take no lock and always see whole versions. A Parquet catalog written by the previous
    cadpipe is migrated on first use (see :meth:`migrate`).
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.last_publish: dict[str, float] = {}  # seconds per step of the latest publish

    # Paths, lock, marker.

    def path(self, name: str) -> Path:
        return self.root / name

    def exists(self, name: str) -> bool:
        return (self.path(name) / "_delta_log").is_dir()

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive across processes (and hosts of a share with POSIX locks) and threads;
        re-entrant in the thread that holds it, so a caller may hold it across several writes
        (a second flock of the same file from this process would wait for itself)."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = os.path.realpath(self.root / LOCK)
        with _LOCKS_GUARD:
            held = _LOCKS.setdefault(path, _HeldLock())
        with held.thread_lock:
            if held.depth == 0:
                handle = open(path, "a+")
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX)
                except BaseException:
                    handle.close()
                    raise
                held.handle = handle
            held.depth += 1
            try:
                yield
            finally:
                held.depth -= 1
                if held.depth == 0 and held.handle is not None:
                    fcntl.flock(held.handle, fcntl.LOCK_UN)
                    held.handle.close()
                    held.handle = None

    def schema_version(self) -> int | None:
        try:
            return int(json.loads((self.root / MARKER).read_text(encoding="utf-8"))["schema_version"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise CatalogError(f"{self.root / MARKER}: unreadable ({exc})") from None

    def _marker(self) -> dict[str, Any]:
        try:
            return json.loads((self.root / MARKER).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise CatalogError(f"{self.root / MARKER}: unreadable ({exc})") from None

    def _write_marker(self, **state: Any) -> None:
        """catalog.json: the format, the schema version, and the last maintenance (kept)."""
        kept = {k: v for k, v in self._marker().items() if k.startswith("maintained_")}
        entry = {"format": FORMAT, "schema_version": SCHEMA_VERSION, **kept, **state}
        tmp = self.root / f".{MARKER}.tmp-{os.getpid()}"
        tmp.write_text(json.dumps(entry, indent=2), encoding="utf-8")
        os.replace(tmp, self.root / MARKER)

    def _options(self, name: str, run_id: str | None, step: str, rows: dict[str, int] | None = None) -> dict[str, Any]:
        """The writer and commit properties of a write to table `name`; `rows`: the rows it
        inserts, updates and deletes, kept with the commit for the history (a "replace where"
        logs only the rows it adds)."""
        return {
            "writer_properties": TABLES[name].writer_properties,
            "commit_properties": self._commit(run_id, step, rows),
        }

    def _commit(self, run_id: str | None, step: str, rows: dict[str, int] | None = None) -> CommitProperties:
        meta = {"cadpipe.schema_version": str(SCHEMA_VERSION), "cadpipe.step": step}
        if run_id:
            meta["cadpipe.run_id"] = run_id
        if rows is not None:
            meta["cadpipe.rows"] = json.dumps(rows, sort_keys=True)
        return CommitProperties(custom_metadata=meta)

    # Opening: create, migrate, upgrade.

    def _legacy_pending(self) -> bool:
        """A Parquet table to migrate (or refuse: one beside its Delta table)."""
        return any(
            (self.root / f"{n}.parquet").exists()
            or (not self.exists(n) and (self.root / LEGACY_DIR / f"{n}.parquet").exists())
            for n in TABLES
        )

    def open_for_write(self) -> None:
        """Make the catalog ready for writing; call with the lock held. Creates missing tables
        (every table and column exists in every catalog), migrates a Parquet catalog, upgrades
        an older schema version, takes over the journal a killed schema-3 publish left."""
        version = self.schema_version()
        if version is not None and version > SCHEMA_VERSION:
            raise CatalogError(
                f"{self.root}: written with catalog schema {version}; this cadpipe knows schema "
                f"{SCHEMA_VERSION} and does not write it (upgrade cadpipe)"
            )
        self.migrate()
        for name, spec in TABLES.items():
            if not self.exists(name):
                DeltaTable.create(
                    self.path(name),
                    spec.schema,
                    partition_by=[PARTITION] if spec.partitioned else None,
                    configuration=spec.configuration,
                    commit_properties=self._commit(None, "create"),
                )
            elif version is not None and version < SCHEMA_VERSION:
                self._add_missing_columns(name)
        if version != SCHEMA_VERSION:
            self._write_marker()
        self._adopt_journal()

    def _add_missing_columns(self, name: str) -> list[str]:
        """Add the declared columns a table of an older schema version lacks (null in its rows),
        in one commit: schema 2 added files' previous_sha256, previous_work_id, project and
        bom_symbol_count, and bom's P&ID columns (the tables bom_symbols and changes are new);
        schema 3 files' and errors' flow_run_id, and runs' new_failures, known_failures,
        deferred and attempt."""
        dt = DeltaTable(self.path(name))
        present = set(pa.schema(dt.schema().to_arrow()).names)
        missing = [f for f in TABLES[name].schema if f.name not in present]
        if missing:
            dt.alter.add_columns(
                list(Schema.from_arrow(pa.schema(missing)).fields),
                commit_properties=self._commit(None, f"schema {SCHEMA_VERSION}"),
            )
        return [f.name for f in missing]

    def migrate(self) -> list[str]:
        """Move a catalog of one Parquet file per table (``OUT/catalog/<name>.parquet``, the
        previous cadpipe) into Delta tables; return the tables migrated. Per table: the Delta
        table is written under a temporary name, the Parquet file moved to ``legacy-parquet/``,
        then the table renamed into place: a Delta table in place means its migration is done, a
        crash at any step is redone by the next writer from the Parquet file. A Parquet file
        beside a Delta table was written by an older cadpipe after the migration: refused."""
        done = []
        legacy = self.root / LEGACY_DIR
        for name in TABLES:
            current = self.root / f"{name}.parquet"
            kept = legacy / current.name
            if self.exists(name):
                if current.exists():
                    raise CatalogError(
                        f"{current}: a Parquet table beside the Delta table {self.path(name)}: written by an "
                        "older cadpipe after this catalog moved to Delta tables; move it away to go on"
                    )
                continue
            source = current if current.exists() else kept if kept.exists() else None
            if source is None:
                continue
            temporary = self.root / f".{name}.migrating"
            shutil.rmtree(temporary, ignore_errors=True)
            table = conform(name, pq.read_table(source), legacy=True)
            spec = TABLES[name]
            DeltaTable.create(
                temporary,
                table.schema,
                partition_by=[PARTITION] if spec.partitioned else None,
                configuration=spec.configuration,
                commit_properties=self._commit(None, "create"),
            )
            if table.num_rows:
                write_deltalake(
                    temporary, table, mode="append", **self._options(name, None, f"migrated from {current.name}")
                )
            if source == current:
                legacy.mkdir(exist_ok=True)
                os.replace(current, kept)
            os.replace(temporary, self.path(name))
            done.append(name)
        if done:
            self._write_marker()
        return done

    # Reading.

    def _ensure_readable(self) -> None:
        if self._legacy_pending():
            with self.lock():
                self.migrate()

    def table_schema(self, name: str) -> pa.Schema:
        """The declared schema plus the extra text columns this catalog's table has."""
        spec = TABLES[name]
        if not spec.extensible or not self.exists(name):
            return spec.schema
        names = pa.schema(DeltaTable(self.path(name)).schema().to_arrow()).names
        return pa.schema(list(spec.schema) + [pa.field(n, STR) for n in names if n not in spec.schema.names])

    def read(
        self,
        name: str,
        columns: Sequence[str] | None = None,
        version: int | None = None,
        as_of: datetime | None = None,
        where: list[tuple[str, str, Any]] | None = None,
        superseded: bool = False,
    ) -> pa.Table:
        """As :meth:`_read`; of a detail table only the rows of contents an ok file refers to in
        the ``files`` table of the same moment (the latest, `as_of`, or the time `version` was
        committed), unless `superseded`: then also those of contents no file refers to any
        more, which stay in the table until maintenance prunes them."""
        spec = TABLES[name]
        if spec.kind != "content" or superseded:
            return self._read(name, columns, version, as_of, where)
        wanted = list(columns) if columns else None
        asked = wanted if wanted is None or "sha256" in wanted else [*wanted, "sha256"]
        table = self._read(name, asked, version, as_of, where)
        if table.num_rows:
            when = as_of if version is None else self._committed_at(name, version)
            files = self._read("files", columns=["sha256", "status"], as_of=when)
            live = files["sha256"].filter(pc.fill_null(pc.equal(files["status"], "ok"), False))
            table = table.filter(pc.fill_null(pc.is_in(table["sha256"], value_set=pc.unique(live)), False))
        return table.select(wanted) if wanted else table

    def _committed_at(self, name: str, version: int) -> datetime:
        """When a version of a table was committed, as a read `as_of` a time finds it (by its
        commit file's modification time)."""
        commit = self.path(name) / "_delta_log" / f"{version:020d}.json"
        try:
            return datetime.fromtimestamp(commit.stat().st_mtime, UTC)
        except FileNotFoundError:  # its log entry expired: the time its commit recorded
            entry = next(v for v in self.history(name) if v.version == version)
            return entry.timestamp

    def _read(
        self,
        name: str,
        columns: Sequence[str] | None = None,
        version: int | None = None,
        as_of: datetime | None = None,
        where: list[tuple[str, str, Any]] | None = None,
    ) -> pa.Table:
        """A table (its latest version, a `version`, or the version current `as_of` a time) in
        the declared schema, every row stored. A table not written yet reads as empty, with every column.
        `where`: conditions all rows read must meet, as (column, op, value) with op ``=`` or
        ``in``; a condition on `sha_prefix` skips whole partitions, the others are applied to the
        rows read (pyarrow cannot push a condition on a text column down to delta-rs's data
        files: their statistics are typed string_view)."""
        spec = TABLES[name]
        self._ensure_readable()
        if not self.exists(name):
            table = spec.schema.empty_table()
            return table.select(list(columns)) if columns else table
        dt = DeltaTable(self.path(name), version=version)
        if as_of is not None:
            dt.load_as_version(as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC))
        where = list(where or [])
        if any(op not in ("=", "in") for _, op, _ in where):
            raise ValueError(f"catalog read of {name!r}: conditions are = or in, not {where}")
        filters = [(c, op, list(v) if op == "in" else v) for c, op, v in where if c == PARTITION] or None
        rest = [(c, op, v) for c, op, v in where if c != PARTITION]
        if rest:
            table = self._read(name, version=version, as_of=as_of, where=[w for w in where if w[0] == PARTITION])
            mask = None
            for column, op, value in rest:
                values = pa.array(list(value) if op == "in" else [value], table.schema.field(column).type)
                test = pc.is_in(table[column], value_set=values)
                mask = test if mask is None else pc.and_(mask, test)
            table = table.filter(mask)
            return table.select(list(columns)) if columns else table
        if not columns:
            return conform(name, dt.to_pyarrow_table(filters=filters))
        # Only the columns asked for are read (the planner needs 9 of the 130 of `files`).
        present = set(pa.schema(dt.schema().to_arrow()).names)
        unknown = [c for c in columns if c not in present and c not in spec.schema.names]
        if unknown:
            raise KeyError(f"catalog table {name!r} has no column(s) {', '.join(unknown)}")
        raw = dt.to_pyarrow_table(columns=[c for c in columns if c in present], filters=filters)
        declared = {f.name: f.type for f in spec.schema}
        arrays = [
            _cast_column(name, c, raw[c].combine_chunks(), declared.get(c, STR), False)
            if c in present
            else pa.nulls(raw.num_rows, declared[c])
            for c in columns
        ]
        return pa.Table.from_arrays(arrays, schema=pa.schema([pa.field(c, declared.get(c, STR)) for c in columns]))

    def read_pandas(self, name: str, **kwargs: Any):
        """As :meth:`read`, as a pandas DataFrame in pandas' nullable types: counts stay
        integers (Int64) and flags booleans where values are missing, text stays text."""
        import pandas as pd

        nullable = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
        return self.read(name, **kwargs).to_pandas(types_mapper=nullable.get)

    def versions(self, names: Iterable[str] = TABLES) -> dict[str, int]:
        """The latest version of each table (of `names`)."""
        return {name: DeltaTable(self.path(name)).version() for name in names if self.exists(name)}

    def row_count(self, name: str, version: int | None = None) -> int:
        """Rows of a table (at a version), from the Delta log alone: no data file is read."""
        if not self.exists(name):
            return 0
        actions = pa.table(DeltaTable(self.path(name), version=version).get_add_actions(flatten=True))
        return sum(n or 0 for n in actions["num_records"].to_pylist()) if actions.num_rows else 0

    def version_as_of(self, name: str, when: datetime) -> int | None:
        """The version of table `name` that a read `as_of` `when` sees (None: the table did not
        exist yet). Delta Lake finds it by the modification times of the table's commit files
        (`_delta_log/*.json`): a copy of a catalog keeps its history only with those times."""
        if not self.exists(name):
            return None
        dt = DeltaTable(self.path(name))
        # Before the first commit this is version 0: every table is created empty.
        dt.load_as_version(when if when.tzinfo else when.replace(tzinfo=UTC))
        return dt.version()

    def history(self, name: str = "files", limit: int | None = None) -> list[Version]:
        """Versions of a table, newest first: when, which operation, and the run that wrote it."""
        self._ensure_readable()
        if not self.exists(name):
            return []
        out = []
        for entry in DeltaTable(self.path(name)).history(limit):
            out.append(
                Version(
                    table=name,
                    version=int(entry["version"]),
                    timestamp=datetime.fromtimestamp(entry["timestamp"] / 1000, UTC),
                    operation=entry.get("operation", ""),
                    run_id=entry.get("cadpipe.run_id"),
                    step=entry.get("cadpipe.step"),
                    metrics={**(entry.get("operationMetrics") or {}), **_rows_of(entry.get("cadpipe.rows"))},
                )
            )
        return out

    # Writing, one commit per call. Each takes the lock unless the caller holds it (`locked`).

    @contextmanager
    def _writing(self, locked: bool) -> Iterator[None]:
        if locked:
            yield
            return
        with self.lock():
            self.open_for_write()
            yield

    def _prepare(self, name: str, rows: Sequence[Mapping[str, Any]] | pa.Table) -> pa.Table:
        """Rows in the table's current schema (new extra columns added after it)."""
        current = self.table_schema(name)
        extras = [n for n in current.names if n not in TABLES[name].schema.names]
        table = conform(name, rows) if isinstance(rows, pa.Table) else rows_to_table(name, rows, extras)
        for f in current:
            if f.name not in table.column_names:
                table = table.append_column(f, pa.nulls(table.num_rows, f.type))
        order = current.names + [n for n in table.column_names if n not in current.names]
        return table.select(order)

    def _schema_mode(self, name: str, table: pa.Table) -> Literal["merge"] | None:
        return "merge" if set(table.column_names) - set(self.table_schema(name).names) else None

    def append(
        self,
        name: str,
        rows: Sequence[Mapping[str, Any]] | pa.Table,
        *,
        run_id: str | None = None,
        locked: bool = False,
    ) -> int:
        """Add rows (the ``log`` and ``run`` tables: errors, runs, edits). Returns the rows added."""
        with self._writing(locked):
            table = self._prepare(name, rows)
            if table.num_rows:
                write_deltalake(
                    self.path(name),
                    table,
                    mode="append",
                    schema_mode=self._schema_mode(name, table),
                    **self._options(name, run_id, f"append {name}"),
                )
            return table.num_rows

    def replace(
        self,
        name: str,
        keys: Iterable[str],
        rows: Sequence[Mapping[str, Any]] | pa.Table,
        *,
        run_id: str | None = None,
        locked: bool = False,
    ) -> int:
        """In one commit: remove the rows whose key (sha256 for detail tables, run_id for errors
        and runs) is one of `keys`, add `rows` (each with one of those keys). Idempotent."""
        spec = TABLES[name]
        if spec.kind not in ("content", "run"):
            raise ValueError(f"catalog table {name!r} is not replaced by key")
        column = spec.key[0]
        keys = set(keys)
        with self._writing(locked):
            table = self._prepare(name, rows)
            stray = set(table[column].to_pylist()) - keys
            if stray:
                raise SchemaError(f"catalog table {name!r}: rows for {column} not being replaced: {sorted(stray)[:3]}")
            if not keys:
                return 0
            if not table.num_rows:  # a delete commits nothing when no row matches
                DeltaTable(self.path(name)).delete(
                    self._key_predicate(spec, keys), **self._options(name, run_id, f"replace {name}")
                )
                return 0
            write_deltalake(
                self.path(name),
                table,
                mode="overwrite",
                predicate=self._key_predicate(spec, keys),
                schema_mode=self._schema_mode(name, table),
                **self._options(name, run_id, f"replace {name}"),
            )
            return table.num_rows

    def _key_predicate(self, spec: TableSpec, keys: set[str]) -> str:
        column = spec.key[0]
        predicate = _in(column, keys)
        if spec.partitioned:  # lets Delta skip the partitions none of the keys is in
            predicate = f"{_in(PARTITION, _prefixes(keys))} AND {predicate}"
        return predicate

    def delete(self, name: str, keys: Iterable[Any], *, run_id: str | None = None, locked: bool = False) -> int:
        """Remove rows by key: (source_root, path) pairs for ``files``, sha256 for detail
        tables, run_id for errors and runs. One commit (none when nothing matches)."""
        spec = TABLES[name]
        keys = list(keys)
        if not keys:
            return 0
        with self._writing(locked):
            if spec.kind == "files":
                return self._merge_files([], keys, run_id)["num_target_rows_deleted"]
            metrics = DeltaTable(self.path(name)).delete(
                self._key_predicate(spec, set(keys)), **self._options(name, run_id, f"delete {name}")
            )
            return int(metrics.get("num_deleted_rows", 0))

    def upsert(
        self,
        name: str,
        rows: Sequence[Mapping[str, Any]] | pa.Table,
        keys: Iterable[str] | None = None,
        *,
        run_id: str | None = None,
        locked: bool = False,
    ) -> int:
        """Rows of changed inputs by the table's key: ``files`` merges by (source_root, path);
        detail tables replace every row of each sha256 in `keys` (default: those in `rows`),
        errors and runs every row of each run_id. One commit."""
        spec = TABLES[name]
        if spec.kind == "files":
            with self._writing(locked):
                metrics = self._merge_files(rows, [], run_id)
                return metrics["num_target_rows_inserted"] + metrics["num_target_rows_updated"]
        if keys is None:
            values = rows[spec.key[0]].to_pylist() if isinstance(rows, pa.Table) else [r.get(spec.key[0]) for r in rows]
            keys = {v for v in values if v is not None}
        return self.replace(name, keys, rows, run_id=run_id, locked=locked)

    def overwrite(
        self,
        name: str,
        rows: Sequence[Mapping[str, Any]] | pa.Table,
        *,
        run_id: str | None = None,
        locked: bool = False,
        derived_from: Mapping[str, int] | None = None,
    ) -> int:
        """Replace a whole table (the derived ones: bom_rollup, where_used) in one commit.
        `derived_from`: the versions of the tables it was computed from, kept with the commit
        (see :meth:`derived_from`)."""
        with self._writing(locked):
            table = self._prepare(name, rows)
            options = self._options(name, run_id, f"overwrite {name}")
            if derived_from is not None:
                meta = dict(options["commit_properties"].custom_metadata or {})
                meta["cadpipe.derived_from"] = json.dumps(dict(derived_from), sort_keys=True)
                options["commit_properties"] = CommitProperties(custom_metadata=meta)
            write_deltalake(
                self.path(name),
                table,
                mode="overwrite",
                schema_mode=self._schema_mode(name, table),
                **options,
            )
            return table.num_rows

    def derived_from(self, name: str) -> dict[str, int] | None:
        """The versions of the tables the latest version of a derived table was computed from
        (None: not recorded, or the table not written yet)."""
        if not self.exists(name):
            return None
        [latest] = DeltaTable(self.path(name)).history(1)
        try:
            return {k: int(v) for k, v in json.loads(latest["cadpipe.derived_from"]).items()}
        except (KeyError, TypeError, ValueError):
            return None

    def _merge_files(
        self,
        rows,
        removed: Sequence[tuple[str, str]],
        run_id: str | None,
        current: pa.Table | None = None,
        displacement: _Displacement | None = None,
    ) -> dict:
        """Upsert `rows` and delete `removed` keys of ``files`` in one commit. `current`:
        the table's source_root, path, sha256, status and sha_prefix, when the caller has read
        them already; `displacement`: what the caller computed of them for this write. The
        contents the write may leave without an ok file are listed as superseded before the
        commit; after it the list keeps those it did leave so."""
        upserts = self._prepare("files", rows) if len(rows) else None
        keys = [] if upserts is None else list(zip(upserts["source_root"].to_pylist(), upserts["path"].to_pylist()))
        if len(set(keys)) != len(keys):
            raise SchemaError("catalog table 'files': the same (source_root, path) twice in one write")
        if set(keys) & set(map(tuple, removed)):
            raise SchemaError("catalog table 'files': a (source_root, path) both written and removed")
        if displacement is None:
            if current is None:
                current = self.read("files", columns=list(CURRENT_COLUMNS))
            displacement = self._displacement(current, upserts, removed, set(), self._superseded())
            self._write_superseded(displacement.before)
        wanted = set(keys) | {(root, path) for root, path in removed}
        if not wanted:
            return {"num_target_rows_inserted": 0, "num_target_rows_updated": 0, "num_target_rows_deleted": 0}
        updated = len(set(keys) & displacement.replaced)
        metrics = {
            "num_target_rows_inserted": len(keys) - updated,
            "num_target_rows_updated": updated,
            "num_target_rows_deleted": len(set(map(tuple, removed)) & displacement.replaced),
        }
        prefixes = displacement.prefixes | (set(upserts[PARTITION].to_pylist()) if upserts is not None else set())
        options = self._options("files", run_id, "write files", rows=metrics)
        if len(wanted) <= _KEYS_IN_PREDICATE:
            self._replace_files(upserts, wanted, prefixes, options)
        else:
            self._merge_files_by_join(upserts, removed, prefixes, options)
        if displacement.after != displacement.before:
            self._write_superseded(displacement.after)
        return metrics

    def _replace_files(
        self, upserts: pa.Table | None, wanted: set[tuple[str, str]], prefixes: set[str], options: dict
    ) -> None:
        """One commit that removes every row of the `wanted` keys (in the partitions they are in)
        and adds `upserts`: Delta's "replace where", a third to a half of a MERGE's time for 1 to
        1,000 keys (measured); the keys are in its predicate (and in the commit's log entry)."""
        by_root: dict[str, set[str]] = {}
        for root, path in wanted:
            by_root.setdefault(root, set()).add(path)
        keys = " OR ".join(
            f"(source_root = {_sql(root)} AND {_in('path', paths)})" for root, paths in sorted(by_root.items())
        )
        predicate = f"{_in(PARTITION, prefixes)} AND ({keys})" if prefixes else keys
        if upserts is None:
            DeltaTable(self.path("files")).delete(predicate, **options)
            return
        write_deltalake(
            self.path("files"),
            upserts,
            mode="overwrite",
            predicate=predicate,
            schema_mode=self._schema_mode("files", upserts),
            **options,
        )

    def _merge_files_by_join(
        self, upserts: pa.Table | None, removed: Sequence[tuple[str, str]], prefixes: set[str], options: dict
    ) -> None:
        """The same as one MERGE commit, which joins the rows by key: for many keys (a predicate
        naming each would be long to parse and to keep in the log)."""
        schema = self.table_schema("files")
        if upserts is not None:
            schema = pa.schema(list(schema) + [f for f in upserts.schema if f.name not in schema.names])
        parts = []
        if upserts is not None:
            parts.append(upserts.select(schema.names).append_column("_op", pa.array(["upsert"] * upserts.num_rows)))
        if removed:
            gone = pa.table({"source_root": [k[0] for k in removed], "path": [k[1] for k in removed]})
            gone = pa.Table.from_arrays(
                [gone[f.name] if f.name in gone.column_names else pa.nulls(len(removed), f.type) for f in schema],
                schema=schema,
            ).append_column("_op", pa.array(["delete"] * len(removed)))
            parts.append(gone)
        source = pa.concat_tables(parts)
        predicate = "t.source_root = s.source_root AND t.path = s.path"
        if prefixes:
            predicate = f"{_in('t.' + PARTITION, prefixes)} AND {predicate}"
        columns = {name: f"s.{name}" for name in schema.names}
        merger = DeltaTable(self.path("files")).merge(
            source,
            predicate,
            source_alias="s",
            target_alias="t",
            merge_schema=bool(set(schema.names) - set(self.table_schema("files").names)),
            **options,
        )
        (
            merger.when_matched_delete(predicate="s._op = 'delete'")
            .when_matched_update(columns, predicate="s._op = 'upsert'")
            .when_not_matched_insert(columns, predicate="s._op = 'upsert'")
            .execute()
        )

    def _displacement(
        self,
        current: pa.Table,
        upserts: pa.Table | Sequence[Mapping[str, Any]] | None,
        removed: Sequence[tuple[str, str]],
        contents: set[str],
        superseded: set[str],
    ) -> _Displacement:
        """What a write of ``files`` (`upserts`, `removed`) does to the contents, from the table's
        `current` rows (source_root, path, sha256, status, sha_prefix), with Arrow's vectorised
        lookups: no Python loop over the 100,000 rows of a library."""
        if upserts is None:
            new = []
        elif isinstance(upserts, pa.Table):
            new = upserts.select(["source_root", "path", "sha256", "status"]).to_pylist()
        else:
            new = [{k: row.get(k) for k in ("source_root", "path", "sha256", "status")} for row in upserts]
        wanted = {(r["source_root"], r["path"]) for r in new} | {(root, path) for root, path in removed}
        touched = key_mask(current, wanted)
        hit = current.filter(touched)
        prefixes = set(hit[PARTITION].to_pylist())
        replaced = set(zip(hit["source_root"].to_pylist(), hit["path"].to_pylist()))
        displaced = {s for s in hit["sha256"].to_pylist() if s}
        candidates = displaced | set(contents)
        untouched_ok = pc.and_(pc.invert(touched), pc.equal(current["status"], "ok"))
        kept = current.filter(pc.fill_null(untouched_ok, False))["sha256"]
        still = set(pc.unique(kept.filter(pc.is_in(kept, value_set=pa.array(sorted(candidates), STR)))).to_pylist())
        still |= {r["sha256"] for r in new if r["sha256"] and r["status"] == "ok"}
        return _Displacement(
            prefixes=prefixes,
            replaced=replaced,
            before=superseded | candidates,
            after=superseded | (candidates - still),
        )

    # Publishing a run across tables.

    def publish(self, pub: Publication, current: pa.Table | None = None) -> dict[str, int]:
        """Record a run, in an order that keeps every join through ``files`` complete:

        1. the contents this publish may leave with detail rows but without an ok file are added
           to the superseded list (``.superseded.json``);
        2. detail rows of `pub.contents`: appended for a content new to the detail tables,
           replaced for one whose rows may be there (referred to by an ok file, or superseded);
           new contents appear before a file points at them;
        3. ``files``: upserts and removals in one commit; the superseded list then keeps the
           contents this publish did leave without an ok file;
        4. the run's errors and run row (replacing a republished run's own).

        Rows of superseded contents stay in the detail tables, invisible to every read through
        ``files`` (:meth:`read`), until :meth:`maintain` prunes them. A writer killed at any step
        leaves every table at a whole version and the list a superset of what it must name; the
        run republished redoes the rest. Returns the versions of `files` and `runs` after it.

        `current`: the ``files`` table's source_root, path, sha256, status and sha_prefix as the
        caller read them under the lock it holds (read here otherwise)."""
        for name, rows in pub.details.items():
            if name not in DETAIL_TABLES:
                raise SchemaError(f"catalog table {name!r} is not a detail table")
            stray = {row.get("sha256") for row in rows} - set(pub.contents)
            if stray:
                raise SchemaError(
                    f"catalog table {name!r}: rows of contents not in the publication: {sorted(map(str, stray))[:3]}"
                )
        clock = _Clock()
        with self.lock():
            clock("lock")
            self.open_for_write()
            files = self.read("files", columns=list(CURRENT_COLUMNS)) if current is None else current
            files = files.select(list(CURRENT_COLUMNS))
            superseded = self._superseded()
            displacement = self._displacement(files, pub.files, pub.removed, set(pub.contents), superseded)
            if displacement.before != superseded:
                self._write_superseded(displacement.before)
            # Detail rows of a content are replaced where some may be there already (an ok file
            # refers to it, or it is superseded); a content new to the detail tables has its rows
            # appended, without scanning the table for rows to replace.
            contents = set(pub.contents)
            again = (contents & superseded) | _present(files, contents)
            clock("read")
            self._write_details(pub, again)
            clock("details")
            self._merge_files(pub.files, pub.removed, pub.run_id, current=files, displacement=displacement)
            clock("files")
            if pub.errors or pub.run is not None:
                self.replace("errors", {pub.run_id}, pub.errors, run_id=pub.run_id, locked=True)
            if pub.run is not None:
                self.replace("runs", {pub.run_id}, [pub.run], run_id=pub.run_id, locked=True)
            clock("runs")
            self.last_publish = clock.steps
            return self.versions(["files", "runs"])

    def _write_details(self, pub: Publication, again: set[str]) -> None:
        """Step 2 of a publish: a commit per detail table, the tables side by side in threads
        (delta-rs writes without Python's lock: 2.2 s became 1.3 s for 1,000 contents,
        measured). Each commit is whole; a failed one fails the publish before ``files`` moves,
        its contents already listed as superseded."""

        def write(name: str) -> None:
            rows = pub.details.get(name, [])
            if again:
                self.replace(name, pub.contents, rows, run_id=pub.run_id, locked=True)
            elif rows:
                self.append(name, rows, run_id=pub.run_id, locked=True)

        names = [n for n in DETAIL_TABLES if again or pub.details.get(n)] if pub.contents else []
        if len(names) < 2:
            for name in names:
                write(name)
            return
        with ThreadPoolExecutor(max_workers=_WRITERS, thread_name_prefix="catalog-details") as pool:
            for done in [pool.submit(write, name) for name in names]:
                done.result()

    # Superseded contents: detail rows no ok file refers to, left for maintenance.

    def _superseded(self) -> set[str]:
        """The contents whose detail rows may be in the detail tables though no ok file refers to
        them (a superset). A catalog without the list (schema 3, or a copy without its hidden
        files) has it made by a sweep of the detail tables. Call with the lock held."""
        try:
            entry = json.loads((self.root / SUPERSEDED).read_text(encoding="utf-8"))
            return set(entry["contents"])
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError):
            pass  # unreadable: made again below
        found = self._sweep()
        self._write_superseded(found)
        return found

    def _write_superseded(self, shas: set[str]) -> None:
        tmp = self.root / f"{SUPERSEDED}.tmp-{os.getpid()}"
        tmp.write_text(json.dumps({"contents": sorted(shas)}), encoding="utf-8")
        os.replace(tmp, self.root / SUPERSEDED)

    def _sweep(self) -> set[str]:
        """Contents with rows in some detail table that no ok file refers to (reads the sha256
        column of every detail table)."""
        live = self.live_contents()
        found: set[str] = set()
        for name in DETAIL_TABLES:
            if self.exists(name):
                found |= set(pc.unique(self._read(name, columns=["sha256"])["sha256"]).to_pylist()) - live
        return found

    def _adopt_journal(self) -> None:
        """A schema-3 publish killed while it pruned left a journal of the contents it was
        pruning: they join the superseded list (maintenance prunes them)."""
        journal = self.root / JOURNAL
        try:
            entry = json.loads(journal.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except ValueError:
            entry = {"contents": []}  # half-written: the sweep below finds what it named
            (self.root / SUPERSEDED).unlink(missing_ok=True)
        self._write_superseded(self._superseded() | set(entry.get("contents", [])))
        journal.unlink()

    def live_contents(self) -> set[str]:
        files = self._read("files", columns=["sha256", "status"])
        ok = files.filter(pc.equal(files["status"], "ok"))
        return {s for s in ok["sha256"].to_pylist() if s}

    def prune(
        self, candidates: set[str] | None = None, *, run_id: str | None = None, live: set[str] | None = None
    ) -> dict[str, int]:
        """Delete detail rows of contents no ok file refers to: of `candidates`, or (None) of
        every content in each detail table (a full sweep: reads each table's sha256 column).
        Call with the lock held."""
        live = self.live_contents() if live is None else live
        removed = {}
        for name in DETAIL_TABLES:
            if candidates is None:
                present = set(pc.unique(self._read(name, columns=["sha256"])["sha256"]).to_pylist())
                gone = present - live
            else:
                gone = candidates - live
            if gone:
                metrics = DeltaTable(self.path(name)).delete(
                    self._key_predicate(TABLES[name], gone), **self._options(name, run_id, f"prune {name}")
                )
                removed[name] = int(metrics.get("num_deleted_rows", 0))
        return removed

    # Housekeeping.

    def maintenance_due(self, rule: MaintenanceRule, now: datetime | None = None) -> bool:
        """The schedule or the size rule asks for :meth:`maintain`. A catalog never maintained
        starts its schedule now (a new catalog has nothing to compact)."""
        state = self._marker()
        if not self.exists("files"):
            return False
        version = DeltaTable(self.path("files")).version()
        now = now or datetime.now(UTC)
        try:
            at = datetime.fromisoformat(state["maintained_at"])
            since = int(state["maintained_files_version"])
        except (KeyError, TypeError, ValueError):
            with self.lock():
                self._write_marker(maintained_at=now.isoformat(), maintained_files_version=version)
            return False
        return now - at >= timedelta(hours=rule.every_hours) or version - since >= rule.after_commits

    def maintain(self, rule: MaintenanceRule = MaintenanceRule()) -> dict[str, dict]:
        """Compact the tables whose small files exceed the rule, vacuum files no version of the
        last `keep_hours` needs, remove expired log entries, sweep orphaned detail rows. Takes
        the lock; readers go on reading meanwhile (old files stay until vacuumed)."""
        report: dict[str, dict] = {}
        with self.lock():
            self.open_for_write()
            started = datetime.now(UTC)
            swept = self.prune(None, run_id=None)  # superseded contents' rows: every one not referred to
            self._write_superseded(set())
            for name in TABLES:
                dt = DeltaTable(self.path(name))
                actions = pa.table(dt.get_add_actions(flatten=True))
                entry: dict[str, Any] = {"files": actions.num_rows, "pruned_rows": swept.get(name, 0)}
                if self._needs_compaction(actions, rule):
                    metrics = dt.optimize.compact(
                        target_size=rule.target_file_bytes, **self._options(name, None, "compact")
                    )
                    entry["compacted"] = {k: metrics.get(k) for k in ("numFilesAdded", "numFilesRemoved")}
                    dt = DeltaTable(self.path(name))
                    dt.create_checkpoint()
                entry["vacuumed"] = len(
                    dt.vacuum(
                        retention_hours=int(rule.keep_hours),
                        dry_run=False,
                        enforce_retention_duration=False,
                        commit_properties=self._commit(None, "vacuum"),
                    )
                )
                dt.cleanup_metadata()
                report[name] = entry
            self._write_marker(
                maintained_at=started.isoformat(), maintained_files_version=DeltaTable(self.path("files")).version()
            )
        return report

    @staticmethod
    def _needs_compaction(actions: pa.Table, rule: MaintenanceRule) -> bool:
        if actions.num_rows < 2:
            return False
        sizes = actions["size_bytes"].to_pylist()
        small = sum(1 for s in sizes if s < rule.small_file_bytes)
        column = f"partition.{PARTITION}"
        if column in actions.column_names:
            counts: dict[str, int] = {}
            for prefix in actions[column].to_pylist():
                counts[prefix] = counts.get(prefix, 0) + 1
            if max(counts.values()) > rule.max_files_per_partition:
                return True
        elif actions.num_rows > rule.max_files_per_partition:
            return True
        return small > rule.max_small_files

    # Plain files for tools that read only files.

    def export(self, folder: Path | str, fmt: str = "parquet", as_of: datetime | None = None) -> list[Path]:
        """Every table as plain files in `folder`: ``<table>.parquet`` (declared types),
        ``<table>.csv`` (lists as JSON arrays, times ISO 8601 UTC) or one ``catalog.xlsx`` (a
        sheet per table; a table over Excel's row limit continues on ``<table> (2)`` ...; times
        UTC). Each file is written under a temporary name and renamed."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tables = {name: self.read(name, as_of=as_of) for name in TABLES}
        written = []
        if fmt == "xlsx":
            target = folder / "catalog.xlsx"
            _write_xlsx(target, tables)
            return [target]
        for name, table in tables.items():
            target = folder / f"{name}.{fmt}"
            tmp = folder / f".{target.name}.tmp-{os.getpid()}"
            if fmt == "parquet":
                pq.write_table(table, tmp)
            elif fmt == "csv":
                import pyarrow.csv as pacsv

                pacsv.write_csv(_flat(table), tmp)
            else:
                raise ValueError(f"export format {fmt!r}: parquet, csv or xlsx")
            os.replace(tmp, target)
            written.append(target)
        return written


def _flat(table: pa.Table) -> pa.Table:
    """Lists as JSON text, times as ISO 8601 text: what CSV and spreadsheets can hold."""
    arrays = []
    for f in table.schema:
        column = table[f.name]
        if pa.types.is_list(f.type):
            column = pa.array(
                [json.dumps(v, ensure_ascii=False) if v is not None else None for v in column.to_pylist()], STR
            )
        elif pa.types.is_timestamp(f.type):
            column = pa.array(
                [v.isoformat(timespec="milliseconds") if v is not None else None for v in column.to_pylist()], STR
            )
        arrays.append(column)
    return pa.Table.from_arrays(arrays, names=table.column_names)


EXCEL_ROWS = 1_048_576


def _write_xlsx(target: Path, tables: dict[str, pa.Table]) -> None:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    per_sheet = EXCEL_ROWS - 1  # the header row
    for name, table in tables.items():
        flat = _flat(table.select([c for c in table.column_names if c != PARTITION]))
        parts = max(1, math.ceil(flat.num_rows / per_sheet))
        for part in range(parts):
            sheet = book.create_sheet(name if part == 0 else f"{name} ({part + 1})")
            sheet.append(flat.column_names)
            chunk = flat.slice(part * per_sheet, per_sheet)
            for batch in chunk.to_batches(10_000):
                columns = [c.to_pylist() for c in batch.columns]
                for row in zip(*columns):
                    sheet.append(list(row))
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    book.save(tmp)
    os.replace(tmp, target)


def duckdb_extension_directory() -> str | None:
    """Where the `duckdb-ext-delta` package put DuckDB's delta extension, if it is installed:
    ``SET extension_directory`` to it and ``LOAD delta`` work without a network."""
    import sysconfig

    for base in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
        folder = Path(base) / "duckdb_ext" / "extensions"
        if folder.is_dir():
            return str(folder)
    return None
