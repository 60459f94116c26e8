"""Plan: compare what was discovered with the catalog and the outputs on disk; do only the rest.

The identity of a piece of work is the input's content hash, the options that shape its outputs
and the pipeline version. Four outcomes per input:
- unchanged: the catalog already records this path as done with this work identity, and its
  outputs are still on disk;
- still_failed: the catalog records this path as failed for good (a corrupt or unsupported
  input) with this work identity: the same input would fail the same way, so it is not retried;
- reuse: the work was done (its output folder is complete) but not recorded for this path: a moved,
  renamed or copied file, or a run that crashed before publishing;
- todo: everything else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from documents.contracts import Job
from engine.discover import InputFile, Unreadable
from engine.records import FileRecord


def work_id(sha256: str, options_key: str, version: str) -> str:
    return hashlib.sha256(f"{sha256}\n{options_key}\n{version}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class WorkItem:
    input: InputFile
    work_id: str
    options: dict
    options_key: str = ""
    version: str = ""

    def to_job(self, out: str, follow_symlinks: bool = False) -> Job:
        """The job a worker process receives. The worker recomputes the work id from
        `options_key` and `version` if the content changed since discovery."""
        if self.input.sha256 is None or self.input.format is None:
            raise ValueError(f"{self.input.path}: discovery could not read it; it is no job for a worker")
        return Job(
            source_root=self.input.source_root,
            path=self.input.path,
            format=self.input.format,
            sha256=self.input.sha256,
            work_id=self.work_id,
            options=self.options,
            options_key=self.options_key,
            version=self.version,
            out=out,
            follow_symlinks=follow_symlinks,
        )


@dataclass
class Plan:
    todo: list[WorkItem] = field(default_factory=list)
    reuse: list[WorkItem] = field(default_factory=list)
    unchanged: list[WorkItem] = field(default_factory=list)
    still_failed: list[WorkItem] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)  # discovery could not take them
    warnings: list[str] = field(default_factory=list)  # about the sources (one holds no CAD file)

    @property
    def total(self) -> int:
        return len(self.todo) + len(self.reuse) + len(self.unchanged) + len(self.still_failed) + len(self.unreadable)


def make_plan(
    inputs: list[InputFile],
    *,
    options_for,
    options_key,
    version: str,
    recorded: Mapping[tuple[str, str], FileRecord],
    completed: set[str],
) -> Plan:
    """`recorded` maps (source_root, path) to what the catalog records of it (Catalog.recorded,
    whose `retryable` is judged for the memory cap now in force); `completed` holds the work ids
    whose output folder is complete on disk."""
    plan = Plan()
    keys: dict[str | None, str] = {}  # options_key per format: a fingerprint of the options, costly
    for item in inputs:
        key = keys[item.format] if item.format in keys else keys.setdefault(item.format, options_key(item.format))
        wid = work_id(item.sha256, key, version)
        work = WorkItem(item, wid, options_for(item.format), key, version)
        previous = recorded.get(item.key)
        same = previous if previous is not None and previous.work_id == wid else None  # same work identity
        if same is not None and same.status == "ok" and wid in completed:
            plan.unchanged.append(work)
        elif same is not None and same.status == "failed" and not same.retryable:
            plan.still_failed.append(work)
        elif wid in completed:
            plan.reuse.append(work)
        else:
            plan.todo.append(work)
    return plan
