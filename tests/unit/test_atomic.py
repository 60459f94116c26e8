"""Atomic writes: the old file or the new one, never half; nothing left behind; usual permissions."""

from __future__ import annotations

import os

import pytest

from documents import atomic


def test_a_written_file_replaces_the_old_one_whole_with_the_usual_mode(tmp_path):
    target = tmp_path / "page.html"
    target.write_text("old", encoding="utf-8")
    atomic.write_text(target, "new")
    assert target.read_text(encoding="utf-8") == "new"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask, "not private: the mode any new file gets"
    assert [p.name for p in tmp_path.iterdir()] == ["page.html"], "no temporary file left"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "model.stl"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as tmp:
        assert tmp.suffix == ".stl", "a writer that chooses the format by the suffix still can"
        tmp.write_bytes(b"half")
        raise RuntimeError("the writer failed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.stl"]


def test_json_keeps_text_as_it_is(tmp_path):
    target = atomic.write_json(tmp_path / "r.json", {"title": "Zahnrad Ø 40", "n": 1})
    assert target.read_text(encoding="utf-8") == '{"title": "Zahnrad Ø 40", "n": 1}'
