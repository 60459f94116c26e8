"""The batch's work function, counting its calls: a test of the pool's scheduling can then see how
often each file was really worked on (the outputs look the same whether made once or twice)."""

from __future__ import annotations

from pathlib import Path

from documents.contracts import FileOutcome, Job
from engine.executor import WorkFunction
from engine.work import init_worker, process_job


def calls(out: Path) -> list[str]:
    """The paths worked on into `out`, one line per call."""
    log = Path(out) / "calls.txt"
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


def counted_process_job(job: Job) -> FileOutcome:
    Path(job.out).mkdir(parents=True, exist_ok=True)
    with open(Path(job.out) / "calls.txt", "a", encoding="utf-8") as log:  # one short append: atomic
        log.write(job.path + "\n")
    return process_job(job)


COUNTED_WORK = WorkFunction(counted_process_job, init_worker)
