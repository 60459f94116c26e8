"""The declarative configuration (`cadpipe.toml`): what a run should produce, and its limits.

Loading validates the whole file up front, before anything runs: every key against the defaults
below (a misspelt option fails loudly with its section and name, and the nearest known name),
every type, and every value against its rule in `RULES` (ranges of numbers, the allowed values
of names such as page sizes), so a mistake costs a second, not a night of failed files. Each
message names the file, the option and what is allowed.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from documents.names import native_path, to_text

REPO_CONFIG = Path(__file__).resolve().parents[1] / "cadpipe.toml"

DEFAULTS: dict[str, dict[str, Any]] = {
    "inputs": {
        "sources": ["data/samples"],
        "exclude": ["*.part", "*.tmp", "~$*", ".*", "*.bak"],
        "formats": ["dxf", "dwg", "step", "iges", "stl"],
        "follow_symlinks": False,
    },
    "output": {"root": "out"},
    "catalog": {"keep_history_days": 7.0, "maintain_every_hours": 24.0, "maintain_after_commits": 50},
    "dxf": {
        "outputs": ["svg", "pdf", "png"],
        "page_size": "A3",
        "orientation": "landscape",
        "margin_mm": 10.0,
        "png_dpi": 150,
        "png_max_pixels": 16_000_000,
        "png_compression": "fast",
    },
    "step": {
        "outputs": ["stl", "glb", "svg", "png"],
        "stl_linear_tolerance": 0.1,
        "stl_angular_tolerance": 0.5,
        "stl_max_bytes": 100_000_000,
        "hidden_lines": False,
        "default_material": "steel",
        "densities": {"steel": 7850.0, "aluminium": 2700.0, "abs": 1050.0},
    },
    "dwg": {"readers": ["oda", "pycadkit"], "timeout_s": 120.0},
    "bom": {"tags": {}, "tag_format": "{type}-{loop_number}"},
    "title_block": {"block_patterns": [], "tags": {}},
    "limits": {"timeout_s": 300.0, "memory_mb": 6144},
    "retries": {"attempts": 3, "backoff_s": 2.0, "max_backoff_s": 60.0, "jitter": 0.5},
    "run": {"runner": "processes", "workers": 0, "chunk_size": 0, "fail_on": "new"},
    "deliverables": {"register": True, "bom_exports": True, "pdf_sets": True, "group_by": "folder"},
    "logs": {"stdout": False},
    "webhooks": {
        "batch_completed": [],
        "batch_failed": [],
        "file_failed": [],
        "secret_env": "CADPIPE_WEBHOOK_SECRET",
        "secret_block": "",
        "timeout_s": 10.0,
        "attempts": 4,
        "backoff_s": 1.0,
    },
    "watch": {
        "folders": [],
        "settle_s": 2.0,
        "batch_window_s": 5.0,
        "max_wait_s": 60.0,
        "poll": False,
        "poll_interval_s": 2.0,
        "move_processed": False,
        "trigger": "auto",
        "deployment": "cadpipe-batch/drop-folder",
        "retry_s": 60.0,
    },
}

# Sections whose values, not keys, are free-form (a table of names to numbers).
FREE_FORM = {("step", "densities"), ("bom", "tags"), ("title_block", "tags")}
DXF_OUTPUTS = ("svg", "pdf", "png")
STEP_OUTPUTS = ("stl", "glb", "svg", "png")
FORMATS = ("dxf", "dwg", "step", "iges", "stl")
DWG_READERS = ("oda", "pycadkit", "libredwg")
# The pages converters/dxf_render.py knows (tests/unit/test_config.py checks that they agree).
PAGE_SIZES = ("A0", "A1", "A2", "A3", "A4", "letter", "legal", "tabloid")
# When a run counts as failed: a file that failed in this run ("new"), or any failed file ("any",
# also those that failed before and are unchanged: see engine/failures.py).
FAIL_ON = ("new", "any")
WATCH_TRIGGERS = ("auto", "deployment", "local")
# How a worker reaches the DWG reader, not what the reader yields: outside the work identity.
DWG_RUNTIME_KEYS = ("readers", "timeout_s")
# How a PNG's pixels are compressed, not which pixels: outside the work identity (PNGs already made
# stay valid; new ones are written the new way).
PNG_COMPRESSIONS = ("fast", "small")
DXF_ENCODING_KEYS = ("png_compression",)
# More worker processes than this per core only thrash (and each holds a drawing library in memory).
WORKERS_PER_CORE = 4
MIN_MEMORY_MB = 1024  # a worker takes about 600 MB of address space once its libraries are loaded


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class Range:
    """Allowed values of a number: low < x (or low <= x when `low_inclusive`) and x <= high."""

    low: float = 0.0
    high: float = math.inf
    low_inclusive: bool = True
    note: str = ""

    def check(self, value: float, name: str) -> None:
        above = value >= self.low if self.low_inclusive else value > self.low
        if not (above and value <= self.high):
            low = f">= {self.low:g}" if self.low_inclusive else f"> {self.low:g}"
            high = "" if math.isinf(self.high) else f" and <= {self.high:g}"
            raise ConfigError(f"{name} must be {low}{high}{self.note}, not {value!r}")


@dataclass(frozen=True)
class OneOf:
    """A name from a fixed list (`ignore_case`: `a3` is `A3`)."""

    allowed: tuple[str, ...]
    ignore_case: bool = False

    def check(self, value: str, name: str) -> None:
        wanted = value.strip().lower() if self.ignore_case else value
        known = [a.lower() for a in self.allowed] if self.ignore_case else list(self.allowed)
        if wanted not in known:
            raise ConfigError(f"{name} must be one of {', '.join(self.allowed)}, not {value!r}")


@dataclass(frozen=True)
class SubsetOf:
    """A list of names from a fixed list, at least one unless `may_be_empty`."""

    allowed: tuple[str, ...]
    may_be_empty: bool = False

    def check(self, value: list[str], name: str) -> None:
        unknown = [v for v in value if v not in self.allowed]
        if unknown:
            raise ConfigError(
                f"{name} has unknown values {', '.join(map(repr, unknown))} (allowed: {', '.join(self.allowed)})"
            )
        if not value and not self.may_be_empty:
            raise ConfigError(f"{name} must name at least one of {', '.join(self.allowed)}")


@dataclass(frozen=True)
class NonEmpty:
    """A text, or every text of a list, that may not be blank (a path, a name)."""

    what: str = "a value"

    def check(self, value: str | list[str], name: str) -> None:
        values = value if isinstance(value, list) else [value]
        if any(not v.strip() for v in values):
            raise ConfigError(f"{name} may not hold an empty {self.what}")
        if isinstance(value, list) and not value:
            raise ConfigError(f"{name} must name at least one {self.what}")


@dataclass(frozen=True)
class Urls:
    """Webhook receivers: absolute http or https URLs."""

    def check(self, value: list[str], name: str) -> None:
        for url in value:
            scheme, _, rest = url.partition("://")
            if scheme.lower() not in ("http", "https") or not rest.strip("/"):
                raise ConfigError(f"{name} must hold http:// or https:// URLs, not {url!r}")


@dataclass(frozen=True)
class Pattern:
    """A text of a given shape (a deployment is `flow-name/deployment-name`)."""

    regex: str
    shape: str

    def check(self, value: str, name: str) -> None:
        if not re.fullmatch(self.regex, value):
            raise ConfigError(f"{name} must be {self.shape}, not {value!r}")


Rule = Range | OneOf | SubsetOf | NonEmpty | Urls | Pattern


def rules() -> dict[tuple[str, str], Rule]:
    """The rule of every option that has one, besides its type (the defaults' types); a number
    without a rule must be >= 0. Checked after merging, so the message names where it came from."""
    positive = Range(0.0, low_inclusive=False)
    return {
        ("inputs", "sources"): NonEmpty("path"),
        ("inputs", "formats"): SubsetOf(FORMATS),
        ("output", "root"): NonEmpty("path"),
        ("dxf", "outputs"): SubsetOf(DXF_OUTPUTS, may_be_empty=True),
        ("dxf", "page_size"): OneOf(PAGE_SIZES, ignore_case=True),
        ("dxf", "orientation"): OneOf(("landscape", "portrait"), ignore_case=True),
        ("dxf", "png_dpi"): Range(1, 2400),
        ("dxf", "png_max_pixels"): Range(1),
        ("dxf", "png_compression"): OneOf(PNG_COMPRESSIONS, ignore_case=True),
        ("dxf", "margin_mm"): Range(0, 500),
        ("step", "outputs"): SubsetOf(STEP_OUTPUTS, may_be_empty=True),
        ("step", "stl_linear_tolerance"): positive,
        ("step", "stl_angular_tolerance"): Range(0, math.pi, low_inclusive=False),
        ("step", "stl_max_bytes"): Range(1),
        ("step", "default_material"): NonEmpty("material name"),
        ("dwg", "readers"): SubsetOf(DWG_READERS),
        ("dwg", "timeout_s"): positive,
        ("limits", "timeout_s"): positive,
        ("limits", "memory_mb"): Range(0, note=" (0 = no cap)"),
        ("retries", "attempts"): Range(1, 100),
        ("retries", "jitter"): Range(0, 1),
        ("run", "runner"): OneOf(("processes", "dask")),
        ("run", "workers"): Range(
            0, WORKERS_PER_CORE * _cores(), note=f" ({WORKERS_PER_CORE} per core; 0 = one per core)"
        ),
        ("run", "fail_on"): OneOf(FAIL_ON),
        ("webhooks", "batch_completed"): Urls(),
        ("webhooks", "batch_failed"): Urls(),
        ("webhooks", "file_failed"): Urls(),
        ("webhooks", "timeout_s"): positive,
        ("webhooks", "attempts"): Range(1, 100),
        ("watch", "poll_interval_s"): Range(0, 3600, note=" (0 = 1 s)"),
        ("watch", "retry_s"): positive,
        ("watch", "trigger"): OneOf(WATCH_TRIGGERS),
        ("watch", "deployment"): Pattern(r"[^/\s]+/[^/\s]+", "a deployment named flow-name/deployment-name"),
        ("catalog", "maintain_every_hours"): positive,
        ("catalog", "maintain_after_commits"): Range(1),
    }


class ConfigError(ValueError):
    """The configuration file is unreadable or names an unknown or invalid option."""


@dataclass(frozen=True)
class InputSettings:
    """`[inputs]`: which files of the sources are inputs."""

    exclude: tuple[str, ...]
    formats: tuple[str, ...]
    follow_symlinks: bool


@dataclass(frozen=True)
class Limits:
    """`[limits]`: what one file may take (0 memory: no cap)."""

    timeout_s: float
    memory_mb: int


@dataclass(frozen=True)
class RunOptions:
    """`[run]`: how the batch is run (0: the default for this machine)."""

    runner: str
    workers: int
    chunk_size: int
    fail_on: str = "new"  # which failures fail a run: "new" or "any" (engine/failures.py)


@dataclass(frozen=True)
class CatalogSettings:
    """`[catalog]`: how long its history is kept and when it is compacted and vacuumed."""

    keep_history_days: float
    maintain_every_hours: float
    maintain_after_commits: int


@dataclass(frozen=True)
class Config:
    """Validated settings; `raw` keeps the merged tables for the option fingerprints."""

    raw: dict[str, dict[str, Any]]
    base_dir: Path
    path: Path | None = None
    sources: tuple[Path, ...] = field(default=())
    out: Path = Path("out")

    def section(self, name: str) -> dict[str, Any]:
        return self.raw[name]

    @property
    def inputs(self) -> InputSettings:
        raw = self.raw["inputs"]
        return InputSettings(tuple(raw["exclude"]), tuple(raw["formats"]), bool(raw["follow_symlinks"]))

    @property
    def limits(self) -> Limits:
        raw = self.raw["limits"]
        return Limits(float(raw["timeout_s"]), int(raw["memory_mb"]))

    @property
    def catalog(self) -> CatalogSettings:
        raw = self.raw["catalog"]
        return CatalogSettings(
            float(raw["keep_history_days"]), float(raw["maintain_every_hours"]), int(raw["maintain_after_commits"])
        )

    @property
    def run(self) -> RunOptions:
        raw = self.raw["run"]
        return RunOptions(
            str(raw["runner"]), int(raw["workers"] or 0), int(raw["chunk_size"] or 0), str(raw["fail_on"])
        )

    def options_for(self, fmt: str) -> dict[str, Any]:
        """The options that shape the outputs of one input format: part of the work identity."""
        if fmt in ("dxf", "dxf-binary", "dwg", "unknown"):
            options = {
                "family": "dxf",
                **self.raw["dxf"],
                "bom": self.raw["bom"],
                "title_block": self.raw["title_block"],
            }
            if fmt == "dwg":  # the reader that converts it, and its version: another reader, other outputs
                options["dwg"] = _dwg_options(self.raw["dwg"])
            return options
        return {"family": "step", **self.raw["step"]}

    def options_key(self, fmt: str) -> str:
        options = self.options_for(fmt)
        if "dwg" in options:
            options["dwg"] = {k: v for k, v in options["dwg"].items() if k not in DWG_RUNTIME_KEYS}
        for key in DXF_ENCODING_KEYS:
            options.pop(key, None)
        return fingerprint(options)


def _dwg_options(section: dict[str, Any]) -> dict[str, Any]:
    from documents.dwg_readers import choose_reader

    choice = choose_reader(tuple(section["readers"]))
    return {"reader": choice.name, "reader_version": choice.version, **section}


def fingerprint(value: Any) -> str:
    blob = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _merge(defaults: dict, given: dict, where: str) -> dict:
    merged = copy.deepcopy(defaults)
    for section, values in given.items():
        if section not in defaults:
            raise ConfigError(
                f"{where}: unknown section [{section}]{_nearest(section, defaults)} (known: {', '.join(defaults)})"
            )
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: [{section}] must be a table")
        for key, value in values.items():
            if key not in defaults[section]:
                known = ", ".join(defaults[section])
                hint = _nearest(key, defaults[section])
                raise ConfigError(f"{where}: unknown option {section}.{key}{hint} (known: {known})")
            expected = defaults[section][key]
            if (section, key) in FREE_FORM:
                if not isinstance(value, dict):
                    raise ConfigError(f"{where}: {section}.{key} must be a table")
                merged[section][key] = _free_form(value, defaults[section][key], f"{where}: {section}.{key}")
                continue
            merged[section][key] = _coerce(value, expected, f"{where}: {section}.{key}")
    return merged


def _nearest(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _free_form(value: dict, expected: dict, name: str) -> dict:
    """Densities map names to numbers; tag tables map a column to a list of tag spellings."""
    section_is_numeric = bool(expected) and all(isinstance(v, float) for v in expected.values())
    out: dict[str, float | list[str]] = {}
    for key, item in value.items():
        if section_is_numeric:
            if isinstance(item, bool) or not isinstance(item, (int, float)) or not (0 < item < math.inf):
                raise ConfigError(f"{name}.{key} must be a positive number, not {item!r}")
            out[str(key)] = float(item)
        else:
            if not isinstance(item, list) or not all(isinstance(v, str) for v in item):
                raise ConfigError(f"{name}.{key} must be a list of tag spellings, not {item!r}")
            out[str(key)] = list(item)
    return out


def _coerce(value: Any, expected: Any, name: str) -> Any:
    if isinstance(expected, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, not {value!r}")
        return value
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name} must be a number, not {value!r}")
        # TOML has nan and inf; a comparison with nan is always False, so check it first.
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, not {value!r}")
        if isinstance(expected, int) and not isinstance(expected, float) and value != int(value):
            raise ConfigError(f"{name} must be a whole number, not {value!r}")
        return type(expected)(value) if isinstance(expected, float) else int(value)
    if isinstance(expected, list):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{name} must be a list of strings, not {value!r}")
        return list(value)
    if isinstance(expected, str) and not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, not {value!r}")
    return value


def _check_rules(raw: dict, where: str) -> None:
    """Every option against its rule (numbers without one: >= 0), then what spans options."""
    table = rules()
    for section, values in raw.items():
        for key, value in values.items():
            rule = table.get((section, key))
            if rule is None and isinstance(value, (int, float)) and not isinstance(value, bool):
                rule = Range()
            if rule is not None:
                rule.check(value, f"{where}: {section}.{key}")
    memory_mb = raw["limits"]["memory_mb"]
    if 0 < memory_mb < MIN_MEMORY_MB:
        raise ConfigError(
            f"{where}: limits.memory_mb must be 0 (no cap) or at least {MIN_MEMORY_MB}: "
            f"a worker needs that much to load its libraries, not {memory_mb!r}"
        )
    step = raw["step"]
    if step["default_material"].strip().lower() not in {name.strip().lower() for name in step["densities"]}:
        raise ConfigError(
            f"{where}: step.default_material {step['default_material']!r} has no density in [step.densities] "
            f"(known: {', '.join(step['densities']) or 'none'})"
        )
    _validate_bom(raw, where)
    _validate_deliverables(raw, where)


def _validate_bom(raw: dict, where: str) -> None:
    from extractors.dxf_bom import BOM_VALUE_COLUMNS, tag_format_fields

    columns = set(BOM_VALUE_COLUMNS) | set(raw["bom"]["tags"])
    tag_format = raw["bom"]["tag_format"]
    try:
        unknown = sorted(set(tag_format_fields(tag_format)) - columns)
    except ValueError as exc:
        raise ConfigError(f"{where}: bom.tag_format {tag_format!r}: {exc}") from None
    if unknown:
        raise ConfigError(
            f"{where}: bom.tag_format {tag_format!r} names {unknown}, which are no BOM columns "
            f"(known: {sorted(columns)}; add one with [bom] tags)"
        )


def _validate_deliverables(raw: dict, where: str) -> None:
    from extractors.title_block import DEFAULT_TITLE_TAG_MAP

    group_by = raw["deliverables"]["group_by"]
    fields = set(DEFAULT_TITLE_TAG_MAP) | set(raw["title_block"]["tags"])
    if group_by != "folder" and group_by not in fields:
        raise ConfigError(
            f"{where}: deliverables.group_by must be 'folder' or a title-block field "
            f"({', '.join(sorted(fields))}), not {group_by!r}"
        )


# Where `cadpipe apply` writes revised drawings: a library of its own, catalogued from there.
REVISIONS_DIR = "revisions"


def check_roots(sources, out: Path, what: str = "source") -> None:
    """A source may not overlap the output root: not be it, not contain it (every run would take
    its own quarantine copies as new inputs), not lie inside it (except `OUT/revisions/`, the
    drawings `cadpipe apply` revised, which are a library of their own). Links are resolved."""
    out_real = os.path.realpath(out)
    revisions = os.path.join(out_real, REVISIONS_DIR)
    for source in sources:
        real = os.path.realpath(source)
        if _within(real, revisions):
            continue
        if real == out_real or _within(out_real, real):
            raise ConfigError(
                f"the output root {to_text(out)} lies inside the {what} {to_text(source)}; choose an output root outside it"
            )
        if _within(real, out_real):
            raise ConfigError(
                f"the {what} {to_text(source)} lies inside the output root {to_text(out)}; choose one outside it"
            )


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def load_config(
    path: str | Path | None = None,
    *,
    sources: list[str] | None = None,
    out: str | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> Config:
    """Read a config file (default: the repository's `cadpipe.toml`) and apply command-line choices.

    Paths in the file are relative to the file's folder; `sources` and `out` given here are relative
    to the current directory, as a user typing them expects.
    """
    config_path = Path(path).resolve() if path else (REPO_CONFIG if REPO_CONFIG.exists() else None)
    given: dict = {}
    if config_path is not None:
        try:
            given = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {config_path}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_path}: invalid TOML: {exc}") from exc
    where = str(config_path or "defaults")
    raw = _merge(DEFAULTS, given, where)
    _check_rules(raw, where)
    if overrides:
        raw = _merge(raw, overrides, "command line")
        _check_rules(raw, "command line")
    base = config_path.parent if config_path else Path.cwd()
    # Given here (command line, flow parameters): the catalog's text form of a path (documents/names.py).
    # Absolute, not resolved: a source that is a link is discovery's to judge (engine/discover.py).
    source_paths = (
        tuple(Path(os.path.abspath(native_path(s))) for s in sources)
        if sources
        else tuple(Path(os.path.abspath(base / s)) for s in raw["inputs"]["sources"])
    )
    out_path = native_path(out).resolve() if out else (base / raw["output"]["root"]).resolve()
    return Config(raw=raw, base_dir=base, path=config_path, sources=source_paths, out=out_path)
