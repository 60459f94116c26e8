"""Audit before action: `cadpipe apply --in-place` killed (SIGKILL) after it rewrote some drawings
leaves no hole in the `edits` table; the next apply records what the killed one did. The real
command in a subprocess; the kill comes when the library shows a rewritten drawing."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import ezdxf

from tests.conftest import REPO, catalog_table
from tests.hostile_inputs import drawing
from tests.processes import alive, descendants

RECIPE = """
name: part-to-item
operations:
  - replace_text: {pattern: 'PART', replacement: 'ITEM'}
"""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def apply_command(recipe: Path, lib: Path, backup: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "flows.cli",
        "apply",
        str(recipe),
        "--library",
        str(lib),
        "--in-place",
        "--backup",
        str(backup),
        "--out",
        str(out),
        "--workers",
        "1",
        "--no-catalog",
    ]


def test_edits_of_a_killed_in_place_apply_are_recorded_by_the_next(tmp_path, cli_env):
    lib, backup, out = tmp_path / "lib", tmp_path / "backup", tmp_path / "out"
    lib.mkdir()
    for i in range(16):
        (lib / f"sheet-{i:02d}.dxf").write_bytes(drawing(i, entities=300))
    original = {p.name: sha256(p) for p in lib.iterdir()}
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE, encoding="utf-8")
    env = cli_env
    proc = subprocess.Popen(
        apply_command(recipe, lib, backup, out), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 600
        while not any(sha256(lib / name) != sha for name, sha in original.items()):  # a drawing replaced
            assert proc.poll() is None and time.monotonic() < deadline, "no drawing was rewritten"
            time.sleep(0.02)
        family = descendants(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 120  # its worker may finish the drawing in hand, then ends
        while any(alive(pid) for pid in family):
            assert time.monotonic() < deadline, "the killed apply's processes live on"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
    rewritten = {name for name, sha in original.items() if sha256(lib / name) != sha}
    assert rewritten, "the kill came after a drawing was rewritten"

    rerun = subprocess.run(
        apply_command(recipe, lib, backup, out), cwd=REPO, env=env, capture_output=True, text=True, timeout=900
    )
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-3000:]
    edits = catalog_table(out, "edits")
    assert set(edits["path"]) == set(original), "every rewritten drawing has its edit recorded"
    assert not edits.duplicated(["path", "operation", "target"]).any(), "each edit recorded once"
    runs = edits.groupby("path")["run_id"].first()
    killed_run = {runs[name] for name in rewritten}
    assert len(killed_run) == 1 and killed_run != {runs[n] for n in set(original) - rewritten}, (
        "the killed run's edits carry its own run id"
    )
    for name in original:  # nothing broken, every original kept in a backup
        ezdxf.readfile(lib / name)
        row = edits[edits["path"] == name].iloc[0]
        assert row["sha256_before"] == original[name] and row["sha256_after"] == sha256(lib / name)
        assert sha256(Path(row["backup"])) == original[name]
    assert not (out / "catalog" / ".pending-edits").exists() or not any((out / "catalog" / ".pending-edits").iterdir())
    leftovers = [p.name for folder in (lib, backup) for p in folder.rglob(".cadpipe-*")]
    assert leftovers == [], "the killed run's temporary files are removed by the next"
