"""A real Prefect server on loopback: deploy prefect.yaml, run batches through a process worker,
rerun a failed flow run as the UI's Retry does, drive runs through the documented Job API (REST
with curl and jq, and the prefect CLI), and run the nightly batch and the drop-folder watcher at
once on one output root.

Slow by nature (a server, a worker and one process per flow run on two cores): one server and
one worker for the whole module, bounded waits, everything torn down at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, catalog_table

PREFECT = str(Path(sys.executable).with_name("prefect"))
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}
SAMPLES = REPO / "data" / "samples"

# The Job API examples of the README, run as written (paths replaced by the test's own).
SUBMIT_REST = """
DEPLOYMENT_ID=$(curl -s "$PREFECT_API_URL/deployments/name/cadpipe-batch/nightly-library" | jq -r .id)
RUN_ID=$(curl -s -X POST "$PREFECT_API_URL/deployments/$DEPLOYMENT_ID/create_flow_run" \\
  -H 'Content-Type: application/json' \\
  -d '{"parameters": {"sources": ["/srv/cad/library"], "out": "/srv/cad/out"}}' | jq -r .id)
echo "$RUN_ID"
"""
STATUS_REST = """curl -s "$PREFECT_API_URL/flow_runs/$RUN_ID" | jq -r .state_type"""
LOGS_REST = """curl -s -X POST "$PREFECT_API_URL/logs/filter" -H 'Content-Type: application/json' \\
  -d '{"logs": {"flow_run_id": {"any_": ["'"$RUN_ID"'"]}}, "sort": "TIMESTAMP_ASC"}' | jq -r '.[].message'"""
RETRY_REST = """curl -s -X POST "$PREFECT_API_URL/flow_runs/$RUN_ID/set_state" -H 'Content-Type: application/json' \\
  -d '{"state": {"type": "SCHEDULED", "name": "AwaitingRetry", "message": "Retry from the UI"}, "force": true}' | jq -r .state.type"""
CANCEL_REST = """curl -s -X POST "$PREFECT_API_URL/flow_runs/$RUN_ID/set_state" -H 'Content-Type: application/json' \\
  -d '{"state": {"type": "CANCELLING"}}' | jq -r .state.type"""
SUBMIT_CLI = """RUN_ID=$(prefect deployment run cadpipe-batch/nightly-library \\
  --params '{"sources": ["/srv/cad/library"]}' --param out=/srv/cad/out | sed -n 's/.*UUID: //p')
echo "$RUN_ID\""""
STATUS_CLI = """prefect flow-run inspect "$RUN_ID" --output json | jq -r .state_type"""
LOGS_CLI = """prefect flow-run logs "$RUN_ID\""""
CANCEL_CLI = """prefect flow-run cancel "$RUN_ID\""""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(proc: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM the process group we started, then SIGKILL what is left."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


class Server:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}/api"
        self.env = {
            **os.environ,
            "PREFECT_HOME": str(root / "prefect-home"),
            "PREFECT_API_URL": self.api,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",  # no 02:00 runs during the test
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "CADPIPE_HOME": str(REPO),
        }
        self.procs: list[tuple[subprocess.Popen, Path]] = []

    def spawn(self, name: str, *args: str, **env: str) -> subprocess.Popen:
        log = self.root / f"{name}.log"
        proc = subprocess.Popen(
            [PREFECT, *args],
            cwd=REPO,
            env={**self.env, **env},
            stdout=open(log, "wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped with everything it started
        )
        self.procs.append((proc, log))
        return proc

    def prefect(self, *args: str, **env: str) -> str:
        done = subprocess.run(
            [PREFECT, *args], cwd=REPO, env={**self.env, **env}, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def sh(self, script: str, **env: str) -> str:
        """Run a documented shell example with the prefect CLI of this environment on PATH."""
        path = f"{Path(PREFECT).parent}:{os.environ['PATH']}"
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=REPO,
            env={**self.env, "PATH": path, **env},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"{script}\n{done.stdout}\n{done.stderr}"
        return done.stdout.strip()

    def flow_run(self, run_id: str) -> dict:
        return httpx.get(f"{self.api}/flow_runs/{run_id}", timeout=30).json()

    def wait_run(self, run_id: str, states=TERMINAL, timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.flow_run(run_id)
            if run["state_type"] in states:
                return run
            time.sleep(1)
        raise AssertionError(f"flow run {run_id} still {run['state_type']} after {timeout} s\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{tail(log)}" for _, log in self.procs)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not shutil.which("jq") or not shutil.which("curl"):
        pytest.skip("the Job API examples need curl and jq")
    srv = Server(tmp_path_factory.mktemp("prefect-server"))
    proc = srv.spawn("server", "server", "start", "--host", "127.0.0.1", "--port", str(srv.port))
    try:
        deadline = time.monotonic() + 600
        while True:
            assert proc.poll() is None, f"prefect server exited\n{srv.logs()}"
            assert time.monotonic() < deadline, f"prefect server did not start\n{srv.logs()}"
            try:
                if httpx.get(f"{srv.api}/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        yield srv
    finally:
        for child, _ in reversed(srv.procs):
            stop(child)


@pytest.fixture(scope="module")
def deployed(server, tmp_path_factory):
    """prefect.yaml deployed as the README says, and a process worker serving the pool."""
    library = tmp_path_factory.mktemp("nightly-library")
    out = tmp_path_factory.mktemp("nightly-out")
    server.prefect("work-pool", "create", "cadpipe", "--type", "process")
    server.prefect(
        "--no-prompt",
        "deploy",
        "--all",
        CADPIPE_LIBRARY=str(library),
        CADPIPE_OUT=str(out),
        CADPIPE_TIMEZONE="Europe/Berlin",
    )
    server.spawn("worker", "worker", "start", "--pool", "cadpipe")
    return {"library": library, "out": out}


def config_file(folder: Path, extra: str = "") -> Path:
    """A config with SVG only, to keep the runs short."""
    path = folder / "cadpipe.toml"
    path.write_text('[dxf]\noutputs = ["svg"]\n[retries]\nattempts = 1\n' + extra, encoding="utf-8")
    return path


def corpus_dxfs(manifest, count: int, smallest: int = 50_000, largest: int = 400_000) -> list[str]:
    rows = [r for r in manifest if r["format"] == "dxf" and r["ezdxf_load"] == "ok"]
    rows = [r for r in rows if smallest <= int(r["bytes"]) <= largest]
    return [r["path"] for r in sorted(rows, key=lambda r: r["path"])[:count]]


def json_events(out: Path) -> list[dict]:
    lines = []
    for path in sorted((out / "logs").glob("*.jsonl")):
        lines += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return lines


def test_prefect_yaml_deploys_the_batch_the_nightly_library_and_the_drop_folder(server, deployed):
    found = httpx.post(f"{server.api}/deployments/filter", json={}, timeout=30).json()
    by_name = {d["name"]: d for d in found}
    assert {"batch", "nightly-library", "drop-folder"} <= set(by_name)
    nightly = by_name["nightly-library"]
    assert nightly["parameters"] == {"sources": [str(deployed["library"])], "out": str(deployed["out"])}
    [schedule] = [s["schedule"] for s in nightly["schedules"]]
    assert (schedule["cron"], schedule["timezone"]) == ("0 2 * * *", "Europe/Berlin")
    assert by_name["drop-folder"]["parameters"] == {} and by_name["drop-folder"]["schedules"] == []
    assert all(
        by_name[name]["entrypoint"] == "flows/batch.py:batch" for name in ("batch", "nightly-library", "drop-folder")
    )


def test_rerunning_a_failed_flow_run_processes_only_the_fixed_file(server, deployed, tmp_path, corpus_dir, manifest):
    """Submit and follow through the REST examples; fix the file; Retry the same flow run."""
    library, out = tmp_path / "library", tmp_path / "out"
    library.mkdir()
    for name in ("gear.dxf", "text_alignments.dxf"):
        shutil.copy(SAMPLES / name, library / name)
    broken = min(
        (r for r in manifest if r["format"] == "dxf" and r["ezdxf_load"] == "fail"), key=lambda r: int(r["bytes"])
    )
    shutil.copy(corpus_dir / broken["path"], library / "part.dxf")
    submit = SUBMIT_REST.replace("/srv/cad/library", str(library)).replace("/srv/cad/out", str(out))
    run_id = server.sh(submit)
    server.wait_run(run_id)
    assert server.sh(STATUS_REST, RUN_ID=run_id) == "FAILED"
    # The run's last log lines are shipped in batches and may land just after its final state.
    deadline = time.monotonic() + 300
    while "3 files: 2 processed, 0 unchanged, 1 failed" not in (logged := server.sh(LOGS_REST, RUN_ID=run_id)):
        assert time.monotonic() < deadline, f"the summary line never reached the API:\n{logged}"
        time.sleep(1)

    shutil.copy(SAMPLES / "hatch_pattern.dxf", library / "part.dxf")  # the fix
    assert server.sh(RETRY_REST, RUN_ID=run_id) == "SCHEDULED"
    run = server.wait_run(run_id)
    assert run["state_type"] == "COMPLETED" and run["run_count"] == 2, "the same flow run, run again"

    runs = catalog_table(out, "runs")
    assert list(runs["flow_run_id"]) == [run_id], "one row per run: the Retry updated it"
    assert list(zip(runs["processed"], runs["unchanged"], runs["failed"], runs["attempt"])) == [(1, 2, 0, 2)]
    events = json_events(out)
    assert {e["run_id"] for e in events} == {runs.iloc[0]["run_id"]}, "the Retry continues the run's log"
    first_end = next(i for i, e in enumerate(events) if e["event"] == "run.finished")
    processed = [e["path"] for e in events[first_end:] if e["event"] == "file.processed"]
    assert processed == [str(library / "part.dxf")], "only the fixed file was processed again"
    files = catalog_table(out, "files")
    assert set(files["status"]) == {"ok"}


def create_run(server: Server, deployment: str, parameters: dict | None = None, **body) -> str:
    """A flow run of the deployment, through the REST API as a scheduler or script makes it."""
    url = f"{server.api}/deployments/{deployment_id(server, deployment)}/create_flow_run"
    response = post_until_answered(url, {"parameters": parameters or {}, **body})
    assert response.status_code == 201, f"{response.status_code}: {response.text}\n{server.logs()}"
    return response.json()["id"]


def post_until_answered(url: str, body: dict) -> httpx.Response:
    """POST, again after a 5xx: the SQLite server answers 500 ("database is locked") or 503 while
    another writer holds the database, and Prefect's own client retries those too."""
    for attempt in range(6):
        response = httpx.post(url, json=body, timeout=30)
        if response.status_code < 500:
            break
        time.sleep(1 + attempt)
    return response


def run_logs(server: Server, run_id: str, wanted: str, timeout: float = 60) -> list[str]:
    """The flow run's log messages, once `wanted` is among them (logs are shipped in batches)."""
    deadline = time.monotonic() + timeout
    while True:
        found = httpx.post(
            f"{server.api}/logs/filter",
            json={"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC"},
            timeout=30,
        ).json()
        messages = [r["message"] for r in found]
        if any(wanted in m for m in messages) or time.monotonic() > deadline:
            return messages
        time.sleep(1)


def summary_artifact(server: Server, run_id: str) -> str:
    found = httpx.post(
        f"{server.api}/artifacts/filter",
        json={"artifacts": {"flow_run_id": {"any_": [run_id]}, "key": {"any_": ["cadpipe-run-summary"]}}},
        timeout=30,
    ).json()
    [artifact] = found
    return artifact["data"]


def test_a_nightly_run_is_red_only_for_news(server, deployed, corpus_dir, manifest):
    """The nightly deployment as deployed, over a library with one corrupt drawing: Failed for the
    new failure, Completed with "1 known failure" when nothing changed, Completed with 0 failures
    once the file is replaced; each flow run tells its story without a traceback."""
    library, out = deployed["library"], deployed["out"]
    for name in ("gear.dxf", "text_alignments.dxf"):
        shutil.copy(SAMPLES / name, library / name)
    broken = min(
        (r for r in manifest if r["format"] == "dxf" and r["ezdxf_load"] == "fail"), key=lambda r: int(r["bytes"])
    )
    shutil.copy(corpus_dir / broken["path"], library / "part.dxf")

    first = create_run(server, "nightly-library")
    run = server.wait_run(first)
    assert run["state_type"] == "FAILED", run["state"]
    message = run["state"]["message"]
    assert message.startswith("3 files: 2 processed, 0 unchanged, 1 failed; failed in this run: part.dxf: load: ")
    logged = run_logs(server, first, "failed in this run: part.dxf")
    assert any(m.startswith("3 files: 2 processed") and "part.dxf: load: " in m for m in logged), logged
    assert not any("Traceback" in m or "exited with unexpected exception" in m for m in logged), logged
    assert "part\\.dxf" in summary_artifact(server, first) and "1 failed in this run" in summary_artifact(server, first)

    second = create_run(server, "nightly-library")
    run = server.wait_run(second)
    assert run["state_type"] == "COMPLETED", run["state"]
    assert "3 files: 0 processed, 2 unchanged, 1 failed; 1 known failure" in run["state"]["message"]
    assert "1 known failure" in summary_artifact(server, second)

    shutil.copy(SAMPLES / "hatch_pattern.dxf", library / "part.dxf")  # the corrupt drawing replaced
    third = create_run(server, "nightly-library")
    run = server.wait_run(third)
    assert run["state_type"] == "COMPLETED", run["state"]
    assert run["state"]["message"] == "3 files: 1 processed, 2 unchanged, 0 failed"

    runs = catalog_table(out, "runs").sort_values("started_at", ignore_index=True)
    assert list(runs["flow_run_id"]) == [first, second, third], "one row per run, the parent flow run's id"
    assert list(zip(runs["new_failures"], runs["known_failures"])) == [(1, 0), (0, 1), (0, 0)]
    by_run = dict(zip(runs["run_id"], runs["flow_run_id"]))
    events = json_events(out)
    assert events and all(e["flow_run_id"] == by_run[e["run_id"]] for e in events), "log lines name the run's own"
    assert any(e.get("subflow_run_id") for e in events if e["event"] == "file.failed")
    errors = catalog_table(out, "errors")
    assert list(errors["flow_run_id"]) == [first], "the failure was news once"
    assert set(catalog_table(out, "files")["status"]) == {"ok"}


def tree(path: Path) -> list[tuple[str, int]] | None:
    """What a folder holds, with modification times (None when it does not exist)."""
    if not path.exists():
        return None
    return sorted((str(p.relative_to(path)), p.stat().st_mtime_ns) for p in path.rglob("*"))


def test_deploying_without_a_variable_fails_loudly_and_a_run_never_writes_into_the_repository(server, deployed):
    env = {k: v for k, v in server.env.items() if k != "CADPIPE_LIBRARY"}
    env.update(CADPIPE_OUT=str(deployed["out"]), CADPIPE_TIMEZONE="Europe/Berlin")
    done = subprocess.run(
        [PREFECT, "--no-prompt", "deploy", "--all"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    said = done.stdout + done.stderr
    assert done.returncode != 0, said
    assert "$CADPIPE_LIBRARY is not set" in said, said
    nightly = httpx.get(f"{server.api}/deployments/name/cadpipe-batch/nightly-library", timeout=30).json()
    assert nightly["parameters"]["sources"] == [str(deployed["library"])], "the deployment was left as it was"

    # A deployment holding empty parameters anyway (as Prefect stores an unset variable): its runs
    # fail at their start, naming the variable, and touch nothing; nor may a run write into the
    # repository (the `batch` deployment with `out` left to the config's default, REPO/out).
    repository = tree(REPO / "out")
    empty = create_run(server, "nightly-library", {"sources": [""], "out": ""})
    defaulted = create_run(server, "batch")
    for run_id, words in (
        (empty, ["parameter sources[0] is empty", "$CADPIPE_LIBRARY", "nothing was read or written"]),
        (defaulted, ["inside cadpipe's code folder", "never writes into the repository", "out parameter"]),
    ):
        run = server.wait_run(run_id)
        assert run["state_type"] == "FAILED", run["state"]
        for word in words:
            assert word in run["state"]["message"], run["state"]["message"]
        logged = run_logs(server, run_id, words[0])
        assert any(words[0] in m for m in logged) and not any("Traceback" in m for m in logged), logged
    assert tree(REPO / "out") == repository, "nothing written into the repository"


def test_the_cli_submits_follows_and_cancels_a_run(server, deployed, tmp_path, corpus_dir, manifest):
    library, out = tmp_path / "library", tmp_path / "out"
    library.mkdir()
    for rel in corpus_dxfs(manifest, 80, smallest=20_000, largest=5_000_000):  # long enough to cancel
        shutil.copy(corpus_dir / rel, library / Path(rel).name)
    submit = SUBMIT_CLI.replace("/srv/cad/library", str(library)).replace("/srv/cad/out", str(out))
    run_id = server.sh(submit)
    assert len(run_id) == 36, run_id
    deadline = time.monotonic() + 600
    while not any(e["event"].startswith("file.") for e in (json_events(out) if (out / "logs").is_dir() else [])):
        assert time.monotonic() < deadline, f"no file finished\n{server.logs()}"
        time.sleep(1)
    assert server.sh(STATUS_CLI, RUN_ID=run_id) == "RUNNING"
    assert "Beginning flow run" in server.sh(LOGS_CLI, RUN_ID=run_id)
    pid = int(server.flow_run(run_id)["infrastructure_pid"].split(":")[-1])
    workers = descendants(pid)
    assert workers, "the flow run's process pool is running"

    assert "scheduled for cancellation" in " ".join(server.sh(CANCEL_CLI, RUN_ID=run_id).split())
    run = server.wait_run(run_id, timeout=180)
    assert run["state_type"] == "CANCELLED"
    deadline = time.monotonic() + 300
    while alive(workers | {pid}):
        assert time.monotonic() < deadline, f"left running after the cancel: {alive(workers | {pid})}"
        time.sleep(1)


def test_the_rest_cancel_example_cancels_a_scheduled_run(server, deployed, tmp_path):
    later = {"type": "SCHEDULED", "state_details": {"scheduled_time": "2099-01-01T00:00:00Z"}}
    future = {"id": create_run(server, "nightly-library", state=later)}
    assert server.sh(CANCEL_REST, RUN_ID=future["id"]) == "CANCELLED", "not started: nothing to stop"
    assert server.wait_run(future["id"], timeout=120)["state_type"] == "CANCELLED"


def test_the_nightly_batch_and_the_watcher_at_once_never_process_content_twice(
    server, deployed, tmp_path, corpus_dir, manifest
):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from engine.config import load_config
    from flows.watch import Watcher, WatchSettings

    library, drop, out = tmp_path / "library", tmp_path / "drop", tmp_path / "out"
    library.mkdir()
    drop.mkdir()
    config = config_file(tmp_path, '[watch]\nsettle_s = 0.5\nbatch_window_s = 1.0\ntrigger = "deployment"\n')
    picked = corpus_dxfs(manifest, 8)
    for rel in picked:
        shutil.copy(corpus_dir / rel, library / Path(rel).name)
    cfg = load_config(config, out=str(out))
    with temporary_settings(updates={PREFECT_API_URL: server.api}):
        watcher = Watcher(cfg, WatchSettings.from_config(cfg, [str(drop)]))
        assert watcher.trigger == "deployment"
        with watcher:
            for rel in picked:  # the same content arrives in the drop folder ...
                shutil.copy(corpus_dir / rel, drop / Path(rel).name)
            nightly = {  # ... while the nightly batch starts over the library
                "id": create_run(
                    server, "nightly-library", {"sources": [str(library)], "out": str(out), "config": str(config)}
                )
            }
            server.wait_run(nightly["id"])
            deadline = time.monotonic() + 300
            while watcher.busy or not watcher.runs:
                assert time.monotonic() < deadline, f"the watcher's run did not end\n{server.logs()}"
                time.sleep(1)
            watched = list(watcher.runs)

    assert all(r.error is None for r in watched) and all(r.state == "COMPLETED" for r in watched)
    assert sorted(p.name for r in watched for p in r.paths) == sorted(Path(rel).name for rel in picked)

    events = [e for e in json_events(out) if e["event"].startswith("file.")]
    assert {e["event"] for e in events} == {"file.processed"}
    assert len(events) == 2 * len(picked), "each copy reported once, by one of the two runs"
    spans = [(r["start_time"], r["end_time"]) for r in map(server.flow_run, [nightly["id"], watched[0].flow_run_id])]
    (a_start, a_end), (b_start, b_end) = spans
    assert a_start < b_end and b_start < a_end, f"the two flow runs were not running at once: {spans}"
    worked = Counter(e["work_id"] for e in events if not e["reused"])
    assert set(worked.values()) == {1}, "every piece of content was worked on exactly once"
    assert len(worked) == len(picked)

    files = catalog_table(out, "files")
    assert len(files) == 2 * len(picked) and not files.duplicated(["source_root", "path"]).any()
    assert set(files["status"]) == {"ok"} and set(files["source_root"]) == {str(library), str(drop)}
    runs = catalog_table(out, "runs")
    assert len(runs) == 1 + len(watched)
    layers = catalog_table(out, "layers")
    for sha, work_id in files[["sha256", "work_id"]].drop_duplicates().itertuples(index=False):
        expected = json.loads((out / "outputs" / work_id / "result.json").read_text())["tables"]["layers"]
        assert (layers["sha256"] == sha).sum() == len(expected), "detail rows once per content"
    leftovers = [p.name for p in (out / "outputs").iterdir() if p.name.startswith(".tmp-")]
    assert leftovers == []


def deployment_id(server: Server, name: str) -> str:
    for attempt in range(6):  # 5xx while the SQLite server is busy, as for a POST
        response = httpx.get(f"{server.api}/deployments/name/cadpipe-batch/{name}", timeout=30)
        if response.status_code < 500:
            break
        time.sleep(1 + attempt)
    assert response.status_code == 200, f"deployment {name}: {response.status_code}: {response.text}"
    return response.json()["id"]


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pids: set[int]) -> set[int]:
    living = set()
    for pid in pids:
        try:
            state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            living.add(pid)
    return living
