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
import secrets
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
        temp = _new_temporary(path)
    try:
        yield temp
        os.replace(temp, path)
    finally:
        with contextlib.suppress(OSError):
            temp.unlink()  # gone already after the rename


def _new_temporary(path: Path) -> Path:
    """A new, empty file beside `path`, with the mode any new file gets (0666 less the umask):
    `tempfile.mkstemp` would make it private (0600), and the rename would keep that."""
    while True:
        temp = path.with_name(f".{path.stem}.{secrets.token_hex(6)}.tmp{path.suffix}")
        try:
            os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return temp


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
