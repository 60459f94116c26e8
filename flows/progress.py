"""Progress events of the running batch, for whoever listens in this process (the CLI's bar,
the Prefect progress artifact). Listeners must be quick and thread-safe: chunk tasks call them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from documents.contracts import FileOutcome

log = logging.getLogger("cadpipe.progress")


class Listener(Protocol):
    def planned(self, total: int, todo: int) -> None: ...
    def file_done(self, path: str, outcome: FileOutcome | None) -> None: ...  # None: unchanged


_listeners: list[Listener] = []
_lock = threading.Lock()


def subscribe(listener: Listener) -> Callable[[], None]:
    with _lock:
        _listeners.append(listener)

    def unsubscribe() -> None:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return unsubscribe


def planned(total: int, todo: int) -> None:
    for listener in list(_listeners):
        _call(listener.planned, total, todo)


def file_done(path: str, outcome: FileOutcome | None) -> None:
    """A file reached its final state in this run (`outcome` None: it was unchanged, not run)."""
    for listener in list(_listeners):
        _call(listener.file_done, path, outcome)


def _call(method: Callable, *args) -> None:
    """A listener is a display: its failure is logged, never the chunk's or the file's."""
    try:
        method(*args)
    except Exception:
        log.exception("progress listener %r failed", method)
