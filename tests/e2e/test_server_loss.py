"""The Prefect server is a helper, not a single point of failure: every server cadpipe starts dies
with its command (even on SIGKILL), and a run whose server is killed under it finishes its files
and its catalog and says what happened. Real commands in subprocesses, real servers, real signals;
each wait is for an event (a process, a file), bounded only to fail instead of hanging."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO, catalog_table
from tests.hostile_inputs import drawing
from tests.processes import alive, children, descendants


def servers_under(pid: int) -> list[int]:
    """Prefect API servers (uvicorn) started by `pid` or its children."""
    result = []
    for child in descendants(pid):
        try:
            if b"uvicorn" in Path(f"/proc/{child}/cmdline").read_bytes():
                result.append(child)
        except OSError:
            pass
    return result


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def start(*args: str | Path, env: dict | None = None) -> subprocess.Popen:
    environment = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}  # no server configured
    environment.update(env or {})
    return subprocess.Popen(
        [sys.executable, "-m", "flows.cli", *map(str, args)],
        cwd=REPO,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def library(folder: Path, count: int) -> Path:
    folder.mkdir()
    for i in range(count):
        (folder / f"sheet-{i:02d}.dxf").write_bytes(drawing(i, entities=40))
    return folder


def config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "cadpipe.toml"
    path.write_text(
        f'[dxf]\noutputs = ["svg"]\n[watch]\nsettle_s = 0.5\nbatch_window_s = 0.5\n{extra}', encoding="utf-8"
    )
    return path


def kill_and_expect_orphan_gone(proc: subprocess.Popen, ready) -> None:
    """Once `ready()` and a Prefect server runs under `proc`, SIGKILL `proc`: the server must go too."""
    try:
        wait_for(ready, 300, "the command to get going")
        servers = wait_for(lambda: servers_under(proc.pid), 300, "a Prefect server under the command")
    except BaseException:
        proc.kill()
        raise
    try:
        proc.send_signal(signal.SIGKILL)  # no exit hooks run
        proc.wait(timeout=60)
        # The kernel signals the orphan (PR_SET_PDEATHSIG); it shuts down on its own.
        wait_for(lambda: not any(alive(pid) for pid in servers), 120, "the server to die with its command")
    finally:
        for pid in servers:  # never leave one behind for the next test, whatever happened
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_killed_watcher_takes_its_prefect_server_with_it(tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    out = tmp_path / "out"
    proc = start("watch", drop, "--out", out, "--config", config(tmp_path))
    (drop / "first.dxf").write_bytes(drawing(1))
    # After a first run: a watcher without a server of its own would have Prefect's by then.
    kill_and_expect_orphan_gone(proc, lambda: (out / "catalog" / "runs" / "_delta_log").is_dir())


def test_a_killed_apply_takes_its_prefect_server_with_it(tmp_path):
    lib = library(tmp_path / "lib", 2)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("name: tidy\noperations:\n  - purge: {layers: true}\n", encoding="utf-8")
    proc = start("apply", recipe, "--library", lib, "--out", tmp_path / "out", "--config", config(tmp_path))
    kill_and_expect_orphan_gone(proc, lambda: True)


def test_a_run_whose_server_is_killed_finishes_its_files_and_catalog_and_exits_3(tmp_path):
    lib, out = library(tmp_path / "lib", 30), tmp_path / "out"
    # Prefect retries each call to a vanished server for about a minute; one retry keeps this test
    # short. What is checked does not depend on it.
    proc = start(
        "run",
        lib,
        "--out",
        out,
        "--config",
        config(tmp_path),
        "--workers",
        "1",
        "--chunk-size",
        "1",
        "--quiet",
        env={"PREFECT_CLIENT_MAX_RETRIES": "1"},
    )
    try:
        [server] = wait_for(lambda: children(proc.pid, b"uvicorn"), 600, "the run's temporary server")
        outputs = out / "outputs"
        # The files start before the server is up (flows/cli.py): wait for the flow run too, whose
        # JSON log it opens as it begins.
        wait_for(
            lambda: len(list(outputs.glob("*/result.json"))) >= 2 and any(out.glob("logs/*.jsonl")),
            300,
            "the flow run and its first files",
        )
        os.kill(server, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, stdout[-2000:] + stderr[-3000:]
    said = " ".join(stderr.split())
    assert "stopped answering during the run" in said and "the catalog is complete" in said, said[-3000:]
    files = catalog_table(out, "files")
    assert len(files) == 30 and (files["status"] == "ok").all(), "every file finished and was recorded"
    runs = catalog_table(out, "runs")
    assert len(runs) == 1 and runs.loc[0, "processed"] == 30
    assert (out / "docs" / "index.html").is_file()
    assert "files seen" in stdout, "the summary is still shown"
