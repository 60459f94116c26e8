"""Reading input files safely: regular files only, never blocking, and only where a run may read.

A library on a share holds more than drawings: FIFOs and devices (opening one blocks or reads
forever), symbolic links out of the library (to `/etc/shadow`), drawings whose references point
anywhere (`../../etc/passwd`, an absolute path, a FIFO). So:

- `open_regular` opens without blocking and refuses anything but a regular file (and, unless
  asked, a symbolic link as the last component);
- a `ReadScope` names the folders a worker may read (a run's source root). References of a
  drawing (xrefs, images, underlays) are looked up only inside it: outside it they are neither
  opened nor even tested for existence, which would tell whether `/etc/shadow` exists.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from documents.errors import InputError

_KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFLNK: "a symbolic link",
}


def kind_of(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def open_regular(path: str | os.PathLike, *, follow_symlinks: bool = True) -> int:
    """A read-only descriptor of the regular file `path`; InputError for anything else (a FIFO,
    a device, a folder, or a symbolic link when `follow_symlinks` is False). OSError otherwise
    (missing, permission denied): the caller decides whether that may pass."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_symlinks and os.path.islink(path):
            raise InputError("is a symbolic link; not followed (inputs.follow_symlinks = false)") from exc
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise InputError(f"is {kind_of(mode)}, not a regular file")
    os.set_blocking(fd, True)
    return fd


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


@dataclass(frozen=True)
class ReadScope:
    """The folders files may be read from: absolute paths, checked as written and, unless
    `follow_symlinks`, once every link is resolved."""

    roots: tuple[str, ...]
    follow_symlinks: bool = False

    @classmethod
    def of(cls, roots, follow_symlinks: bool = False) -> ReadScope:
        return cls(tuple(os.path.abspath(os.fspath(r)) for r in roots), follow_symlinks)

    def allows(self, path: str | os.PathLike) -> bool:
        written = os.path.normpath(os.path.abspath(os.fspath(path)))
        if not any(_inside(written, root) for root in self.roots):
            return False
        if self.follow_symlinks:
            return True
        real = os.path.realpath(written)
        return any(_inside(real, os.path.realpath(root)) for root in self.roots)


_scope: contextvars.ContextVar[ReadScope | None] = contextvars.ContextVar("cadpipe_read_scope", default=None)


@contextlib.contextmanager
def reading_within(scope: ReadScope | None) -> Iterator[None]:
    """Confine `may_read` to `scope` (None: no confinement) for the code inside the block."""
    token = _scope.set(scope)
    try:
        yield
    finally:
        _scope.reset(token)


def may_read(path: str | os.PathLike) -> bool:
    """True when `path` is a regular file the current scope allows (nothing is opened; a path
    outside the scope is not even looked at). Never raises, for odd names too."""
    scope = _scope.get()
    try:
        if scope is not None and not scope.allows(path):
            return False
        return os.path.isfile(path)
    except (OSError, ValueError):
        return False


def current_scope() -> ReadScope | None:
    return _scope.get()
