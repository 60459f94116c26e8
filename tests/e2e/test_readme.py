"""Every shell block of the README, run: the README's commands work as written.

Each ```sh block belongs to a section, and each section's blocks are run here (or, for the Job
API, by tests/e2e/test_server.py, whose commands must be the README's own, checked here): a new shell
block that no test runs fails `test_every_shell_block_is_run_by_a_test`. Paths under /srv/cad and
/tmp, and the port 4200, are replaced by the test's own; nothing else is changed, except that
`make test` (this very suite) is only resolved (`make -n test`), not run inside itself, and that
`make run` writes into a temporary OUT (the Makefile's own knob) rather than the checkout's out/.
Commands documented to keep running (the server, the worker, the watcher) are started in the
background, used, and stopped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, catalog_table
from tests.e2e import test_server

README = REPO / "README.md"
PREFECT = Path(sys.executable).with_name("prefect")
LONG_RUNNING = re.compile(r"\b(prefect server start|prefect worker start|cadpipe watch)\b")
SAMPLES = REPO / "data" / "samples"


def sections() -> list[tuple[str, str, str]]:
    """(section heading, fence language, block text) of every fenced block, in order."""
    found, heading = [], ""
    lines = README.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            heading = line[3:].strip()
        elif line.startswith("```"):
            language = line[3:].strip()
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            found.append((heading, language, "\n".join(lines[i + 1 : end])))
            i = end
        i += 1
    return found


def shell_blocks(section: str) -> list[str]:
    return [text for heading, language, text in sections() if heading == section and language == "sh"]


def commands(block: str) -> list[str]:
    """The block's commands: continuation lines joined, comments and blank lines dropped."""
    joined, current = [], ""
    for line in block.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line
        if current.endswith("\\"):  # a continuation: kept as written, bash joins the lines
            current += "\n"
            continue
        joined.append(re.sub(r"\s+#[^'\"]*$", "", current).strip())
        current = ""
    return joined


RUN_HERE = {
    "Quick start",
    "Deliverables: register, BOM exports, PDF sets",
    "Search",
    "Running with the Prefect UI",
    "Structured logs",
    "Library-wide edits: recipes",
}
RUN_BY_TEST_SERVER = {"Job API"}
# Its queries and commands run on catalogs of real batches: tests/e2e/test_catalog_readme_queries.py.
RUN_BY_CATALOG_QUERIES = {"The catalog"}


def test_every_shell_block_is_run_by_a_test():
    blocks = [(heading, text) for heading, language, text in sections() if language in ("sh", "bash", "shell", "")]
    shell = [(heading, text) for heading, text in blocks if any(commands(text)) and _looks_like_shell(text)]
    unowned = [heading for heading, _ in shell if heading not in RUN_HERE | RUN_BY_TEST_SERVER | RUN_BY_CATALOG_QUERIES]
    assert not unowned, f"shell blocks no test runs, in sections: {unowned} (fence synopses as ```text)"
    untyped = [heading for heading, language, text in sections() if language == "" and _looks_like_shell(text)]
    assert not untyped, f"shell blocks without ```sh in: {untyped}"


def _looks_like_shell(text: str) -> bool:
    first = next((line for line in text.splitlines() if line.strip() and not line.startswith("#")), "")
    return bool(re.match(r"(\.venv/bin/|make |prefect |cadpipe |curl |jq |export |cp |[A-Z_]+=)", first))


def test_the_job_api_examples_are_the_ones_tests_test_server_runs():
    ran = []
    for constant in ("SUBMIT_REST", "STATUS_REST", "LOGS_REST", "CANCEL_REST", "RETRY_REST"):
        ran += commands(getattr(test_server, constant))
    ran += [
        c
        for name in ("SUBMIT_CLI", "STATUS_CLI", "LOGS_CLI", "CANCEL_CLI")
        for c in commands(getattr(test_server, name))
    ]
    ran = [c for c in ran if c != 'echo "$RUN_ID"']  # how the test reads the id
    documented = [c for block in shell_blocks("Job API") for c in commands(block) if c != 'echo "$RUN_ID"']
    assert len(shell_blocks("Job API")) == 2
    assert sorted(documented) == sorted(ran), "tests/e2e/test_server.py runs exactly the README's Job API commands"


def bash(script: str, cwd: Path = REPO, env: dict[str, str] | None = None, timeout: float = 900):
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{script}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
    return done


def test_quick_start(tmp_path):
    [block] = shell_blocks("Quick start")
    assert commands(block) == ["make run", "make test"]
    out = tmp_path / "out"
    first = bash("make run", env={"OUT": str(out)})
    assert "files seen" in first.stdout
    files = catalog_table(out, "files")
    assert len(files) == len(list(SAMPLES.iterdir())) and set(files["status"]) == {"ok"}
    again = bash("make run", env={"OUT": str(out)})
    runs = catalog_table(out, "runs").sort_values("started_at", ignore_index=True)
    assert "files seen" in again.stdout and runs.iloc[-1]["processed"] == 0, "the second run does nothing"
    # `make test` is this suite: resolved, not run inside itself.
    planned = bash("make -n test").stdout
    assert ".ci/install-test-tools" in planned and "-m pytest" in planned


def test_structured_logs(tmp_path):
    [block] = shell_blocks("Structured logs")
    if not shutil.which("jq"):
        pytest.skip("the example needs jq (make test installs it)")
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy(SAMPLES / "gear.dxf", lib / "gear.dxf")
    (lib / "broken.dxf").write_text("0\nSECTION\n2\nENTITIES\n0\nLINE\n10\nx\n")
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", str(lib), "--out", str(tmp_path / "out"), "--quiet"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 1, done.stderr
    printed = bash(block, cwd=tmp_path).stdout  # `out/logs/*.jsonl` of this folder
    [line] = printed.splitlines()
    assert json.loads(line) == {"path": str(lib / "broken.dxf"), "stage": "load", "error_class": "InputError"}


def test_deliverables_reports_and_search(tmp_path, cli_env):
    """The example library's run as "Deliverables" writes it (register, sets, the report and the
    gallery beside them), then the "Search" examples over its catalog, each command as written."""
    [block] = shell_blocks("Deliverables: register, BOM exports, PDF sets")
    out = tmp_path / "cadpipe-library"
    run, head, ls = commands(block.replace("/tmp/", f"{tmp_path}/"))
    done = bash(run, env=cli_env, timeout=1800)
    assert "files seen" in done.stdout and done.stderr == "", "--quiet: the summary only"
    files = catalog_table(out, "files")
    assert len(files) == 7 and set(files["status"]) == {"ok"}
    register = bash(head).stdout.splitlines()
    assert register[0].startswith("Drawing number,Title,Revision,") and len(register) == 3
    assert bash(ls).stdout.split() == [
        "example-library-blocks",
        "example-library-project-x",
        "example-library-project-x-superseded",
        "example-library-project-y",
    ]
    assert (out / "sets" / "example-library-project-x" / "example-library-project-x.pdf").is_file()
    for page in ("index.html", "gallery.html", "register.html"):  # the report and gallery of "Reports"
        assert (out / "docs" / page).is_file(), page
    assert (out / "register.xlsx").is_file() and (out / "catalog" / "search.sqlite").is_file()

    [synopsis] = [t for h, language, t in sections() if h == "Search" and language == "text"]
    assert synopsis.startswith(".venv/bin/cadpipe search QUERY")
    [block] = shell_blocks("Search")
    table, as_json = commands(block.replace("/tmp/", f"{tmp_path}/"))
    found = bash(table, env=cli_env).stdout
    assert "3 hits for 'pump housing'" in found and "ATTRIB TITLE" in found
    [hit] = json.loads(bash(as_json, env=cli_env).stdout)
    assert (hit["path"], hit["label"], hit["text"]) == ("project-x/PX-100.dxf", "TEXT", "Phase 1: pump housing")
    assert Path(hit["output"]).is_file() and Path(hit["datasheet"]).is_file()


def test_recipes(tmp_path):
    [block] = shell_blocks("Library-wide edits: recipes")
    script = block.replace("/tmp/", f"{tmp_path}/")
    library = REPO / "data" / "example-library"
    before = {p: p.read_bytes() for p in library.rglob("*") if p.is_file()}
    done = bash(script, timeout=2400)
    assert "dry run: nothing was written" in done.stdout
    assert 'replace_text: Model: TEXT #AB: "Phase 1: pump housing" → "Stage 1: pump housing"' in done.stdout
    [revision] = (tmp_path / "cadpipe-example" / "revisions").iterdir()
    assert revision.name.startswith("project-x-rev-b-")
    assert sorted(p.name for p in revision.rglob("*.dxf")) == ["PX-100.dxf", "PX-101.dxf"]
    [backup] = (tmp_path / "cadpipe-backups").iterdir()
    assert sorted(p.name for p in backup.rglob("*.dxf")) == ["PX-100.dxf", "PX-101.dxf"]
    assert {p: p.read_bytes() for p in library.rglob("*") if p.is_file()} == before, "the shipped library untouched"


def test_a_recipe_that_selects_nothing_says_why(tmp_path):
    recipe = tmp_path / "none.yaml"
    recipe.write_text('select:\n  paths: ["project-z/*"]\noperations:\n  - purge: {layers: true}\n')
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "apply", str(recipe), "--library", str(REPO / "data" / "example-library")]
        + ["--dry-run", "--out", str(tmp_path / "out")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    hint = next(line for line in done.stdout.splitlines() if line.startswith("hint:"))
    assert "selected none of the 7 drawings" in hint and "7 path or format not selected" in hint


class Background:
    """The README's long-running commands, each in its own process group, stopped at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: list[tuple[subprocess.Popen, Path]] = []

    def start(self, script: str, env: dict[str, str], name: str) -> subprocess.Popen:
        log = self.root / f"{name}.log"
        proc = subprocess.Popen(
            ["bash", "-c", script],
            cwd=REPO,
            env=env,
            stdout=open(log, "wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append((proc, log))
        return proc

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{test_server.tail(log)}" for _, log in self.procs)

    def stop(self) -> None:
        for proc, _ in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)


def test_running_with_the_prefect_ui(tmp_path):
    """The four steps as written: a server, the profile, the work pool and the deployments, a
    worker, the watcher; then a drawing dropped into the watched folder is processed by a flow run
    of the drop-folder deployment, through the worker."""
    [block] = shell_blocks("Running with the Prefect UI")
    port = test_server.free_port()
    srv = tmp_path / "srv"
    for folder in ("library", "drop", "out"):
        (srv / "cad" / folder).mkdir(parents=True)
    text = block.replace("4200", str(port)).replace("/srv/cad", f"{srv}/cad")
    steps = commands(text)
    prefix = [c for c in steps if c.startswith("export ")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect-home"),  # `prefect config set` writes this profile
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_WORKER_QUERY_SECONDS="1",
        PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false",  # no 02:00 runs during the test
    )
    background = Background(tmp_path)
    try:
        for step in steps:
            if step.startswith("export "):
                continue
            script = "\n".join([*prefix, step])
            if not LONG_RUNNING.search(step):
                bash(script, env=env, timeout=600)
                continue
            name = LONG_RUNNING.search(step).group(1).split()[-2]
            proc = background.start(script, env, name)
            if "server start" in step:
                wait_for(lambda: _healthy(port), 240, background, proc)
        nightly = httpx.get(
            f"http://127.0.0.1:{port}/api/deployments/name/cadpipe-batch/nightly-library", timeout=30
        ).json()
        assert nightly["parameters"] == {"sources": [f"{srv}/cad/library"], "out": f"{srv}/cad/out"}
        time.sleep(5)  # the watcher's first sweep
        shutil.copy(SAMPLES / "gear.dxf", srv / "cad" / "drop" / "gear.dxf")
        cad_out = srv / "cad" / "out"
        logged = cad_out / "catalog" / "files" / "_delta_log"
        wait_for(
            lambda: logged.exists() and "gear.dxf" in set(catalog_table(cad_out, "files")["path"]), 600, background
        )
        [row] = catalog_table(cad_out, "files").to_dict("records")
        assert row["status"] == "ok" and row["source_root"] == f"{srv}/cad/drop"

        def drop_folder_run_completed() -> bool:
            runs = httpx.post(f"http://127.0.0.1:{port}/api/flow_runs/filter", json={}, timeout=30).json()
            return any(r["state_type"] == "COMPLETED" and "drop-folder" in r["tags"] for r in runs)

        wait_for(drop_folder_run_completed, 300, background)  # it ends after publishing
    finally:
        background.stop()


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(condition, timeout: float, background: Background, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc is None or proc.poll() is None, f"exited early\n{background.logs()}"
        assert time.monotonic() < deadline, f"not within {timeout} s\n{background.logs()}"
        time.sleep(1)


pytestmark = pytest.mark.timeout(3600)
