"""How a run that is not a success ends in Prefect: a Failed state with a message, no traceback.

A batch with a failed file, or one refused at its start (an empty parameter, a config mistake, a
Dask cluster that cannot isolate files), is an expected outcome: the flow returns
`Failed(message=..., data=<one of these exceptions>)`. Prefect needs an exception as a Failed
state's data (a dict made a deployment's run end with `TypeError: Unexpected result for failed
state`), and the engine of a deployment's flow run raises it again once the run has ended, logging
"Engine execution exited with unexpected exception" and its traceback: `quiet_expected_outcomes`
drops exactly those records, since the run's own log lines and its state message already tell it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from typing import Any


class RunOutcome(Exception):
    """An expected end of a run other than success; its message is the whole story."""

    exit_code = 1

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else type(self).__name__


class FilesFailed(RunOutcome, Mapping):
    """Files failed (per `[run] fail_on`), or some were left unprocessed: the run's summary, which
    it also reads as (`result["failed"]`), as a Completed run's result is the summary itself."""

    def __init__(self, message: str, summary: dict[str, Any]) -> None:
        super().__init__(message, summary)
        self.summary = summary

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        return int(self.summary.get("exit_code", 1))

    def __getitem__(self, key: str) -> Any:
        return self.summary[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.summary)

    def __len__(self) -> int:
        return len(self.summary)

    # An exception compares and hashes by identity (Mapping would make it compare as a dict).
    __eq__ = object.__eq__
    __hash__ = object.__hash__


class RunRefused(RunOutcome):
    """The run did not start: nothing was read or written. `exit_code` 2 for a mistake in the
    parameters or the config, 3 when the means to run are missing (a Dask cluster)."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message, exit_code)
        self.exit_code = exit_code


def summary_of(result: object) -> dict[str, Any] | None:
    """The summary a batch flow run returned (its state's result), whatever its end; None when
    the run ended without one (refused, or crashed)."""
    if isinstance(result, FilesFailed):
        return result.summary
    if isinstance(result, Mapping) and not isinstance(result, BaseException):
        return dict(result)
    return None


class _ExpectedOutcomes(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, RunOutcome)


_filter = _ExpectedOutcomes()
_installed = False
_lock = threading.Lock()


def quiet_expected_outcomes() -> None:
    """Drop the log records of Prefect's engine re-raising an expected outcome (see above).
    Records of every other exception keep their tracebacks."""
    global _installed
    with _lock:
        if _installed:
            return
        for name in ("prefect.flow_runs", "prefect.engine"):
            logging.getLogger(name).addFilter(_filter)
        _installed = True
