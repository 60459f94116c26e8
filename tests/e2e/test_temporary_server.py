"""The temporary Prefect server of a `cadpipe run` without PREFECT_API_URL (flows/temporary_server.py):
a real uvicorn Prefect server, started, answering, stopped; never left behind by the command."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from flows.temporary_server import TemporaryServer, launch_unless_configured
from tests.processes import children

REPO = Path(__file__).resolve().parents[2]


def _server_children(parent: int) -> list[int]:
    return children(parent, b"uvicorn")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its parent's wait is missing


def _wait_until(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def test_the_server_answers_the_api_and_stops():
    server = TemporaryServer()
    try:
        server.wait_ready(180)
        assert httpx.get(f"{server.api_url}/health", timeout=10).json() is True
        version = httpx.get(f"{server.api_url}/admin/version", timeout=10).json()
        import prefect

        assert version == prefect.__version__
        process = server.process
    finally:
        server.stop()
    assert process.poll() is not None
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.api_url}/health", timeout=2)
    server.stop()  # a second stop is harmless


def test_a_server_that_cannot_start_is_reported_not_waited_for(tmp_path, monkeypatch):
    # A database in a folder that does not exist: the server's start-up fails and it exits.
    monkeypatch.setenv("PREFECT_SERVER_DATABASE_CONNECTION_URL", f"sqlite+aiosqlite:///{tmp_path}/no/such/dir/p.db")
    server = TemporaryServer()
    # Its exit is reported as such ("exited"), not found out when the wait is over ("did not answer
    # within"): no elapsed time to compare, and a wait long enough for any load.
    with pytest.raises(RuntimeError, match="temporary Prefect server exited"):
        server.wait_ready(600)
    assert server.process is None


def test_nothing_is_started_when_a_server_is_configured(monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    before = _server_children(os.getpid())
    assert launch_unless_configured() is None
    assert _server_children(os.getpid()) == before


def _start_cli(tmp_path: Path, **extra_env: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | extra_env
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "run",
            str(REPO / "data" / "samples"),
            "--out",
            str(tmp_path / "out"),
            "--quiet",
            "--workers",
            "1",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_finished_run_leaves_no_server_behind(tmp_path):
    proc = _start_cli(tmp_path)
    seen: set[int] = set()
    while proc.poll() is None:
        seen.update(_server_children(proc.pid))
        time.sleep(0.2)
    output = proc.stdout.read()
    assert proc.returncode == 0, output[-3000:]
    assert "catalog:" in output, output[-3000:]
    assert seen, "the run started no temporary server"
    assert _wait_until(lambda: not any(_alive(pid) for pid in seen), 120), "the temporary server outlived the run"

    # Unchanged: nothing for the workers, so no server at all; the summary as ever.
    proc = _start_cli(tmp_path)
    seen.clear()
    while proc.poll() is None:
        seen.update(_server_children(proc.pid))
        time.sleep(0.05)
    output = proc.stdout.read()
    assert proc.returncode == 0 and "catalog:" in output, output[-3000:]
    assert not seen, "an unchanged rerun started a Prefect server"


def test_the_runs_last_log_lines_reach_the_temporary_server_before_it_stops(tmp_path):
    """Prefect queues log lines and sends them in batches; the flow run's last ones ("Finished in
    state Completed('8 files: ...')") must be sent while the server still listens, not at exit,
    when it is gone (then they were lost and logging's exit hook waited its 5 s for nothing).
    And its flow runs send no heartbeats: only a lasting server reads them, and each held up the
    end of its flow run by up to a second."""
    home = tmp_path / "prefect-home"  # a database of this run's own
    proc = _start_cli(tmp_path, PREFECT_HOME=str(home))
    output, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, output[-3000:]
    assert "Error logging to API" not in output, output[-3000:]
    # The temporary server's history, as `prefect server start` over this PREFECT_HOME shows it.
    with contextlib.closing(sqlite3.connect(home / "prefect.db")) as db:
        [(parent,)] = db.execute("SELECT id FROM flow_run WHERE parent_task_run_id IS NULL").fetchall()
        logged = [m for (m,) in db.execute("SELECT message FROM log WHERE flow_run_id = ?", (parent,))]
        events = dict(db.execute("SELECT event, count(*) FROM events GROUP BY event").fetchall())
    assert any(m.startswith("Finished in state Completed('8 files: 8 processed") for m in logged), logged
    assert events.get("prefect.flow-run.Completed") == 2, events  # the batch and its chunks' subflow
    assert "prefect.flow-run.heartbeat" not in events, events


def test_a_killed_run_takes_its_server_with_it(tmp_path):
    proc = _start_cli(tmp_path)
    try:
        assert _wait_until(lambda: _server_children(proc.pid), 600), "no temporary server started"
        [server] = _server_children(proc.pid)
        proc.send_signal(signal.SIGKILL)  # no exit hooks run
        proc.wait(timeout=120)
        # The kernel signals the orphan (PR_SET_PDEATHSIG); it shuts down on its own.
        assert _wait_until(lambda: not _alive(server), 120), "the server of a killed run is still running"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()


def test_a_run_whose_server_cannot_start_exits_3_with_the_reason(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = f"sqlite+aiosqlite:///{tmp_path}/no/such/dir/p.db"
    proc = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", str(REPO / "data" / "samples"), "--out", str(tmp_path / "out")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr[-3000:]
    assert "batch did not start: the temporary Prefect server exited" in " ".join(proc.stderr.split())
    assert not (tmp_path / "out" / "catalog").exists()


def test_a_server_named_in_the_prefect_profile_is_used_instead(tmp_path):
    # The environment names no server, so one is launched at once; once Prefect has read the
    # profile (which names one) it is stopped again.
    profiles = tmp_path / "profiles.toml"
    profiles.write_text('active = "remote"\n\n[profiles.remote]\nPREFECT_API_URL = "http://127.0.0.1:4299/api"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PREFECT_PROFILES_PATH"] = str(profiles)
    script = (
        "from flows.temporary_server import launch_unless_configured, keep_if_needed\n"
        "server = launch_unless_configured()\n"
        "assert server is not None\n"
        "process = server.process\n"
        "assert keep_if_needed(server) is None\n"
        "assert process.poll() is not None\n"
        "from prefect.settings import get_current_settings\n"
        "print('api', get_current_settings().api.url)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "api http://127.0.0.1:4299/api" in proc.stdout
