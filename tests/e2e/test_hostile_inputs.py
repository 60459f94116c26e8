"""The hostile-input suite: one library of generated attacks (tests/hostile_inputs.py) through the
real batch flow under Prefect's test harness. Each attack ends as one recorded outcome with a clear
reason, the batch goes on, nothing outside the library is read or exposed, and time and memory
stay bounded by the run's limits. The limits come from this run: the per-file timeout is a
multiple of the time a small drawing took here, not a fixed number of seconds."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

import pandas as pd
import pytest

from documents.names import to_text
from engine.config import load_config
from flows.batch import batch
from flows.outcomes import summary_of
from tests.conftest import REPO, catalog_table
from tests.hostile_inputs import ATTACKS, SECRET
from tests.time_limits import calibrated_timeout

pytestmark = pytest.mark.usefixtures("prefect_harness")
MEMORY_MB = 2048


def outcome_text(attack) -> str:
    """The README's outcome column."""
    if attack.status == "none":
        return "no row of its own"
    if attack.status == "ok":
        return "ok"
    return "failed: " + " or ".join(attack.error_classes)


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    (tmp / "cadpipe.toml").write_text('[dxf]\noutputs = ["svg"]\n', encoding="utf-8")
    # 40 times a small drawing here (at least 10 s): a normal file never meets it, and the heavy
    # attacks (each thousands of times more work) always do.
    timeout_s = calibrated_timeout(tmp, load_config(tmp / "cadpipe.toml"))
    config = tmp / "cadpipe.toml"
    config.write_text(
        '[dxf]\noutputs = ["svg"]\n'
        f"[limits]\ntimeout_s = {timeout_s:.1f}\nmemory_mb = {MEMORY_MB}\n"
        "[retries]\nattempts = 1\n",
        encoding="utf-8",
    )
    lib, outside, out = tmp / "library", tmp / "outside", tmp / "out"
    lib.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    (outside / "secret.png").write_bytes(SECRET)
    (outside / "secret.dwg").write_bytes(SECRET)
    os.chmod(outside / "secret.txt", 0o640)
    os.mkfifo(outside / "fifo.png")  # opening it for reading would block until a writer comes
    entries = {attack.name: attack.entries(lib, outside) for attack in ATTACKS}
    started = time.monotonic()
    state = batch(sources=[str(lib)], out=str(out), config=str(config), workers=2, return_state=True)
    elapsed = time.monotonic() - started
    files = catalog_table(out, "files")
    return {
        "lib": lib,
        "outside": outside,
        "out": out,
        "state": state,
        "files": files,
        "entries": entries,
        "timeout_s": timeout_s,
        "elapsed": elapsed,
    }


def row_of(files: pd.DataFrame, lib: Path, entry: bytes) -> list[dict]:
    path = to_text(entry)
    return files[(files["source_root"] == str(lib)) & (files["path"] == path)].to_dict("records")


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.entries.__name__ for a in ATTACKS])
def test_each_attack_ends_as_one_recorded_outcome_with_its_reason(hostile_run, attack):
    files, lib = hostile_run["files"], hostile_run["lib"]
    for entry in hostile_run["entries"][attack.name]:
        rows = row_of(files, lib, entry)
        if attack.status == "none":
            assert rows == [], f"{entry!r} has a row of its own"
            continue
        assert len(rows) == 1, f"{entry!r}: {len(rows)} rows"
        [row] = rows
        assert row["status"] == attack.status, f"{entry!r}: {row['status']} {row['error_message']}"
        if attack.status == "failed":
            assert row["error_class"] in attack.error_classes, (
                f"{entry!r}: {row['error_class']}: {row['error_message']}"
            )
            assert row["error_message"].startswith(f"{row['path']}: {row['error_stage']}: "), row["error_message"]
            assert attack.in_message in row["error_message"]
        elif attack.in_message:
            assert any(attack.in_message in w for w in row["warnings"]), list(row["warnings"])


def test_every_input_is_recorded_once_and_the_batch_finished(hostile_run):
    files, lib = hostile_run["files"], hostile_run["lib"]
    summary = summary_of(hostile_run["state"].result(raise_on_failure=False))
    assert summary is not None, "the batch finished and published"
    assert hostile_run["state"].is_failed(), "failed files make the flow run Failed, after publishing"
    expected = {to_text(e) for a in ATTACKS if a.status != "none" for e in hostile_run["entries"][a.name]}
    expected.add("target.dxf")  # what the links inside the library point to
    assert not files.duplicated(["source_root", "path"]).any()
    assert set(files["path"]) == expected
    assert set(files["source_root"]) == {str(lib)}
    assert summary["files_seen"] == len(expected)


def test_time_and_memory_stay_bounded_by_the_limits(hostile_run):
    files = hostile_run["files"]
    heavy = files[files["error_class"].isin(["Timeout", "MemoryLimit"])]
    assert len(heavy) >= 3, heavy[["path", "error_class"]]
    timeouts = heavy[heavy["error_class"] == "Timeout"]
    assert ((timeouts["error_limit"] - hostile_run["timeout_s"]).abs() < 0.1).all()
    memory = heavy[heavy["error_class"] == "MemoryLimit"]
    assert (memory["error_limit"] == MEMORY_MB).all() and not memory["error_permanent"].isna().any()
    ok = files[files["status"] == "ok"]
    assert (ok["duration_ms"] < hostile_run["timeout_s"] * 1000).all()


def test_nothing_outside_the_library_is_read_copied_or_revealed(hostile_run):
    out, outside = hostile_run["out"], hostile_run["outside"]
    for path in out.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_bytes(), f"{path} holds the secret"
    files = hostile_run["files"]
    links = files[files["error_class"] == "OutsideSource"]
    assert links["quarantine"].isna().all(), "a link out of the source is never copied"
    refs = catalog_table(out, "refs")
    assert len(refs) == 3 and not refs["exists"].any() and refs["resolved_path"].isna().all(), refs
    assert (outside / "secret.txt").stat().st_mode & 0o777 == 0o640


def test_a_long_failing_name_is_quarantined_under_a_name_that_fits(hostile_run):
    files, out = hostile_run["files"], hostile_run["out"]
    [row] = files[files["path"].str.startswith("nnnn")].to_dict("records")
    copy = out / row["quarantine"]
    assert copy.is_file() and Path(f"{copy}.error.json").is_file()
    assert len(os.fsencode(Path(f"{copy}.error.json").name)) <= 255
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == row["sha256"]


def test_names_are_data_in_the_catalog_the_logs_and_the_html(hostile_run):
    out, files = hostile_run["out"], hostile_run["files"]
    paths = set(files["path"])
    assert {"caf\\xe9 plan.dxf", "two\\x0alines.dxf", "\\xe2\\x80\\xaefdp.dxf", "up\\\\..\\\\..\\\\escape.dxf"} <= paths
    assert all(p.isprintable() for p in paths), "every recorded name prints as one line"
    texts = catalog_table(out, "texts")
    assert any("caf\\xe9" in t and "[/x] {0} %s" in t for t in texts["text"]), "undecodable text kept, escaped"
    for page in ("index.html", "gallery.html"):  # the gallery runs its own script, never a name
        html = (out / "docs" / page).read_text(encoding="utf-8")
        assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html, page
    [log] = (out / "logs").glob("*.jsonl")
    events = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert any(e.get("path", "") and e["path"].endswith("caf\\xe9 plan.dxf") for e in events)


def test_the_readme_table_is_this_suite(hostile_run):
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Hostile inputs", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| attack")]
    table = [[cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows]
    expected = [[a.name, outcome_text(a), a.reason] for a in ATTACKS]
    assert [[c.replace("\\|", "|") for c in row] for row in table] == expected
