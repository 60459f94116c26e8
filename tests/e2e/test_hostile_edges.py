"""Broken promises of issue 11, each rerun as described: markup and undecodable names, unreadable
files, symlinks out of the source, a file rewritten or vanished before its turn, two identities
for one file, a memory cap raised, an output root inside a source. Real batches under Prefect's
test harness, the real command line in subprocesses, real files, links, FIFOs and permissions."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from documents.names import to_native, to_text
from engine.catalog import Catalog, Outcome, now_iso
from engine.config import load_config
from engine.discover import scan
from engine.plan import make_plan, work_id
from engine.version import pipeline_version
from engine.work import process_job
from flows.batch import as_read, batch
from flows.outcomes import summary_of
from tests.conftest import REPO, catalog_table
from tests.hostile_inputs import SECRET, drawing

pytestmark = pytest.mark.usefixtures("prefect_harness")
BAD_GROUP_CODE = b"0\nSECTION\n2\nENTITIES\n0\nLINE\n[/x]\n0\n0\nENDSEC\n0\nEOF\n"
NOT_A_NUMBER = b"0\nSECTION\n2\nENTITIES\n0\nLINE\n8\n0\n10\nnot a number\n"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_table(out: Path) -> pd.DataFrame:
    return catalog_table(out, "files")


def run(sources, out: Path, **kw):
    state = batch(sources=[str(s) for s in sources], out=str(out), workers=1, return_state=True, **kw)
    summary = summary_of(state.result(raise_on_failure=False))
    assert summary is not None, f"the batch did not finish: {state.message}"
    return summary


def cli(
    *args, env: dict | None = None, user: list[str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    # Without `env`, the command starts its own temporary server (or refuses before it would).
    environment = env or {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    command = [
        *(user or []),
        sys.executable,
        "-m",
        "flows.cli",
        *[os.fsencode(a) if isinstance(a, (bytes, Path)) else a for a in args],
    ]
    return subprocess.run(command, cwd=REPO, env=environment, capture_output=True, timeout=timeout)


def text(output: bytes) -> str:
    return " ".join(output.decode("utf-8", "replace").split())  # Rich wraps long lines


def write(folder: Path | bytes, name: bytes, data: bytes) -> bytes:
    path = os.path.join(os.fsencode(folder), name)
    with open(path, "wb") as fh:
        fh.write(data)
    return path


# 1 and 2: user text is data; names need not be UTF-8.


def test_markup_and_names_that_are_not_utf8_are_printed_recorded_and_rerun(tmp_path, cli_env):
    lib = os.fsencode(tmp_path) + b"/d\xe9p\xf4t"  # the folder's own name is Latin-1 too
    os.makedirs(lib + b"/[")
    write(lib + b"/[", b"b] plan.dxf", BAD_GROUP_CODE)  # the path `[/b] plan.dxf`, failing with `[/x]`
    write(lib, b"caf\xe9.dxf", drawing(1))
    write(lib, b"cass\xe9.dxf", NOT_A_NUMBER)
    out = tmp_path / "out"
    # A rerun does the same, never worse; the failures are known then (listed with --fail-on any).
    for label, args in (("failed", []), ("known failure", ["--fail-on", "any"])):
        proc = cli("run", lib, "--out", out, "--workers", "1", *args, env=cli_env)
        assert proc.returncode == 1, text(proc.stdout + proc.stderr)[-3000:]
        printed = text(proc.stdout)
        assert f"{label} [/b] plan.dxf: load:" in printed and "[/x]" in printed
        assert f"{label} cass\\xe9.dxf: load:" in printed
    files = files_table(out).set_index("path")
    assert set(files.index) == {"[/b] plan.dxf", "caf\\xe9.dxf", "cass\\xe9.dxf"}
    assert set(files["source_root"]) == {to_text(os.fsdecode(lib))}
    assert files.loc["caf\\xe9.dxf", "status"] == "ok"
    quarantine = os.listdir(os.fsencode(out / "quarantine"))
    assert any(name.endswith(b"-cass\xe9.dxf") for name in quarantine), "the copy keeps the original name"
    copy = out / to_native(files.loc["cass\\xe9.dxf", "quarantine"])
    assert copy.read_bytes() == NOT_A_NUMBER
    runs = catalog_table(out, "runs")
    assert len(runs) == 2 and runs["sources"].map(list).tolist()[0] == [to_text(os.fsdecode(lib))]


def test_a_file_name_that_is_not_utf8_goes_through_prefect_logs_and_html(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    write(lib, b"plan-\xff\xfe.dxf", drawing(2))
    write(lib, b"broken-\xff.dxf", NOT_A_NUMBER)
    out = tmp_path / "out"
    summary = run([lib], out)
    assert (summary["processed"], summary["failed"]) == (1, 1)
    assert summary["failures"] == [f"broken-\\xff.dxf: load: {summary['failures'][0].split(': load: ')[1]}"]
    files = files_table(out).set_index("path")
    assert files.loc["plan-\\xff\\xfe.dxf", "status"] == "ok"
    [log] = (out / "logs").glob("*.jsonl")
    assert "broken-\\\\xff.dxf" in log.read_text(encoding="utf-8")  # JSON escapes the backslash
    report = (out / "docs" / "index.html").read_text(encoding="utf-8")
    assert "broken-\\xff.dxf" in report and "%FF.dxf" in report  # shown as text, linked by its bytes


# 3: unreadable files and folders, as a user who cannot read them.


def unprivileged() -> list[str] | None:
    """A command prefix that runs as an unprivileged user: nobody, when this runs as root."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        return None
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


# As the unprivileged user, in one process: discovery, the worker, the catalog. (Not the whole
# command: where the interpreter lives below a folder only root may enter, as on our CI machines
# with pyenv in /root, an unprivileged user cannot start the worker and server processes.)
UNPRIVILEGED_RUN = """
import json, sys
from pathlib import Path
from flows.batch import unreadable_result
from engine.catalog import Catalog, Outcome, now_iso
from engine.config import load_config
from engine.discover import scan
from engine.plan import make_plan
from engine.version import pipeline_version
from engine.work import process_job

lib, out = Path(sys.argv[1]), Path(sys.argv[2])
cfg = load_config()
found = scan([lib], exclude=[], formats=["dxf"], known=Catalog(out).known_files(), roots=Catalog(out).roots())
plan = make_plan(found.inputs, options_for=cfg.options_for, options_key=cfg.options_key, version=pipeline_version(),
                 recorded=Catalog(out).recorded(), completed=set())
outcomes = []
for item in plan.todo:
    result = process_job(item.to_job(str(out)))
    outcomes.append(Outcome(item.input, item.work_id, "processed" if result.ok else "failed", result.record()))
outcomes += [Outcome(p.as_input(), None, "failed", unreadable_result(p).record()) for p in found.problems]
row = Catalog(out).publish({"run_id": sys.argv[3], "started_at": now_iso(), "pipeline_version": "v"}, outcomes, [str(lib)])
print(json.dumps({"problems": [p.path for p in found.problems], "failed": row["failed"]}))
"""


@pytest.mark.skipif(unprivileged() is None, reason="runs as root without setpriv: mode 000 would not keep root out")
def test_unreadable_files_and_folders_are_recorded_failed_and_retried_once_readable():
    base = Path(tempfile.mkdtemp(prefix="cadpipe-unreadable-", dir="/tmp"))  # not below root's private tmp
    try:
        os.chmod(base, 0o755)
        lib, out = base / "lib", base / "out"
        lib.mkdir()
        out.mkdir()
        (lib / "fine.dxf").write_bytes(drawing(3))
        (lib / "locked.dxf").write_bytes(drawing(4))
        (lib / "locked-folder").mkdir()
        (lib / "locked-folder" / "inner.dxf").write_bytes(drawing(5))
        if os.geteuid() == 0:
            os.chown(out, 65534, 65534)
        os.chmod(lib / "locked.dxf", 0)
        os.chmod(lib / "locked-folder", 0)

        def run_unprivileged(run_id: str) -> subprocess.CompletedProcess:
            command = [*unprivileged(), sys.executable, "-c", UNPRIVILEGED_RUN, str(lib), str(out), run_id]
            return subprocess.run(
                command, cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, "HOME": str(out)}
            )

        proc = run_unprivileged("r1")
        assert proc.returncode == 0, proc.stderr[-3000:]
        files = files_table(out).set_index("path")
        assert files.loc["fine.dxf", "status"] == "ok"
        for name in ("locked.dxf", "locked-folder"):
            row = files.loc[name]
            assert row["status"] == "failed" and row["error_class"] == "PermissionError", row["error_message"]
            assert (
                row["error_stage"] == "discover"
                and not row["error_permanent"]
                and "Permission denied" in row["error_message"]
            )
        assert pd.isna(files.loc["locked.dxf", "quarantine"])
        os.chmod(lib / "locked.dxf", 0o644)
        os.chmod(lib / "locked-folder", 0o755)
        proc = run_unprivileged("r2")
        assert proc.returncode == 0, proc.stderr[-3000:]
        files = files_table(out).set_index("path")
        assert sorted(files.index) == ["fine.dxf", "locked-folder/inner.dxf", "locked.dxf"]
        assert (files["status"] == "ok").all()
    finally:
        for root, dirs, _ in os.walk(base):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
        shutil.rmtree(base, ignore_errors=True)


def test_what_discovery_cannot_read_is_recorded_by_the_batch_and_the_batch_goes_on(tmp_path):
    """The batch side of the above, as root: a FIFO and a broken link (which root cannot read
    either) become failed rows with their reasons; the batch finishes and publishes."""
    lib, out = tmp_path / "lib", tmp_path / "out"
    lib.mkdir()
    (lib / "fine.dxf").write_bytes(drawing(15))
    os.mkfifo(lib / "pipe.dxf")
    os.symlink(lib / "gone.dxf", lib / "broken.dxf")
    summary = run([lib], out)
    assert (summary["files_seen"], summary["processed"], summary["failed"]) == (3, 1, 2)
    files = files_table(out).set_index("path")
    assert files.loc["pipe.dxf", "error_class"] == "NotRegularFile" and files.loc["pipe.dxf", "error_permanent"]
    assert files.loc["broken.dxf", "error_class"] == "BrokenSymlink" and not files.loc["broken.dxf", "error_permanent"]
    again = run([lib], out)
    assert again["failed"] == 2
    errors = catalog_table(out, "errors")
    assert len(errors) == 2, "the same discovery failure again is not news"


# 4: symlinks out of the source; nothing more readable than its input.


def test_a_link_out_of_the_source_is_never_read_and_nothing_is_more_readable_than_its_input(tmp_path):
    lib, outside, out = tmp_path / "drop", tmp_path / "etc", tmp_path / "out"
    lib.mkdir()
    outside.mkdir()
    (outside / "shadow").write_bytes(SECRET)
    os.chmod(outside / "shadow", 0o640)
    os.symlink(outside / "shadow", lib / "shadow.dxf")
    (lib / "private.dxf").write_bytes(drawing(6))
    os.chmod(lib / "private.dxf", 0o600)
    summary = run([lib], out)
    files = files_table(out).set_index("path")
    link = files.loc["shadow.dxf"]
    assert link["status"] == "failed" and link["error_class"] == "OutsideSource" and pd.isna(link["quarantine"])
    assert summary["failed"] == 1
    for path in out.rglob("*"):
        assert not path.is_file() or SECRET not in path.read_bytes(), f"{path} holds the secret"
    private = files.loc["private.dxf"]
    folder = out / "outputs" / private["work_id"]
    assert folder.stat().st_mode & 0o777 == 0o700
    assert {p.stat().st_mode & 0o777 for p in folder.iterdir()} == {0o600}

    # Followed on request: read, and its quarantine copy is no more readable than the secret.
    config = tmp_path / "follow.toml"
    config.write_text("[inputs]\nfollow_symlinks = true\n", encoding="utf-8")
    run([lib], out, config=str(config))
    row = files_table(out).set_index("path").loc["shadow.dxf"]
    assert row["status"] == "failed" and row["error_class"] == "InputError"
    copy = out / row["quarantine"]
    assert copy.read_bytes() == SECRET
    assert copy.stat().st_mode & 0o777 == 0o640 and Path(f"{copy}.error.json").stat().st_mode & 0o777 == 0o640


# 5: the content hashed is the content processed.


def _job(lib: Path, out: Path, name: str) -> tuple[dict, object]:
    cfg = load_config()
    found = scan([lib], exclude=[], formats=["dxf"])
    plan = make_plan(
        found.inputs,
        options_for=cfg.options_for,
        options_key=cfg.options_key,
        version=pipeline_version(),
        recorded={},
        completed=set(),
    )
    [item] = [i for i in plan.todo if i.input.path == name]
    return item.to_job(str(out)), item


def test_a_file_rewritten_before_its_turn_is_filed_under_the_content_processed(tmp_path):
    lib, out = tmp_path / "lib", tmp_path / "out"
    lib.mkdir()
    (lib / "part.dxf").write_bytes(drawing(7))
    job, item = _job(lib, out, "part.dxf")
    new = drawing(8, entities=9)
    (lib / "part.dxf").write_bytes(new)  # rewritten after discovery, before a worker took it
    result = process_job(job)
    assert result.status == "ok" and result.sha256 == sha256(new)
    assert result.work_id == work_id(sha256(new), job.options_key, job.version) != job.work_id
    assert not (out / "outputs" / job.work_id).exists(), "nothing filed under the old content's identity"
    record = (out / "outputs" / result.work_id / "result.json").read_text(encoding="utf-8")
    assert sha256(new) in record
    recorded = as_read(item.input, result)
    assert (recorded.sha256, recorded.size) == (sha256(new), len(new))


def test_a_file_that_vanished_before_its_turn_is_retried_when_it_is_back(tmp_path):
    lib, out = tmp_path / "lib", tmp_path / "out"
    lib.mkdir()
    data = drawing(9)
    (lib / "gone.dxf").write_bytes(data)
    job, item = _job(lib, out, "gone.dxf")
    (lib / "gone.dxf").unlink()
    result = process_job(job)
    assert result.status == "failed" and result.error_class == "FileNotFoundError"
    assert result.permanent is False, "its absence may pass"
    catalog = Catalog(out)
    catalog.publish(
        {"run_id": "r1", "started_at": now_iso(), "pipeline_version": "v"},
        [Outcome(item.input, item.work_id, "failed", result.record())],
        [str(lib)],
    )
    (lib / "gone.dxf").write_bytes(data)  # back, unchanged
    summary = run([lib], out)
    assert summary["processed"] == 1 and files_table(out)["status"].tolist() == ["ok"]


# 6: one identity per file, whichever way it was found.


def test_one_identity_per_file_however_it_was_found(tmp_path):
    drop, out = tmp_path / "drop", tmp_path / "out"
    (drop / "sub").mkdir(parents=True)
    (drop / "sub" / "nested.dxf").write_bytes(drawing(10))
    (drop / "top.dxf").write_bytes(drawing(11))

    def rows() -> list[tuple[str, str]]:
        return sorted(zip(files_table(out)["source_root"], files_table(out)["path"]))

    expected = [(str(drop), "sub/nested.dxf"), (str(drop), "top.dxf")]
    run([drop / "sub" / "nested.dxf"], out, roots=[str(drop)])  # as the watcher hands it over
    assert rows() == expected[:1]
    assert run([drop], out)["unchanged"] == 1 and rows() == expected  # a run over the folder: the same row
    assert run([drop / "sub"], out)["unchanged"] == 1 and rows() == expected  # over the sub-folder
    assert run([drop, drop / "sub"], out)["files_seen"] == 2 and rows() == expected  # overlapping sources
    assert run([drop / "sub" / "nested.dxf"], out)["unchanged"] == 1 and rows() == expected  # named alone
    (drop / "sub" / "nested.dxf").unlink()
    run([drop], out)
    assert rows() == expected[1:], "the row of a deleted file goes with the next run over its folder"


def test_a_run_over_a_subfolder_after_its_parent_keeps_one_row(tmp_path):
    lib, out = tmp_path / "lib", tmp_path / "out"
    (lib / "sub").mkdir(parents=True)
    (lib / "sub" / "a.dxf").write_bytes(drawing(12))
    run([lib], out)
    summary = run([lib / "sub"], out)
    files = files_table(out)
    assert len(files) == 1 and files.loc[0, "path"] == "sub/a.dxf" and summary["unchanged"] == 1


# 8: a memory cap raised makes its failure retryable.


def test_a_memory_failure_is_retried_once_the_cap_is_raised(tmp_path):
    lib, out = tmp_path / "lib", tmp_path / "out"
    lib.mkdir()
    (lib / "poster.dxf").write_bytes(drawing(13, colour=1))  # red: an RGB page (a grey one is a third)

    def config(memory_mb: int) -> str:
        path = tmp_path / f"m{memory_mb}.toml"
        # A 200-megapixel PNG in colour: one 600 MB pixmap, and its rows for the PNG encoder,
        # more than a 1024 MB worker has left.
        path.write_text(
            f'[dxf]\noutputs = ["png"]\npng_dpi = 1017\npng_max_pixels = 200000000\n'
            f"[limits]\nmemory_mb = {memory_mb}\n[retries]\nattempts = 1\n",
            encoding="utf-8",
        )
        return str(path)

    first = run([lib], out, config=config(1024))
    row = files_table(out).iloc[0]
    assert first["failed"] == 1 and row["error_class"] == "MemoryLimit" and row["error_permanent"]
    assert row["error_limit"] == 1024
    again = run([lib], out, config=config(1024))
    assert again["processed"] == 0 and again["failed"] == 1, "the same cap: not tried again"
    raised = run([lib], out, config=config(4096))
    assert raised["processed"] == 1 and files_table(out).iloc[0]["status"] == "ok"


# 9 and the minor ones: mistakes refused before any work, with exit 2.


@pytest.mark.parametrize(
    "case", ["out-is-source", "out-inside-source", "source-inside-out", "chunk-size", "workers", "nan-timeout"]
)
def test_impossible_runs_are_refused_before_the_server_starts(tmp_path, case):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "a.dxf").write_bytes(drawing(14))
    config = tmp_path / "c.toml"
    config.write_text("[limits]\ntimeout_s = nan\n" if case == "nan-timeout" else "", encoding="utf-8")
    args = {
        "out-is-source": ["run", lib, "--out", lib],
        "out-inside-source": ["run", lib, "--out", lib / "out"],
        "source-inside-out": ["run", lib / "sub", "--out", lib],
        "chunk-size": ["run", lib, "--out", tmp_path / "out", "--chunk-size", "-1"],
        "workers": ["run", lib, "--out", tmp_path / "out", "--workers", "100000"],
        "nan-timeout": ["run", lib, "--out", tmp_path / "out", "--config", config],
    }[case]
    (lib / "sub").mkdir(exist_ok=True)
    proc = cli(*args, timeout=120)
    assert proc.returncode == 2, text(proc.stdout + proc.stderr)[-2000:]
    assert not (tmp_path / "out" / "catalog").exists() and not (lib / "catalog").exists()
    assert "uvicorn" not in text(proc.stderr)


def test_a_watcher_or_an_apply_overlapping_the_output_root_is_refused(tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    proc = cli("watch", drop, "--out", drop / "out", timeout=120)
    assert proc.returncode == 2 and "inside the drop folder" in text(proc.stderr), text(proc.stderr)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\noperations:\n  - purge: {layers: true}\n", encoding="utf-8")
    proc = cli("apply", recipe, "--library", drop, "--out", drop, timeout=120)
    assert proc.returncode == 2 and "inside the library" in text(proc.stderr), text(proc.stderr)


def test_step_external_references_outside_the_source_are_not_read(corpus_dir, manifest, tmp_path):
    from documents.errors import InputError
    from documents.file_access import ReadScope, reading_within
    from documents.step_document import open_step

    lib, outside = tmp_path / "lib", tmp_path / "outside"
    lib.mkdir()
    outside.mkdir()
    prefix = "files/occt-import-js/test__testfiles__cax-if__s1-c5-214__"
    for row in manifest:  # the parts outside the library, the assembly inside pointing out at them
        if row["path"].startswith(prefix):
            name = Path(row["source_path"]).name
            data = (corpus_dir / row["path"]).read_bytes()
            if name == "s1-c5-214.stp":
                for part in (b"HEAD", b"TAIL", b"MAINBODY", b"FOOT"):
                    data = data.replace(b"'" + part + b".stp'", b"'../outside/" + part + b".stp'")
                (lib / name).write_bytes(data)
            else:
                (outside / name).write_bytes(data)
    with reading_within(ReadScope.of([lib])), pytest.raises(InputError, match="external references not found"):
        open_step(lib / "s1-c5-214.stp")
    assert len(open_step(lib / "s1-c5-214.stp").external_files) == 4, "outside any scope they are found"
