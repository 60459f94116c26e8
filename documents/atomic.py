"""Atomic writes: a reader sees the old file or the new one, never half of one.

Every file cadpipe writes goes through a temporary name in the same folder (so the rename stays
on one file system) and is renamed onto its final name only once it is complete; the temporary
file is removed when writing fails. Errors stay OSError: the caller knows which stage and file
to name.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: Path, temp: Path | None = None) -> Iterator[Path]:
    """A temporary path beside `path` to write to (or `temp`, when the caller must know its name
    beforehand); renamed onto `path` when the block succeeds, removed when it raises. A hidden
    name that ends in `path`'s own suffix: writers that choose the format by it (OCCT) still can."""
    path = Path(path)
    if temp is None:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
        os.close(fd)
        temp = Path(name)
    try:
        yield temp
        os.replace(temp, path)
    finally:
        with contextlib.suppress(OSError):
            temp.unlink()  # gone already after the rename


def write_bytes(path: Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def write_text(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def write_json(path: Path, value: Any) -> Path:
    """UTF-8 JSON, non-ASCII kept as it is; values JSON does not know are written as text."""
    return write_text(path, json.dumps(value, default=str, ensure_ascii=False))
