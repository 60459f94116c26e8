"""Is the Prefect API still there? The server is a helper of a run, not a single point of failure.

Prefect 3 runs task runs without the server (their states travel as events), but every API call
(a subflow's start and end, an artifact, a Secret block, the flow run's final state) is retried
for about a minute when the server is gone. A run that lost its server therefore asks once, cheaply,
before each optional call, and does the file work and the catalog without it.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar, overload

import httpx

T = TypeVar("T")


# Prefect's dual sync/async functions (artifacts, Block.load, run_deployment) are annotated
# `T | Coroutine[Any, Any, T]`, and a flow called with return_state=True, when Prefect cannot tell
# its return type, `Awaitable[State]`: the awaitable is what an async caller gets. Called from sync
# code, as cadpipe calls them, they return the value itself; `synchronous` says so to mypy, and
# checks it.
@overload
def synchronous(value: Awaitable[T]) -> T: ...
@overload
def synchronous(value: T | Awaitable[T]) -> T: ...
def synchronous(value: T | Awaitable[T]) -> T:
    """The result of a Prefect call made from sync code (never an awaitable)."""
    if isinstance(value, Awaitable):
        raise TypeError(f"a Prefect call from sync code returned an awaitable ({type(value).__name__})")
    return value


def api_url() -> str | None:
    from prefect.settings import get_current_settings

    return get_current_settings().api.url


def reachable(timeout_s: float = 5.0) -> bool:
    """False when the configured API refuses connections or cannot be resolved (its server is
    gone); True when it answers anything, or is merely slow (a busy server is still there)."""
    url = api_url()
    if not url:
        return True  # no server configured: Prefect's own temporary one serves this process
    try:
        httpx.get(f"{url.rstrip('/')}/health", timeout=timeout_s)
    except (httpx.ConnectError, httpx.UnsupportedProtocol):
        return False
    except httpx.HTTPError:
        return True
    return True


def unreachable(timeout_s: float = 10.0, url: str | None = None) -> str | None:
    """Why the configured API (or `url`, known without Prefect's settings) cannot be used, in one
    line naming its address and the fix; None when it answers (or no server is configured).
    Checked before a command starts anything."""
    url = url or api_url()
    if not url:
        return None
    try:
        httpx.get(f"{url.rstrip('/')}/health", timeout=timeout_s)
    except (httpx.ConnectError, httpx.UnsupportedProtocol, httpx.ConnectTimeout) as exc:
        return (
            f"the Prefect server at {url} does not answer ({type(exc).__name__}: {exc}): start it "
            "(`prefect server start`), correct PREFECT_API_URL, or unset it to run on a temporary server"
        )
    except httpx.HTTPError:
        return None  # it answers, slowly or with an error: a busy server is still there
    return None


def lost_message(exc: BaseException | None = None) -> str:
    cause = f" ({type(exc).__name__}: {exc})" if exc is not None else ""
    return f"the Prefect server at {api_url()} stopped answering during the run{cause}"


def drop_undeliverable() -> int:
    """Discard the events and log records Prefect still holds for a server that is gone; return
    how many. At exit Prefect would otherwise try each one in turn (an event costs about 7 s of
    reconnection attempts), keeping a finished command alive for many minutes. Nothing else
    reads them: the catalog and our JSON log have the run. (Prefect offers no public way to do
    this; its services keep their backlog in `_queue`.)"""
    import queue

    from prefect._internal.concurrency.services import _active_services
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    dropped = 0
    for service in list(_active_services):
        if not isinstance(service, (EventsWorker, APILogWorker)):
            continue
        backlog = getattr(service, "_queue", None)
        while backlog is not None:
            try:
                item = backlog.get_nowait()
            except queue.Empty:
                break
            if item is None:  # the service's own stop signal: keep it
                backlog.put_nowait(None)
                break
            backlog.task_done()
            dropped += 1
    return dropped
