"""`cadpipe watch`: process CAD files dropped into folders, once each file is complete.

A watchdog observer reports arrivals. A file counts as complete only when all of these hold: its
size and mtime stayed the same for `watch.settle_s`; where the observer reports closes (Linux
inotify's close-after-write), the writer closed it after its last change (or renamed it into
place, `x.part` -> `x.dxf`), or, with no close seen, stayed unchanged for four settle times (at
least 5 s: a close made before the watch on a new folder existed is never reported); and, where the platform shows it (Linux /proc, for the processes
this user may inspect), no process holds it open for writing. So a writer that closes the file
after every chunk, or pauses for longer than `settle_s` with the file open, never has a partial
version taken. Names matching `inputs.exclude` (`*.part`, `*.tmp`, `~$*`, dotfiles ...) are never
taken.

Complete files are gathered until no file has changed for `watch.batch_window_s` (at most
`watch.max_wait_s` after the first), then go into one run of the batch flow with exactly those
files as sources: a half-written neighbour is never swept into a run. Runs happen one at a time;
files arriving meanwhile wait for the next. With a Prefect server configured (PREFECT_API_URL) the
run is a flow run of the `drop-folder` deployment, started with `run_deployment`; without one the
flow runs in this process.

After each run the catalog says which files it recorded; a file a run did not record (the run
crashed, the server was away) or recorded as failed for a passing reason (a timeout, an I/O error)
is tried again later, with a growing delay, so a failing run never stops the watcher. At start it sweeps the folders for files that arrived while it was down (files
the catalog already records with the same size and mtime are skipped). Originals stay in place
unless `watch.move_processed` moves those recorded ok into `<folder>/processed/`; nothing is deleted.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import dataclasses
import fnmatch
import logging
import os
import signal
import stat as stat_module
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from documents.errors import InputError
from documents.file_access import open_regular
from documents.file_kind import HEAD_SIZE, is_cad_extension, sniff_bytes
from documents.names import printable, to_text
from engine.catalog import Catalog
from engine.config import Config, ConfigError, check_roots, load_config
from engine.discover import format_family, inside
from engine.records import FileRecord
from flows import prefect_api
from flows.outcomes import summary_of

PROCESSED_DIR = "processed"
TRIGGERS = ("auto", "deployment", "local")
MAX_RETRY_S = 3600.0

log = logging.getLogger("cadpipe.watch")

_INOTIFY: type[BaseObserver] | None
try:  # Linux: inotify reports a close after writing (IN_CLOSE_WRITE)
    from watchdog.observers.inotify import InotifyObserver as _INOTIFY
except ImportError:  # pragma: no cover - other platforms
    _INOTIFY = None


@dataclass(frozen=True)
class WatchSettings:
    folders: tuple[Path, ...]
    settle_s: float = 2.0
    batch_window_s: float = 5.0
    max_wait_s: float = 60.0
    poll: bool = False
    poll_interval_s: float = 2.0
    move_processed: bool = False
    trigger: str = "auto"
    deployment: str = "cadpipe-batch/drop-folder"
    retry_s: float = 60.0

    @classmethod
    def from_config(cls, cfg: Config, folders: list[str] | None = None, poll: bool | None = None) -> WatchSettings:
        raw = cfg.raw["watch"]
        chosen = (
            [Path(f).resolve() for f in folders] if folders else [(cfg.base_dir / f).resolve() for f in raw["folders"]]
        )
        if not chosen:
            raise ConfigError("no folder to watch: give FOLDER arguments or set watch.folders")
        if raw["trigger"] not in TRIGGERS:
            raise ConfigError(f"watch.trigger must be one of {', '.join(TRIGGERS)}, not {raw['trigger']!r}")
        return cls(
            folders=tuple(dict.fromkeys(chosen)),
            settle_s=raw["settle_s"],
            batch_window_s=raw["batch_window_s"],
            max_wait_s=max(raw["max_wait_s"], raw["batch_window_s"]),
            poll=raw["poll"] if poll is None else poll,
            poll_interval_s=raw["poll_interval_s"] or 1.0,
            move_processed=raw["move_processed"],
            trigger=raw["trigger"],
            deployment=raw["deployment"],
            retry_s=raw["retry_s"],
        )


@dataclass
class Arrival:
    """A file seen in a drop folder and not yet handed to a run."""

    path: Path
    folder: Path
    size: int
    mtime_ns: int
    changed_at: float  # monotonic time of the last change seen
    closed: bool = False  # the writer closed it (or renamed it into place) after the last change
    watched: bool = False  # changes come from an observer that reports closes: wait for the close
    ready_at: float | None = None
    not_before: float = 0.0  # retry delay after a run that did not record it


@dataclass
class RunRecord:
    """One run the watcher started, for logs and tests."""

    paths: list[Path]
    started_at: float
    finished_at: float = 0.0
    flow_run_id: str | None = None
    state: str | None = None
    error: str | None = None
    recorded: dict[str, str] = field(default_factory=dict)  # path -> status in the catalog
    retried: list[Path] = field(default_factory=list)
    moved: list[Path] = field(default_factory=list)


Dispatch = Callable[[list[Path], list[Path]], dict]  # (files, the drop folders they are known under)


def prefect_server_configured() -> bool:
    from prefect.settings import get_current_settings

    return bool(get_current_settings().api.url)


def run_parameters(cfg: Config, paths: list[Path], roots: list[Path]) -> dict:
    """The batch flow's parameters for these files: JSON, paths in the catalog's text form, and
    the drop folders as roots, so that a file is known as (drop folder, path below it), as a run
    over the folder knows it."""
    return {
        "sources": [to_text(p) for p in paths],
        "roots": [to_text(r) for r in roots],
        "out": to_text(cfg.out),
        "config": str(cfg.path) if cfg.path else None,
    }


def run_in_process(cfg: Config) -> Dispatch:
    """Run the batch flow here (no Prefect server configured: an ephemeral one serves it)."""

    def dispatch(paths: list[Path], roots: list[Path]) -> dict:
        from flows.batch import batch

        state = prefect_api.synchronous(batch(**run_parameters(cfg, paths, roots), return_state=True))
        summary = summary_of(state.result(raise_on_failure=False))
        if summary is None:
            raise RuntimeError(f"batch did not complete: {state.message}")
        return {"flow_run_id": summary.get("flow_run_id"), "state": state.type.value, "message": state.message}

    return dispatch


def run_deployment_flow(cfg: Config, deployment: str, poll_interval_s: float = 2.0) -> Dispatch:
    """Start a flow run of the drop-folder deployment for these files and wait for its end.

    run_deployment rather than an event with a deployment trigger: the file list travels as the
    run's parameters, an unknown deployment or an unreachable server is an error right here (so
    the files are retried), the flow run id is known at once, and no automation has to exist.
    """

    def dispatch(paths: list[Path], roots: list[Path]) -> dict:
        from prefect.deployments import run_deployment

        flow_run = prefect_api.synchronous(
            run_deployment(
                name=deployment,
                parameters=run_parameters(cfg, paths, roots),
                timeout=None,
                poll_interval=poll_interval_s,
                tags=["drop-folder"],
                as_subflow=False,
            )
        )
        state = flow_run.state
        return {
            "flow_run_id": str(flow_run.id),
            "state": state.type.value if state else None,
            "message": state.message if state else None,
        }

    return dispatch


def _excluded(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in patterns)


def is_input(path: Path, formats: list[str], folder: Path | None = None, follow_symlinks: bool = False) -> bool:
    """The batch's own rule (engine/discover.py): CAD content, or a CAD extension, of an enabled
    format; and what the batch records as failed without reading it (a FIFO with a CAD name, a
    link out of the folder). A link within the folder is not an input of its own (its target is).
    Nothing is opened that could block or lead out of the folder."""
    if not follow_symlinks and path.is_symlink():
        return folder is None or not inside(os.path.realpath(path), os.path.realpath(folder))
    try:
        fd = open_regular(path, follow_symlinks=follow_symlinks)
    except InputError:  # not a regular file: recorded as failed when it has a CAD name
        return is_cad_extension(path) and not path.is_dir()
    with open(fd, "rb") as fh:
        head = fh.read(HEAD_SIZE)
        size = os.fstat(fh.fileno()).st_size
    fmt = sniff_bytes(head, size) or ("unknown" if is_cad_extension(path) else None)
    return fmt is not None and (fmt == "unknown" or format_family(fmt) in formats)


def open_for_writing(path: Path) -> bool:
    """True when some process holds `path` open for writing, as far as this platform shows it:
    Linux /proc, for the processes this user may inspect (all of them for root). Elsewhere, or
    for processes of other users, nothing is known and False is returned."""
    try:
        target = os.stat(path)
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return False
    wanted = (target.st_dev, target.st_ino)
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:  # gone, or another user's process
            continue
        for fd in fds:
            try:
                st = os.stat(f"/proc/{pid}/fd/{fd}")
                if (st.st_dev, st.st_ino) != wanted:
                    continue
                with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii") as info:
                    flags = next(int(line.split()[1], 8) for line in info if line.startswith("flags:"))
            except (OSError, StopIteration, ValueError):
                continue
            if flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR):
                return True
    return False


class _Events(FileSystemEventHandler):
    def __init__(self, watcher: Watcher, folder: Path) -> None:
        self.watcher = watcher
        self.folder = folder

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            self._handle(event)
        except Exception:
            log.exception("could not handle %s", event)

    def _handle(self, event: FileSystemEvent) -> None:
        kind = event.event_type
        src = Path(os.fsdecode(event.src_path))
        if kind == "moved":
            self.watcher.forget(src)
            dest = Path(os.fsdecode(event.dest_path))
            if event.is_directory:
                self.watcher.sweep(self.folder, dest)
            else:
                self.watcher.note(dest, self.folder, closed=True)
        elif kind == "deleted":
            self.watcher.forget(src)
        elif event.is_directory:
            if kind == "created":  # files may have come with it (mkdir -p, cp -r) before we watched it
                self.watcher.sweep(self.folder, src)
        elif kind in ("created", "modified", "closed"):
            self.watcher.note(src, self.folder, closed=kind == "closed")


class Watcher:
    """Watches drop folders and runs the batch over files once they are complete."""

    def __init__(self, cfg: Config, settings: WatchSettings, dispatch: Dispatch | None = None) -> None:
        self.cfg = cfg
        self.settings = settings
        self.exclude = list(cfg.inputs.exclude)
        self.formats = list(cfg.inputs.formats)
        self.follow_symlinks = cfg.inputs.follow_symlinks
        self.out = cfg.out.resolve()
        self.trigger = "custom"
        self.dispatch = dispatch or self._default_dispatch()
        self.runs: list[RunRecord] = []
        self._pending: dict[Path, Arrival] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._running = False
        self._last_activity = 0.0
        self._failed_runs = 0
        self._observer: BaseObserver | None = None
        self._thread: threading.Thread | None = None
        self._reports_close = False
        self._missed_close_s = max(4 * settings.settle_s, 5.0)

    def _default_dispatch(self) -> Dispatch:
        trigger = self.settings.trigger
        if trigger == "auto":
            trigger = "deployment" if prefect_server_configured() else "local"
        self.trigger = trigger
        if trigger == "deployment":
            return run_deployment_flow(self.cfg, self.settings.deployment)
        return run_in_process(self.cfg)

    # Lifecycle.

    def start(self) -> None:
        """Watch, sweep for files that arrived while we were down, and run in a background thread
        (which carries the caller's context, such as Prefect settings)."""
        missing = [str(f) for f in self.settings.folders if not f.is_dir()]
        if missing:
            raise FileNotFoundError(f"drop folder does not exist: {', '.join(missing)}")
        observer = PollingObserver(timeout=self.settings.poll_interval_s) if self.settings.poll else Observer()
        self._observer = observer
        self._reports_close = _INOTIFY is not None and isinstance(observer, _INOTIFY)
        for folder in self.settings.folders:
            observer.schedule(_Events(self, folder), str(folder), recursive=True)
        observer.start()
        for folder in self.settings.folders:  # after the observer: nothing falls in between
            self.sweep(folder, folder)
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._loop,), name="cadpipe-watch", daemon=True)
        self._thread.start()
        log.info(
            "watching %s (%s observer, runs %s)",
            ", ".join(map(to_text, self.settings.folders)),
            "polling" if self.settings.poll else type(self._observer).__name__,
            {"local": "in this process", "deployment": f"as {self.settings.deployment} flow runs"}.get(
                self.trigger, "custom"
            ),
        )

    def stop(self, timeout: float | None = None) -> None:
        """Stop watching; a run in progress is waited for up to `timeout` seconds."""
        self._stop.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout)
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> Watcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def last_change(self, path: Path) -> float | None:
        """When (monotonic) the watcher last saw `path` change; None when it is not waiting for it."""
        with self._lock:
            arrival = self._pending.get(path)
            return arrival.changed_at if arrival is not None else None

    @property
    def busy(self) -> bool:
        """Files waiting or a run in progress."""
        with self._lock:
            return bool(self._pending) or self._running

    # Arrivals (observer thread).

    def _candidate(self, path: Path, folder: Path) -> bool:
        try:
            rel = path.relative_to(folder)
        except ValueError:
            return False
        if not rel.parts or rel.parts[0] == PROCESSED_DIR:
            return False
        if path == self.out or self.out in path.parents:
            return False
        return not any(_excluded(part, self.exclude) for part in rel.parts)

    def note(self, path: Path, folder: Path, closed: bool = False, watched: bool | None = None) -> None:
        """A file appeared or changed (closed: its writer is done with it)."""
        if not self._candidate(path, folder):
            return
        try:
            stat = self._stat(path)
        except OSError:  # gone again, or unreadable: nothing to take (an exception would stop the observer)
            return
        now = time.monotonic()
        with self._lock:
            arrival = self._pending.get(path)
            if arrival is None:
                arrival = self._pending[path] = Arrival(path, folder, stat.st_size, stat.st_mtime_ns, now)
            arrival.size, arrival.mtime_ns, arrival.changed_at = stat.st_size, stat.st_mtime_ns, now
            arrival.closed = closed or not stat_module.S_ISREG(stat.st_mode)  # a link or FIFO is never written
            arrival.watched = arrival.watched or (self._reports_close if watched is None else watched)
            arrival.ready_at = None
            arrival.not_before = 0.0  # new content: no reason to wait for an earlier failure's retry
            self._last_activity = now

    def _stat(self, path: Path) -> os.stat_result:
        """The entry's own stat: a link is not followed unless links are."""
        return path.stat() if self.follow_symlinks else path.lstat()

    def forget(self, path: Path) -> None:
        with self._lock:
            self._pending.pop(path, None)

    def _catalog(self) -> dict[str, FileRecord]:
        """Absolute path (text form) -> what the catalog records of the file, whatever root it
        is known under; its `retryable` for a failure that may pass another time (a timeout, an
        I/O error)."""
        return Catalog(self.out).by_location()

    def sweep(self, folder: Path, root: Path) -> None:
        """Take every file under `root` the catalog does not record as it is now (or records as
        failed for a passing reason)."""
        if root != folder and root.is_symlink() and not self.follow_symlinks:
            self.note(root, folder, watched=False)  # a link to a folder is an entry, not walked
            return
        known = self._catalog()
        for dirpath, dirnames, filenames in os.walk(root, followlinks=self.follow_symlinks):
            here = Path(dirpath)
            dirnames[:] = [d for d in dirnames if self._candidate(here / d, folder)]
            if not self.follow_symlinks:  # links to folders are entries (the batch says why not walked)
                filenames = filenames + [d for d in dirnames if (here / d).is_symlink()]
            for name in filenames:
                path = here / name
                if not self._candidate(path, folder):
                    continue
                try:
                    stat = self._stat(path)
                except OSError:
                    continue
                seen = known.get(to_text(path))
                if seen and seen.same_stat(stat.st_size, stat.st_mtime_ns) and not seen.retryable:
                    continue
                # No close events for what was already there: the settle time decides.
                self.note(path, folder, watched=False)

    # Runs (watcher thread).

    def _loop(self) -> None:
        tick = max(0.05, min(0.5, self.settings.settle_s / 4, self.settings.batch_window_s / 4))
        while not self._stop.is_set():
            ready = self._take_ready()
            if ready:
                self._run(ready)
            else:
                self._stop.wait(tick)

    def _take_ready(self) -> list[Arrival]:
        now = time.monotonic()
        with self._lock:
            ready: list[Arrival] = []
            ready_since: list[float] = []
            for path, arrival in list(self._pending.items()):
                if now < arrival.not_before:
                    continue
                try:
                    stat = self._stat(path)
                except OSError:
                    del self._pending[path]
                    continue
                if (stat.st_size, stat.st_mtime_ns) != (arrival.size, arrival.mtime_ns):
                    arrival.size, arrival.mtime_ns, arrival.changed_at = stat.st_size, stat.st_mtime_ns, now
                    arrival.closed, arrival.ready_at = False, None  # written again: wait for the next close
                    self._last_activity = now
                    continue
                quiet_for = now - arrival.changed_at
                stable = quiet_for >= self.settings.settle_s
                # inotify reports a close only for a write made after its watch exists: a file
                # written into a folder just made (mkdir, then write) can be closed before watchdog
                # watches the folder, and its simulated creation brings no close. Unchanged for
                # longer than a pause between writes, and open for writing by nobody: complete.
                closed = arrival.closed or not arrival.watched or quiet_for >= self._missed_close_s
                if stable and closed and open_for_writing(path):
                    arrival.changed_at = now  # held open: look again (scanning /proc) a settle time later
                    continue
                if stable and closed:
                    arrival.ready_at = arrival.ready_at or now
                    ready.append(arrival)
                    ready_since.append(arrival.ready_at)
            if not ready:
                return []
            quiet = now - self._last_activity >= self.settings.batch_window_s
            waited = now - min(ready_since) >= self.settings.max_wait_s
            if not (quiet or waited):
                return []
            for arrival in ready:
                del self._pending[arrival.path]
            self._running = True
        taken = []
        for arrival in ready:
            try:
                if is_input(arrival.path, self.formats, arrival.folder, self.follow_symlinks):
                    taken.append(arrival)
                else:
                    log.info("ignored %s: not a CAD file of an enabled format", to_text(arrival.path))
            except OSError as exc:  # vanished or unreadable: it will be seen again if it comes back
                log.warning("ignored %s: %s", to_text(arrival.path), printable(exc))
        if not taken:
            with self._lock:
                self._running = False
        return taken

    def _run(self, arrivals: list[Arrival]) -> None:
        record = RunRecord([a.path for a in arrivals], started_at=time.monotonic())
        log.info("run of %d files: %s", len(arrivals), ", ".join(to_text(a.path.name) for a in arrivals[:10]))
        try:
            outcome = self.dispatch(record.paths, sorted({a.folder for a in arrivals}))
            record.flow_run_id, record.state = outcome.get("flow_run_id"), outcome.get("state")
            log.info("run %s ended %s: %s", record.flow_run_id, record.state, outcome.get("message"))
        except Exception as exc:
            record.error = printable(f"{type(exc).__name__}: {exc}")
            log.error("run of %d files failed: %s", len(arrivals), record.error, exc_info=True)
        try:
            self._after_run(record, arrivals)
        except Exception as exc:
            log.error("could not check the run's files: %s", exc, exc_info=True)
            self._retry(record, arrivals)
        finally:
            record.finished_at = time.monotonic()
            self.runs.append(record)
            with self._lock:
                self._running = False

    def _after_run(self, record: RunRecord, arrivals: list[Arrival]) -> None:
        """Ask the catalog which files the run recorded; retry the rest and those that failed for a
        passing reason; move the ok ones if asked."""
        rows = self._catalog()
        missing = []
        for arrival in arrivals:
            row = rows.get(to_text(arrival.path))
            if row and row.same_stat(arrival.size, arrival.mtime_ns):
                record.recorded[str(arrival.path)] = row.status
                if row.retryable:  # failed for a passing reason (timeout, I/O): worth another run
                    missing.append(arrival)
            else:
                missing.append(arrival)
        self._retry(record, missing)
        if self.settings.move_processed:
            for arrival in arrivals:
                if record.recorded.get(str(arrival.path)) == "ok":
                    moved = self._move_processed(arrival)
                    if moved:
                        record.moved.append(moved)

    def _retry(self, record: RunRecord, arrivals: list[Arrival]) -> None:
        if not arrivals:
            self._failed_runs = 0
            return
        self._failed_runs += 1
        delay = min(MAX_RETRY_S, self.settings.retry_s * 2 ** (self._failed_runs - 1))
        now = time.monotonic()
        with self._lock:
            for arrival in arrivals:
                if arrival.path in self._pending or not os.path.lexists(arrival.path):
                    continue  # changed again meanwhile (a newer arrival), or gone
                arrival.not_before = now + delay
                self._pending[arrival.path] = arrival
                record.retried.append(arrival.path)
        if record.retried:
            log.warning("%d files not done by the run; trying again in %.0f s", len(record.retried), delay)

    def _move_processed(self, arrival: Arrival) -> Path | None:
        """Move an original recorded ok into <folder>/processed/ (same relative path, never over a file)."""
        rel = arrival.path.relative_to(arrival.folder)
        target = arrival.folder / PROCESSED_DIR / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        n = 1
        while target.exists():
            target = target.with_name(f"{Path(rel.name).stem}-{n}{Path(rel.name).suffix}")
            n += 1
        try:
            os.rename(arrival.path, target)
        except OSError as exc:
            log.warning("could not move %s to %s: %s", to_text(arrival.path), to_text(target), printable(exc))
            return None
        return target


# Command line.


def run(args: argparse.Namespace) -> int:
    """Watch until SIGINT or SIGTERM; 0 when stopped, 2 for a configuration mistake, 3 when the
    temporary Prefect server cannot start."""
    # Prefect's environment defaults (no telemetry, a longer server start-up) are set by cli.main.
    from flows import temporary_server

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        cfg = load_config(args.config, out=args.out)
        settings = WatchSettings.from_config(cfg, args.folders or None, poll=True if args.poll else None)
        check_roots(settings.folders, cfg.out, what="drop folder")
        missing = [to_text(f) for f in settings.folders if not f.is_dir()]
        if missing:
            raise FileNotFoundError(f"drop folder does not exist: {', '.join(missing)}")
    except (ConfigError, FileNotFoundError) as exc:
        print(f"configuration error: {printable(exc)}", file=sys.stderr)
        return 2
    with contextlib.ExitStack() as stack:
        try:
            # Ours, not Prefect's temporary server: it dies with this process, even on SIGKILL.
            server = stack.enter_context(
                temporary_server.prefect_api(
                    float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", 180))
                )
            )
        except RuntimeError as exc:
            print(f"watcher did not start: {printable(exc)}", file=sys.stderr)
            return 3
        if server is not None:  # no deployment can exist on a server that lives with this process
            if settings.trigger == "deployment":
                print(
                    'configuration error: watch.trigger = "deployment" needs a Prefect server (PREFECT_API_URL)',
                    file=sys.stderr,
                )
                return 2
            settings = dataclasses.replace(settings, trigger="local")
        try:
            watcher = Watcher(cfg, settings)
            watcher.start()
        except FileNotFoundError as exc:
            print(f"configuration error: {printable(exc)}", file=sys.stderr)
            return 2
        stopped = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        try:
            while not stopped.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            log.info("stopping; a run in progress finishes first")
            watcher.stop()
    return 0
