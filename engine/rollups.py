"""BOM roll-ups over the catalog, recomputed from `bom` and `files` after every publish.

Two catalog tables (beside the others in `OUT/catalog/`, each replaced whole in one commit):

``bom_rollup`` - per drawing content, the same part number summed
    sha256, part_number, unit, description, total_qty, qty_unknown, rows, inserts.
    Key: (sha256, part_number, unit): quantities in different units are not added up. ``total_qty``
    sums the known quantities (None when none is known); ``qty_unknown`` counts rows whose QTY was
    not a number (``AR``, ``see note``); ``rows`` the BOM rows summed; ``inserts`` their block
    references (None for parts-list table rows); ``description`` is the first one given.

``where_used`` - across the library
    part_number, unit, description, drawings, contents, total_qty, qty_unknown, paths.
    ``drawings`` counts the drawing paths (source_root/path of every file recorded ok) that use the
    part, ``paths`` lists them sorted; ``contents`` counts distinct drawing contents. ``total_qty``
    adds each content's total once: a byte-identical copy of a drawing at a second path is one
    more path, not twice the parts.

BOM rows without a part number (most attributed blocks carry none) are not rolled up: they cannot
be matched across drawings. The datasheet of each drawing lists every BOM row.

The same from DuckDB, straight from the tables (README, "The catalog"):
    SELECT part_number, drawings, total_qty FROM delta_scan('OUT/catalog/where_used')
    ORDER BY drawings DESC, part_number;
    SELECT f.path, r.part_number, r.total_qty
    FROM delta_scan('OUT/catalog/bom_rollup') r JOIN delta_scan('OUT/catalog/files') f USING (sha256)
    WHERE f.status = 'ok';
"""

from __future__ import annotations

import posixpath

import pandas as pd

from engine.catalog import Catalog

ROLLUP_TABLE = "bom_rollup"
WHERE_USED_TABLE = "where_used"
ROLLUP_COLUMNS = ["sha256", "part_number", "unit", "description", "total_qty", "qty_unknown", "rows", "inserts"]
WHERE_USED_COLUMNS = [
    "part_number",
    "unit",
    "description",
    "drawings",
    "contents",
    "total_qty",
    "qty_unknown",
    "paths",
]
_KEY = ["sha256", "part_number", "unit"]


def _first(values: pd.Series):
    present = values.dropna()
    return present.iloc[0] if len(present) else None


def bom_rollup(bom: pd.DataFrame) -> pd.DataFrame:
    """Per drawing content: BOM rows of the same part number (and unit) summed."""
    if bom.empty or "part_number" not in bom.columns:
        return pd.DataFrame(columns=ROLLUP_COLUMNS)
    rows = bom[bom["part_number"].notna()].copy()
    if rows.empty:
        return pd.DataFrame(columns=ROLLUP_COLUMNS)
    rows["qty"] = pd.to_numeric(rows["qty"], errors="coerce")
    rows["insert_count"] = pd.to_numeric(rows["insert_count"], errors="coerce")
    grouped = rows.groupby(_KEY, dropna=False, sort=True)
    frame = pd.DataFrame(
        {
            "description": grouped["description"].agg(_first),
            "total_qty": grouped["qty"].sum(min_count=1),
            "qty_unknown": grouped["qty"].agg(lambda q: int(q.isna().sum())),
            "rows": grouped.size(),
            "inserts": grouped["insert_count"].sum(min_count=1),
        }
    ).reset_index()
    return _objects_to_none(frame[ROLLUP_COLUMNS])


def where_used(rollup: pd.DataFrame, files: pd.DataFrame) -> pd.DataFrame:
    """Across the library: which drawings use each part number, and how many in all."""
    if rollup.empty or files.empty:
        return pd.DataFrame(columns=WHERE_USED_COLUMNS)
    ok = files[files["status"] == "ok"]
    paths_of: dict[str, list[str]] = {}
    for root, path, sha in zip(ok["source_root"], ok["path"], ok["sha256"]):
        paths_of.setdefault(sha, []).append(posixpath.join(root, path))
    live = rollup[rollup["sha256"].isin(paths_of)]
    if live.empty:
        return pd.DataFrame(columns=WHERE_USED_COLUMNS)
    records = []
    for (part, unit), group in live.groupby(["part_number", "unit"], dropna=False, sort=True):
        paths = sorted(p for sha in group["sha256"] for p in paths_of[sha])
        records.append(
            {
                "part_number": part,
                "unit": None if pd.isna(unit) else unit,
                "description": _first(group["description"]),
                "drawings": len(paths),
                "contents": int(group["sha256"].nunique()),
                "total_qty": group["total_qty"].sum(min_count=1),
                "qty_unknown": int(group["qty_unknown"].sum()),
                "paths": paths,
            }
        )
    frame = pd.DataFrame(records, columns=WHERE_USED_COLUMNS)
    frame = frame.sort_values(["drawings", "part_number"], ascending=[False, True], ignore_index=True)
    return _objects_to_none(frame)


def write_rollups(catalog: Catalog) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Recompute both roll-ups from the catalog and replace their tables; return (rollup, where_used).
    When neither `bom` nor `files` changed since they were computed (an unchanged rerun) they
    are read back instead: recomputing them reads every BOM row of the library."""
    store = catalog.store
    with catalog.lock():  # a concurrent publish must not change bom/files between read and write
        sources = store.versions(["bom", "files"])
        if sources and all(store.derived_from(t) == sources for t in (ROLLUP_TABLE, WHERE_USED_TABLE)):
            return _objects_to_none(catalog.read(ROLLUP_TABLE)), _objects_to_none(catalog.read(WHERE_USED_TABLE))
        rollup = bom_rollup(catalog.read("bom"))
        used = where_used(rollup, catalog.read("files", columns=["source_root", "path", "sha256", "status"]))
        store.overwrite(ROLLUP_TABLE, _rows(_typed(rollup)), locked=True, derived_from=sources)
        store.overwrite(WHERE_USED_TABLE, _rows(_typed(used)), locked=True, derived_from=sources)
    return rollup, used


def _rows(frame: pd.DataFrame) -> list[dict]:
    """A roll-up's rows for the catalog: pandas' missing values as None, path arrays as lists."""
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    for row in rows:
        if row.get("paths") is not None:
            row["paths"] = list(row["paths"])
    return rows


def _objects_to_none(frame: pd.DataFrame) -> pd.DataFrame:
    """NaN in text columns -> None, so Parquet stores nulls and Jinja shows nothing."""
    for column in ("part_number", "unit", "description"):
        if column in frame.columns:
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Stable Parquet types also for empty tables (an all-null column would be typed null)."""
    types = {
        "total_qty": "float64",
        "inserts": "float64",
        "qty_unknown": "int64",
        "rows": "int64",
        "drawings": "int64",
        "contents": "int64",
    }
    return frame.astype({c: t for c, t in types.items() if c in frame.columns})
