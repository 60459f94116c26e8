"""Error kinds shared by every layer, and the failure envelope a file's work returns.

The batch decides whether to retry from the kind alone: an ``InputError`` means the file itself
is bad or unsupported (retrying cannot help); a ``TransientError`` means the environment failed
(I/O, a timeout) and the same work may succeed later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from documents.contracts import FileOutcome, WorkerJob
from documents.names import printable


class CadpipeError(Exception):
    """Base of every error cadpipe raises on purpose."""

    permanent = True


class InputError(CadpipeError):
    """The input cannot be processed as it is: corrupt, empty of data, or of an unsupported kind."""

    permanent = True


class TransientError(CadpipeError):
    """A fault outside the input (I/O, resources, time); the same work may succeed on retry."""

    permanent = False


class Stage:
    """Remembers which stage a file is in, so a failure can say where it happened."""

    def __init__(self) -> None:
        self.name = "open"

    def __call__(self, name: str) -> None:
        self.name = name


def _malloc_failed(exc: BaseException) -> bool:
    """MuPDF reports the address-space cap as its own error ("code=2: malloc (N bytes) failed")."""
    return type(exc).__name__ == "FzErrorSystem" and "malloc" in str(exc)


def classify(exc: BaseException) -> tuple[str, bool]:
    """(error_class, permanent) of an exception raised while working on a file."""
    if isinstance(exc, CadpipeError):
        return type(exc).__name__, exc.permanent
    if isinstance(exc, MemoryError) or _malloc_failed(exc):
        return "MemoryLimit", True  # the same file blows the same limit again (retried once it is raised)
    if isinstance(exc, OSError):
        return type(exc).__name__, False  # disk, network share, file locked: may pass
    # Anything else is a library failing on this content: deterministic, so retrying cannot help.
    return type(exc).__name__, True


def failure(job: WorkerJob, stage: str, error_class: str, message: str, permanent: bool, **extra: Any) -> FileOutcome:
    """The failure envelope of every worker job: the message leads with the file and the stage.
    `extra`: more FileOutcome fields (duration_ms, traceback, limit, the input as read)."""
    name = Path(job.path).name
    message = printable(message)  # a library's message may carry the file's raw name or content
    message = message.removeprefix(f"{name}: ")  # the path leads the message already
    values: dict[str, Any] = {"work_id": job.work_id, "attempt": job.attempt, **extra}
    return FileOutcome(
        status="failed",
        stage=stage,
        error_class=error_class,
        error_message=f"{job.path}: {stage}: {message}",
        permanent=permanent,
        **values,
    )
