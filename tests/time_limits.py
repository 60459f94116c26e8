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


def small_work_seconds(tmp: Path, cfg: Config) -> float:
    """Seconds one small drawing's work takes in this process, with `cfg`'s options."""
    folder = tmp / "calibration"
    folder.mkdir(exist_ok=True)
    (folder / "small.dxf").write_bytes(drawing(0))
    sha = hashlib.sha256((folder / "small.dxf").read_bytes()).hexdigest()
    job = Job(
        source_root=str(folder),
        path="small.dxf",
        format="dxf",
        sha256=sha,
        work_id=work_id(sha, cfg.options_key("dxf"), "calibration"),
        options=cfg.options_for("dxf"),
        options_key=cfg.options_key("dxf"),
        version="calibration",
        out=str(tmp / "calibration-out"),
    )
    process_job(job)  # the first call pays for imports
    started = time.monotonic()
    assert process_job(dataclasses.replace(job, out=str(tmp / "calibration-out-2"))).ok
    return time.monotonic() - started


def calibrated_timeout(tmp: Path, cfg: Config, *, factor: float = 40.0, floor: float = 10.0) -> float:
    """`factor` times a small drawing's work here (at least `floor` seconds), rounded to 0.1 s: a
    normal small file never meets it, and work thousands of times larger always does."""
    return round(max(floor, factor * small_work_seconds(tmp, cfg)), 1)
