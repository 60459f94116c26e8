"""The shapes that cross the layers: what a worker is asked to do and what it answers.

- `Output`, `FileResult`: what the extractors and converters make of one file (the `result.json`
  of its output folder): summary values, detail tables, output files and warnings.
- `Job`: one file of a batch, as the plan hands it to a worker process (picklable, and JSON-safe
  as a Prefect parameter: paths in the catalog's text form, documents/names.py).
- `FileOutcome`: the worker's answer, ok or failed; `record()` is the catalog's view of it.

Every worker job (a batch `Job`, an apply run's `EditJob`) has `path`, `source_root`, `work_id` and
`attempt`, and `retried()`: that is all the worker runner (engine/executor.py) and the failure
envelope (documents/errors.py) need of it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

J = TypeVar("J", bound="WorkerJob")


class WorkerJob(Protocol):
    @property
    def path(self) -> str: ...
    @property
    def source_root(self) -> str: ...
    @property
    def work_id(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    def retried(self: J) -> J: ...


class WorkerAnswer(Protocol):
    @property
    def status(self) -> str: ...
    @property
    def permanent(self) -> bool: ...


@dataclass(frozen=True)
class Output:
    """One file made from an input: `layout` is the drawing layout (None for a model's mesh)."""

    layout: str | None
    format: str
    file: str  # a name inside the work's output folder
    empty: bool = False


@dataclass
class FileResult:
    """What the extractors and converters made of one file."""

    summary: dict[str, Any] = field(default_factory=dict)  # one catalog row's values
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # detail rows by table
    outputs: list[Output] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Drawings: per layout, where its coordinates land on its page (converters/placement.py):
    # {"layout", "stem", "placement"}; revision overlays align two renders by it.
    pages: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Job:
    """One file of a batch for a worker: which bytes, which options, under which identity."""

    source_root: str
    path: str
    format: str
    sha256: str
    work_id: str
    options: dict[str, Any]
    options_key: str
    version: str
    out: str
    attempt: int = 1
    follow_symlinks: bool = False

    def retried(self) -> Job:
        return dataclasses.replace(self, attempt=self.attempt + 1)

    def as_read(self, sha256: str, format: str, work_id: str) -> Job:
        """The job for the content the worker found (rewritten since discovery)."""
        return dataclasses.replace(self, sha256=sha256, format=format, work_id=work_id)


@dataclass
class FileOutcome:
    """A worker's answer for one file. `sha256`, `format`, `size` and `mtime_ns` describe the
    input as the worker read it (None when it could not read it)."""

    status: Literal["ok", "failed"]
    work_id: str | None
    attempt: int = 1
    duration_ms: int | None = None
    sha256: str | None = None
    format: str | None = None
    size: int | None = None
    mtime_ns: int | None = None
    # ok
    outputs: list[str] = field(default_factory=list)  # paths relative to OUT
    warnings: list[str] = field(default_factory=list)
    reused: bool = False
    # failed
    stage: str | None = None
    error_class: str | None = None
    error_message: str | None = None
    permanent: bool = False
    traceback: str | None = None
    limit: float | None = None  # the limit (timeout_s, memory_mb) a Timeout or MemoryLimit hit

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def record(self) -> dict[str, Any]:
        """The catalog's view: the fields that apply to this status, without the empty ones."""
        values = dataclasses.asdict(self)
        failed_only = ("stage", "error_class", "error_message", "permanent", "traceback", "limit")
        drop = failed_only if self.ok else ("reused", "outputs", "warnings")
        return {k: v for k, v in values.items() if v is not None and k not in drop}
