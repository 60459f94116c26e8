"""Time limits derived from this run, never fixed seconds: a multiple of what a small drawing's
work takes here and now, so that a loaded machine (or a fast one) changes no test's verdict."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path

from documents.contracts import Job
from engine.config import Config
from engine.plan import work_id
from engine.work import process_job
from tests.hostile_inputs import drawing


def small_model(path: Path) -> Path:
    """A small STEP model (a drilled plate), made by cadquery."""
    import cadquery as cq

    cq.exporters.export(cq.Workplane().box(60, 40, 10).faces(">Z").workplane().hole(12), str(path), "STEP")
    return path


def small_work_seconds(tmp: Path, cfg: Config, fmt: str = "dxf") -> float:
    """Seconds one small drawing's (`fmt` "step": one small model's) work takes in this process,
    with `cfg`'s options."""
    folder = tmp / f"calibration-{fmt}"
    folder.mkdir(exist_ok=True)
    name = f"small.{fmt}"
    if fmt == "step":
        small_model(folder / name)
    else:
        (folder / name).write_bytes(drawing(0))
    sha = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    job = Job(
        source_root=str(folder),
        path=name,
        format=fmt,
        sha256=sha,
        work_id=work_id(sha, cfg.options_key(fmt), "calibration"),
        options=cfg.options_for(fmt),
        options_key=cfg.options_key(fmt),
        version="calibration",
        out=str(tmp / f"calibration-{fmt}-out"),
    )
    process_job(job)  # the first call pays for imports
    started = time.monotonic()
    assert process_job(dataclasses.replace(job, out=str(tmp / f"calibration-{fmt}-out-2"))).ok
    return time.monotonic() - started


def calibrated_timeout(tmp: Path, cfg: Config, *, factor: float = 40.0, floor: float = 10.0, fmt: str = "dxf") -> float:
    """`factor` times a small drawing's (or model's) work here (at least `floor` seconds), rounded
    to 0.1 s: a normal small file never meets it, and work thousands of times larger always does."""
    return round(max(floor, factor * small_work_seconds(tmp, cfg, fmt)), 1)
