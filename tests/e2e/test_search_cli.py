"""`cadpipe search`, the real command in its own process, over a batch of corpus drawings: it finds
a text known to be in a corpus drawing, with its handle."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import ezdxf

from tests.conftest import REPO

CORPUS_TEXTS = "files/netdxf/TestDxfDocument.NETCore__sample_2018.dxf"  # TEXT, MTEXT, attributes


# The real command over a real batch.


def cadpipe(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(REPO / ".venv" / "bin" / "cadpipe"), *args], capture_output=True, text=True, env={**env, "COLUMNS": "200"}
    )


def known_text(path: Path) -> tuple[str, str]:
    """A TEXT of the drawing's modelspace with a few words, and its handle (read by ezdxf)."""
    doc = ezdxf.readfile(path)
    for entity in doc.modelspace().query("TEXT"):
        words = entity.dxf.text.split()
        if len(words) >= 3:
            return " ".join(words), entity.dxf.handle
    raise AssertionError(f"{path.name} has no TEXT of three words")


def test_cadpipe_search_finds_a_corpus_text_with_its_handle(tmp_path, corpus_dir, cli_env):
    from flows.batch import batch

    lib, out = tmp_path / "lib", tmp_path / "out"
    lib.mkdir()
    shutil.copy2(corpus_dir / CORPUS_TEXTS, lib / "sample.dxf")
    shutil.copy2(REPO / "data" / "samples" / "gear.dxf", lib / "gear.dxf")
    state = batch(sources=[str(lib)], out=str(out), workers=2, return_state=True)
    assert state.is_completed(), state.message
    words, handle = known_text(lib / "sample.dxf")

    found = cadpipe(cli_env, "search", words, "--out", str(out), "--json")
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert hits and hits[0]["path"] == "sample.dxf" and hits[0]["handle"] == handle, hits[:3]
    assert hits[0]["layout"] == "Model" and hits[0]["scope"] == "texts" and hits[0]["text"] == words
    assert Path(hits[0]["output"]).is_file() and Path(hits[0]["datasheet"]).is_file()

    table = cadpipe(cli_env, "search", words.split()[0], "--out", str(out), "--in", "texts")
    assert table.returncode == 0 and "sample.dxf" in table.stdout and handle in table.stdout
    missing = cadpipe(cli_env, "search", "zqxw-not-there", "--out", str(out))
    assert missing.returncode == 1 and "nothing found" in missing.stderr
    nowhere = cadpipe(cli_env, "search", "bolt", "--out", str(tmp_path / "empty"))
    assert nowhere.returncode == 2 and "cadpipe run" in nowhere.stderr
