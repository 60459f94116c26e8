"""Discover: walk the sources, recognise CAD files by content, hash them.

A file's format comes from its first bytes (a DWG renamed `.dxf` is a DWG). Hashing is skipped for a
file whose size and modification time match what the catalog recorded, so a rerun over a large
unchanged library reads almost nothing.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from extractors.file_kind import is_cad_extension, sniff_format

_CHUNK = 1 << 20


@dataclass(frozen=True)
class InputFile:
    source_root: str  # absolute folder the file was found under
    path: str  # POSIX path relative to source_root
    size: int
    mtime_ns: int
    sha256: str
    format: str  # dxf, dxf-binary, dwg, step, iges, stl, or "unknown" (a CAD extension, unrecognised content)

    @property
    def abs_path(self) -> Path:
        return Path(self.source_root) / self.path

    @property
    def key(self) -> tuple[str, str]:
        return (self.source_root, self.path)


@dataclass(frozen=True)
class KnownFile:
    """What the catalog remembers of a path, to skip re-reading it."""

    size: int
    mtime_ns: int
    sha256: str
    format: str


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _excluded(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in patterns)


def _walk(root: Path, exclude: list[str], skip: set[Path]):
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if not _excluded(d, exclude) and (here / d).resolve() not in skip
        )
        for name in sorted(filenames):
            if not _excluded(name, exclude):
                yield here / name


def format_family(fmt: str) -> str:
    """Formats as the config names them: a binary DXF is a DXF."""
    return "dxf" if fmt == "dxf-binary" else fmt


def discover(
    sources: list[Path],
    *,
    exclude: list[str],
    formats: list[str],
    known: dict[tuple[str, str], KnownFile] | None = None,
    skip: list[Path] = (),
) -> list[InputFile]:
    """Every input under `sources`, sorted, each once (a file named twice is found once).

    `skip` lists folders never to enter (the output root when it lies inside a source).
    Files whose content is not CAD and whose extension is not a CAD one are not inputs.
    """
    known = known or {}
    skip_set = {Path(p).resolve() for p in skip}
    found: dict[tuple[str, str], InputFile] = {}
    for source in sources:
        source = Path(source).resolve()
        if source.is_file():
            root, candidates = source.parent, [source]
        elif source.is_dir():
            root, candidates = source, _walk(source, exclude, skip_set)
        else:
            raise FileNotFoundError(f"input source does not exist: {source}")
        for file in candidates:
            if not file.is_file():
                continue  # broken links, sockets
            rel = file.relative_to(root).as_posix()
            key = (str(root), rel)
            if key in found:
                continue
            stat = file.stat()
            seen = known.get(key)
            if seen and seen.size == stat.st_size and seen.mtime_ns == stat.st_mtime_ns:
                fmt, digest = seen.format, seen.sha256
            else:
                fmt = sniff_format(file) or ("unknown" if is_cad_extension(file) else None)
                if fmt is None:
                    continue
                digest = sha256_file(file)
            if fmt != "unknown" and format_family(fmt) not in formats:
                continue
            found[key] = InputFile(str(root), rel, stat.st_size, stat.st_mtime_ns, digest, fmt)
    return sorted(found.values(), key=lambda f: f.key)
