"""The temporary Prefect API server of a `cadpipe run` that has no server configured.

Prefect starts the same server itself (`SubprocessASGIServer`) on the flow's first API call: after
the command's imports, and after importing Prefect's whole server package into this process just
to launch it (4 s on a 2-core machine), so a run waited 10-16 s before its first file. Launched
first thing instead, with the standard library only, its start-up overlaps the imports, the
config check and the worker warm-up, and this process never imports the server package.

It is Prefect's server as Prefect would run it: the same uvicorn command, environment and
settings (it reads the same profile). It listens on a socket bound here to a free port, so there
is no port race, and it stops with the command: terminate, then kill after 5 s, as Prefect does.
With `PREFECT_API_URL` set (a real server, or a test harness) nothing is started.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

# What Prefect sets for its temporary server: no UI, and the server knows it is ephemeral.
SERVER_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}


class TemporaryServer:
    """A Prefect API server in a child process, from construction until `stop()` (or exit)."""

    def __init__(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.bind(("127.0.0.1", 0))
            listener.listen(128)
            self.port = listener.getsockname()[1]
            spec = importlib.util.find_spec("prefect")  # found, not imported: that takes seconds
            if spec is None or spec.origin is None:
                raise RuntimeError("cannot start a Prefect server: the prefect package is not installed")
            prefect_dir = Path(spec.origin).parent
            self.process: subprocess.Popen | None = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--app-dir",
                    str(prefect_dir.parent),
                    "--factory",
                    "prefect.server.api.server:create_app",
                    "--fd",
                    str(listener.fileno()),
                    "--log-level",
                    "error",
                    "--lifespan",
                    "on",
                ],
                pass_fds=(listener.fileno(),),
                env={**os.environ, **SERVER_ENV},
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        finally:
            listener.close()  # the child holds its own copy
        # At exit, after Prefect's own exit hooks (threading's, which run first) have sent the
        # last logs and events of the run to this server.
        atexit.register(self.stop)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def prefect_settings(self) -> dict:
        """Prefect's settings while it uses this server, for `temporary_settings`: its URL; no UI
        link in the logs (it has no UI, and ends with this command); no flow run heartbeats, which
        only a lasting server reads (to mark crashed runs) and which hold up the end of every flow
        run by up to a second (Prefect's heartbeat thread sleeps in whole seconds before it sees
        the run is over)."""
        from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, PREFECT_UI_URL

        return {PREFECT_API_URL: self.api_url, PREFECT_UI_URL: "", PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}

    def wait_ready(self, timeout_s: float) -> None:
        """Return once the server answers its health check; raise RuntimeError if it exits or
        does not answer within `timeout_s` (then it is stopped)."""
        import httpx

        deadline = time.monotonic() + timeout_s
        while True:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                self.stop()
                raise RuntimeError(f"the temporary Prefect server exited (code {code}) before it was ready")
            try:
                # The socket already listens: the request waits until the app serves it.
                if httpx.get(f"{self.api_url}/health", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"the temporary Prefect server did not answer within {timeout_s:g} s "
                    "(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _die_with_parent() -> None:
    """In the child, before exec: a `cadpipe run` killed outright (SIGKILL, the OOM killer) skips
    its exit hooks; the kernel then stops the server instead of leaving it orphaned. (The signal
    comes when the launching thread ends: launch from the main thread, as the CLI does.)"""
    import ctypes
    import signal

    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the call above
        os._exit(1)


def launch_unless_configured() -> TemporaryServer | None:
    """Start a temporary server now if this process will need one: no `PREFECT_API_URL` in the
    environment. Call `keep_if_needed` once Prefect is imported: a profile may name a server."""
    if os.environ.get("PREFECT_API_URL"):
        return None
    if "prefect" in sys.modules and not needs_temporary_server():
        return None  # Prefect already loaded here (a test harness): its settings say no
    return TemporaryServer()


def surely_unconfigured() -> bool:
    """True when no Prefect server is configured for this process, known without importing
    Prefect (2-3 CPU s): no `PREFECT_API_URL` in the environment, and none of the files Prefect
    reads its settings from names one or turns the temporary server off. False when unsure (a
    file that mentions them): then Prefect decides (`needs_temporary_server`)."""
    if "prefect" in sys.modules:
        return not os.environ.get("PREFECT_API_URL") and needs_temporary_server()
    if any(os.environ.get(name) for name in ("PREFECT_API_URL", "PREFECT_SERVER_EPHEMERAL_ENABLED")):
        return False
    return not settings_files_may_name_a_server(dict(os.environ), Path.cwd())


def settings_files_may_name_a_server(environ: dict[str, str], cwd: Path) -> bool:
    """Whether a settings file Prefect reads may name a server: the profiles file
    (`PREFECT_PROFILES_PATH`, else `PREFECT_HOME`/profiles.toml), and `.env`, `prefect.toml` and
    `pyproject.toml`'s `[tool.prefect]` in `cwd`. Any mention counts; a file unread is a maybe."""
    home = Path(environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    profiles = Path(environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    checks: list[tuple[Path, tuple[str, ...]]] = [
        (profiles, ("PREFECT_API_URL", "EPHEMERAL")),
        (cwd / ".env", ("PREFECT_API_URL", "EPHEMERAL")),
        (cwd / "prefect.toml", ("",)),  # any prefect.toml: its [api] url, or whatever else
        (cwd / "pyproject.toml", ("tool.prefect",)),
    ]
    for path, words in checks:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            continue
        except OSError:
            return True
        if any(word in text for word in words):
            return True
    return False


def needs_temporary_server() -> bool:
    """True when Prefect would start its own temporary server: no API URL in the settings (from
    the environment, the profile or a harness) and ephemeral mode allowed."""
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    return not settings.api.url and settings.server.ephemeral.enabled


def keep_if_needed(server: TemporaryServer | None) -> TemporaryServer | None:
    if server is not None and not needs_temporary_server():
        server.stop()
        return None
    return server


@contextlib.contextmanager
def prefect_api(timeout_s: float) -> Iterator[TemporaryServer | None]:
    """Prefect's API for one command (`watch`, `apply`): the configured server, or else a
    temporary one started here, which dies with this process even when it is killed outright
    (Prefect's own temporary server would outlive a SIGKILL). Inside the block Prefect uses it.
    RuntimeError when the temporary server does not start."""
    server = keep_if_needed(launch_unless_configured())
    if server is None:  # a configured server: it must answer
        from flows import prefect_api

        problem = prefect_api.unreachable()
        if problem:
            raise RuntimeError(problem)
        yield None
        return
    from prefect.settings import temporary_settings

    try:
        server.wait_ready(timeout_s)
        with temporary_settings(updates=server.prefect_settings()):
            try:
                yield server
            finally:
                send_what_is_queued()
    finally:
        server.stop()


def send_what_is_queued(timeout_s: float = 10.0) -> None:
    """Send the log records and events Prefect still queues to the server before it stops; else
    they are sent at exit to a server that is gone ("--- Error logging to API ---" on stderr), and
    logging's own exit hook waits its full 5 s for a send that cannot succeed."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (APILogWorker, EventsWorker):
        try:
            service.drain_all(timeout=timeout_s)
        except Exception:  # best effort: the run itself is over and recorded
            pass
