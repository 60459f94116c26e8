"""Discover: walk the sources, recognise CAD files by content, hash them.

A file's format comes from its first bytes (a DWG renamed `.dxf` is a DWG). Hashing is skipped for a
file whose size and modification time match what the catalog recorded, so a rerun over a large
unchanged library reads almost nothing.

Discovery never stops a batch: a file or folder it cannot read, a file that vanishes while it
looks, a symbolic link it may not or cannot follow, a FIFO with a CAD name, each becomes an
`Unreadable` entry that the batch records as failed with its reason (retryable where the cause
can pass). Paths are in the text form of documents/names.py.

Identity: a file is known by (source root, path below it), where the source root is the outermost
of the folders cadpipe knows that contain the file (the folder sources of this run, the drop
folders of a watcher, the roots already in the catalog); a file under none of them is known under
its own folder. So a file found by the watcher, by a run over its folder or over a parent folder,
or given by name, is one row in the catalog, and overlapping sources give one identity.

Symbolic links (`inputs.follow_symlinks`, default false) are not followed: a link to a file or
folder inside the source is not an input of its own (what it points to is found under its own
name); a link out of the source is recorded as failed and nothing behind it is read. With
`follow_symlinks = true` links are followed anywhere (each file once, loops cut).
"""

from __future__ import annotations

import errno
import fnmatch
import functools
import hashlib
import os
import posixpath
import re
import stat as stat_module
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from documents.errors import InputError
from documents.file_access import kind_of, open_regular
from documents.file_kind import HEAD_SIZE, is_cad_extension, sniff_bytes
from documents.names import native_path, to_native, to_text
from engine.records import FileRecord

_CHUNK = 1 << 20


@dataclass(frozen=True)
class InputFile:
    source_root: str  # text form of the absolute folder the file is known under (see Identity)
    path: str  # text form of the POSIX path relative to source_root
    size: int
    mtime_ns: int
    sha256: str | None  # None only for an entry discovery could not read
    format: str | None  # dxf, dxf-binary, dwg, step, iges, stl, or "unknown" (a CAD extension, unrecognised content)

    @property
    def abs_path(self) -> Path:
        """The native path, to open."""
        return native_path(self.source_root) / to_native(self.path)

    @property
    def key(self) -> tuple[str, str]:
        return (self.source_root, self.path)


@dataclass(frozen=True)
class Unreadable:
    """Something in a source that discovery could not take as an input, and why."""

    source_root: str
    path: str
    error_class: str  # PermissionError, FileNotFoundError, BrokenSymlink, SymlinkLoop, OutsideSource, NotRegularFile
    reason: str
    permanent: bool  # False where the cause can pass (permissions, a file that vanished)
    size: int = 0  # of the entry itself (a link's own), 0 when unknown
    mtime_ns: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return (self.source_root, self.path)

    @property
    def message(self) -> str:
        return f"{self.path}: discover: {self.reason}"

    def as_input(self) -> InputFile:
        return InputFile(self.source_root, self.path, self.size, self.mtime_ns, None, None)


@dataclass
class Discovery:
    inputs: list[InputFile] = field(default_factory=list)
    problems: list[Unreadable] = field(default_factory=list)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    fd = open_regular(path)
    with open(fd, "rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _excluded(name: str, patterns: list[str]) -> bool:
    return _exclusion(tuple(patterns)).match(name) is not None


@functools.lru_cache(maxsize=16)
def _exclusion(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """The globs as one expression: fnmatch per pattern per entry was a tenth of a rerun's walk."""
    return re.compile("|".join(fnmatch.translate(p) for p in patterns) or r"(?!)")


def inside(path: str, root: str) -> bool:
    """`path` is `root` or below it (both absolute, normalised, native or text form)."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def format_family(fmt: str) -> str:
    """Formats as the config names them: a binary DXF is a DXF."""
    return "dxf" if fmt == "dxf-binary" else fmt


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


class _Scan:
    """One discovery: the state shared by the walk of every source."""

    def __init__(self, exclude, formats, known, skip, roots, follow_symlinks) -> None:
        self.exclude = exclude
        self.formats = formats
        self.known = known
        self.skip = skip
        self.roots = roots  # native, real, absolute; outermost first
        self.follow = follow_symlinks
        self.found: dict[tuple[str, str], InputFile] = {}
        self.problems: dict[tuple[str, str], Unreadable] = {}
        self.inodes: set[tuple[int, int]] = set()  # files taken (a file named twice is taken once)
        self.folders: set[tuple[int, int]] = set()  # folders walked (links may loop)

    def identity_root(self, path: str) -> str:
        for root in self.roots:
            if inside(path, root):
                return root
        return os.path.dirname(path)

    def key(self, path: str) -> tuple[str, str, str]:
        root = self.identity_root(path)
        # Below its root by construction (identity_root): the rest of the path, without relpath's cost.
        rel = path[len(root.rstrip("/")) + 1 :] if path != root and inside(path, root) else os.path.relpath(path, root)
        rel = rel or "."
        return to_text(root), to_text(rel), root

    def problem(self, path: str, error_class: str, reason: str, permanent: bool, st=None) -> None:
        root_text, rel_text, _ = self.key(path)
        if st is None:
            try:
                st = os.lstat(path)  # the entry's own stat: how a watcher knows it again
            except OSError:
                pass
        # 0 when not even that is known: size and mtime stay integer columns (a null would make
        # them floats, and a float cannot hold a nanosecond mtime).
        entry = Unreadable(
            root_text,
            rel_text,
            error_class,
            reason,
            permanent,
            st.st_size if st is not None else 0,
            st.st_mtime_ns if st is not None else 0,
        )
        self.problems.setdefault(entry.key, entry)

    # Walking.

    def walk(self, top: str) -> None:
        """Every entry below the folder `top` (native, real), depth first, sorted."""
        stack = [top]
        while stack:
            folder = stack.pop()
            try:
                st = os.stat(folder)
                if (st.st_dev, st.st_ino) in self.folders:
                    continue  # reached again through a link: a loop or a second name
                self.folders.add((st.st_dev, st.st_ino))
                with os.scandir(folder) as listing:
                    entries = sorted(listing, key=lambda e: e.name)
            except FileNotFoundError:
                continue  # the folder went away; its files were never seen, so nothing is lost
            except OSError as exc:
                self.problem(folder, type(exc).__name__, f"cannot list folder: {_reason(exc)}", False)
                continue
            subfolders = []
            for entry in entries:
                if _excluded(entry.name, self.exclude):
                    continue
                sub = self.entry(top, entry.path)
                if sub is not None:
                    subfolders.append(sub)
            stack.extend(reversed(subfolders))

    def entry(self, top: str, path: str) -> str | None:
        """Take one entry; return it when it is a folder to walk."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None  # listed, then gone before we looked: not an input any more
        except OSError as exc:
            self.problem(path, type(exc).__name__, f"cannot examine: {_reason(exc)}", False)
            return None
        if stat_module.S_ISLNK(st.st_mode):
            return self.link(top, path)
        if stat_module.S_ISDIR(st.st_mode):
            return None if os.path.realpath(path) in self.skip else path
        if stat_module.S_ISREG(st.st_mode):
            self.file(path, st)
        elif is_cad_extension(Path(path)):
            self.problem(path, "NotRegularFile", f"is {kind_of(st.st_mode)}, not a regular file", True)
        return None

    def link(self, top: str, path: str) -> str | None:
        real = os.path.realpath(path)  # resolves what it can; reads no file
        if not self.follow:
            if not inside(real, top):
                self.problem(
                    path,
                    "OutsideSource",
                    "symbolic link to a path outside the source; not followed (inputs.follow_symlinks = false)",
                    True,
                )
                return None
            try:
                os.stat(path)
            except OSError as exc:
                self.link_problem(path, exc)
            # A link within the source is not an input of its own: its target is found under its own name.
            return None
        try:
            st = os.stat(path)
        except OSError as exc:
            self.link_problem(path, exc)
            return None
        if stat_module.S_ISDIR(st.st_mode):
            return None if real in self.skip else path
        if stat_module.S_ISREG(st.st_mode):
            self.file(path, st)
        elif is_cad_extension(Path(path)):
            self.problem(path, "NotRegularFile", f"links to {kind_of(st.st_mode)}, not a regular file", True)
        return None

    def link_problem(self, path: str, exc: OSError) -> None:
        if exc.errno == errno.ELOOP:
            self.problem(path, "SymlinkLoop", "symbolic link loop", True)
        elif exc.errno in (errno.ENOENT, errno.ENOTDIR):
            self.problem(path, "BrokenSymlink", f"broken symbolic link (to {to_text(os.readlink(path))})", False)
        else:
            self.problem(path, type(exc).__name__, f"cannot follow symbolic link: {_reason(exc)}", False)

    # One file.

    def file(self, path: str, st: os.stat_result) -> None:
        root_text, rel_text, _ = self.key(path)
        key = (root_text, rel_text)
        if key in self.found or (st.st_dev, st.st_ino) in self.inodes:
            return
        seen = self.known.get(key)
        if seen and seen.readable_as_recorded() and (seen.size, seen.mtime_ns) == (st.st_size, st.st_mtime_ns):
            fmt, digest, size, mtime_ns = seen.format, seen.sha256, st.st_size, st.st_mtime_ns
        else:
            try:
                identified = self.identify(path)
            except InputError as exc:  # replaced by a FIFO or a link since we looked
                self.problem(path, "NotRegularFile", str(exc), True, st)
                return
            except FileNotFoundError:
                self.problem(path, "FileNotFoundError", "vanished while being read", False, st)
                return
            except OSError as exc:
                self.problem(path, type(exc).__name__, f"cannot read: {_reason(exc)}", False, st)
                return
            if identified is None:
                return  # not CAD content, not a CAD name: not an input
            fmt, digest, size, mtime_ns = identified
        if fmt != "unknown" and format_family(fmt) not in self.formats:
            return
        self.inodes.add((st.st_dev, st.st_ino))
        self.found[key] = InputFile(root_text, rel_text, size, mtime_ns, digest, fmt)

    def identify(self, path: str) -> tuple[str, str, int, int] | None:
        """(format, sha256, size, mtime_ns) from one read of the file, or None when it is no input."""
        fd = open_regular(path, follow_symlinks=self.follow)
        with open(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            head = fh.read(HEAD_SIZE)
            fmt = sniff_bytes(head, st.st_size) or ("unknown" if is_cad_extension(Path(path)) else None)
            if fmt is None:
                return None
            digest = hashlib.sha256(head)
            while block := fh.read(_CHUNK):
                digest.update(block)
            after = os.fstat(fh.fileno())
        return fmt, digest.hexdigest(), after.st_size, after.st_mtime_ns


def scan(
    sources: list[Path],
    *,
    exclude: list[str],
    formats: list[str],
    known: Mapping[tuple[str, str], FileRecord] | None = None,
    skip: Sequence[Path] = (),
    roots: Sequence[str | Path] = (),
    follow_symlinks: bool = False,
) -> Discovery:
    """Every input under `sources` (native paths), each once, sorted; and what could not be read.

    `known`: what the catalog records (Catalog.known_files): a file whose size and modification
    time match its record is not read again. `skip` lists folders never to enter; `roots` (native paths or text form: strings are read as
    text form) are further folders that name identities (drop folders, the catalog's roots).
    Files whose content is not CAD and whose extension is not a CAD one are not inputs.
    """
    walked, files = [], []
    for source in sources:
        native = os.path.abspath(os.fspath(source))
        if os.path.isdir(native):  # a folder given as a source is the user's choice: followed
            walked.append(os.path.realpath(native))
        elif os.path.lexists(native):  # a file: its folder is followed, the file itself is an entry
            files.append(os.path.join(os.path.realpath(os.path.dirname(native)), os.path.basename(native)))
        else:
            raise FileNotFoundError(f"input source does not exist: {to_text(native)}")
    named = [to_native(r) if isinstance(r, str) else os.fspath(r) for r in roots]
    known_roots = {os.path.realpath(r) for r in named} | set(walked)
    outermost = sorted(known_roots, key=lambda r: (r.count("/"), r))
    state = _Scan(exclude, formats, known or {}, {os.path.realpath(p) for p in skip}, outermost, follow_symlinks)
    for top in walked:
        state.walk(top)
    for path in files:  # named one by one: taken whatever inputs.exclude says
        target = os.path.realpath(path)
        if not follow_symlinks and os.path.islink(path) and inside(target, os.path.dirname(path)):
            path = target  # a link named beside its target: the target is the input, under its own name
        state.entry(os.path.dirname(path), path)
    inputs = sorted(state.found.values(), key=lambda f: f.key)
    taken = set(state.found)
    problems = sorted((p for p in state.problems.values() if p.key not in taken), key=lambda p: p.key)
    return Discovery(inputs, problems)


def discover(sources: list[Path], **options) -> list[InputFile]:
    """The inputs of `scan` (for tools that need no account of what could not be read)."""
    return scan(sources, **options).inputs


def sources_without_inputs(
    sources, found: list[InputFile], problems: list[Unreadable], formats: list[str]
) -> list[str]:
    """A warning for each source folder in which discovery found nothing to take (no input, nothing
    unreadable): an empty folder, or one without CAD files of the enabled formats, is most likely a
    wrong path or an unmounted share, which a run reporting "0 files" would hide."""
    items: list[InputFile | Unreadable] = [*found, *problems]
    taken = [posixpath.join(item.source_root, item.path) for item in items]
    warnings = []
    for source in sources:
        if not os.path.isdir(source):
            continue
        real = to_text(os.path.realpath(source))
        if any(inside(where, real) for where in taken):
            continue
        others = 0
        for _, _, names in os.walk(source):
            others += len(names)
            if others > 10_000:
                break
        what = (
            "is empty" if not others else f"holds {others} files but none of the enabled formats ({', '.join(formats)})"
        )
        warnings.append(f"source {to_text(source)} {what}: nothing to process there")
    return warnings
