"""The engine's run without Prefect, for the plan and catalog tests: discover, plan against the
catalog and the outputs on disk, do the planned work in this process, publish. The same steps and
the same outcomes as the batch flow (flows/batch.py), on real files in a temporary folder."""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from documents.names import to_text
from engine.catalog import Catalog, Outcome, now_iso
from engine.config import Config, load_config
from engine.discover import InputFile, scan
from engine.plan import Plan, make_plan, work_id
from engine.version import pipeline_version
from engine.work import is_complete, process_job
from tests.hostile_inputs import drawing

SVG_ONLY = '[dxf]\noutputs = ["svg"]\n'  # the least work that still renders


@dataclass
class Library:
    """A source folder of generated drawings and an output root, under one temporary folder."""

    root: Path

    @property
    def src(self) -> Path:
        return self.root / "library"

    @property
    def out(self) -> Path:
        return self.root / "out"

    def add(self, name: str, seed: int = 0, **kw) -> Path:
        path = self.src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(drawing(seed, **kw))
        return path

    def config(self, toml: str = SVG_ONLY, sources: list[Path] | None = None) -> Config:
        path = self.root / f"cadpipe-{hashlib.sha256(toml.encode()).hexdigest()[:8]}.toml"
        path.write_text(toml, encoding="utf-8")
        return load_config(path, sources=[str(s) for s in sources or [self.src]], out=str(self.out))


def plan_for(cfg: Config, version: str | None = None) -> tuple[list[InputFile], Plan]:
    """What the batch would do now: discovery with the catalog's knowledge, then the plan."""
    catalog = Catalog(cfg.out)
    found = scan(
        list(cfg.sources),
        exclude=cfg.raw["inputs"]["exclude"],
        formats=cfg.raw["inputs"]["formats"],
        known=catalog.known_files(),
        skip=[cfg.out],
        roots=catalog.roots(),
    )
    version = version or pipeline_version()
    ids = {work_id(f.sha256, cfg.options_key(f.format), version) for f in found.inputs}
    plan = make_plan(
        found.inputs,
        options_for=cfg.options_for,
        options_key=cfg.options_key,
        version=version,
        recorded=catalog.recorded(cfg.raw["limits"]["memory_mb"]),
        completed={wid for wid in ids if is_complete(cfg.out, wid)},
    )
    plan.unreadable = found.problems
    return found.inputs, plan


def outcomes_of(cfg: Config, plan: Plan) -> list[Outcome]:
    """Do the planned work (in this process) and say how each input ended, as the batch does."""
    outcomes = [Outcome(item.input, item.work_id, "unchanged") for item in plan.unchanged]
    outcomes += [Outcome(item.input, item.work_id, "failed", {"unchanged": True}) for item in plan.still_failed]
    outcomes += [Outcome(item.input, item.work_id, "reused") for item in plan.reuse]
    for item in plan.todo:
        result = process_job(item.to_job(to_text(cfg.out)))
        state = "processed" if result.ok else "failed"
        outcomes.append(Outcome(item.input, result.work_id or item.work_id, state, result.record()))
    return outcomes


def publish(cfg: Config, outcomes: list[Outcome], walked: list[Path] | None = None) -> dict:
    """Publish a run that walked `walked` (default: the config's sources)."""
    run = {
        "run_id": uuid.uuid4().hex[:12],
        "started_at": now_iso(),
        "sources": [to_text(s) for s in cfg.sources],
        "pipeline_version": pipeline_version(),
    }
    roots = [to_text(os.path.realpath(s)) for s in (walked if walked is not None else cfg.sources)]
    return Catalog(cfg.out).publish(run, outcomes, roots)


def engine_run(cfg: Config, version: str | None = None) -> tuple[Plan, dict]:
    """One whole run: plan, work, publish. Returns the plan it followed and the run's row."""
    _, plan = plan_for(cfg, version)
    return plan, publish(cfg, outcomes_of(cfg, plan))


def names(items) -> list[str]:
    return sorted(item.input.path for item in items)
