"""File names as text: one printable, reversible form for everything that leaves the file system.

A POSIX file name is bytes. Python hands names that are not UTF-8 (Latin-1 `café.dxf` from a
Windows share or a zip) over as `str` with lone surrogates, which JSON, Parquet, Prefect's
parameters and terminals refuse. So every path that crosses a boundary (the catalog, jobs and
Prefect parameters, logs, messages, HTML, JSON) is in the text form made here, and only the
places that open files turn it back into the native name:

- a byte that is not part of valid UTF-8 is written `\\xNN` (lowercase hex);
- so are control characters (C0, DEL, C1: a newline in a name cannot forge a log line) and the
  bidirectional-override characters (which make a name display as another), byte by byte of
  their UTF-8 encoding;
- a backslash is written `\\\\`, so that the form can be read back unambiguously;
- everything else, the name of nearly every real file, stays as it is.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

_ESCAPE = re.compile(r"\\(\\|x[0-9a-f]{2})")
# Characters that change how the text around them is displayed (Trojan-source names).
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _hidden(char: str) -> bool:
    return unicodedata.category(char) == "Cc" or char in _BIDI


def to_text(path: str | bytes | os.PathLike) -> str:
    """The text form of a native path (a `str` from the OS, bytes, or a Path)."""
    raw = path if isinstance(path, bytes) else os.fsencode(path)
    decoded = raw.decode("utf-8", "surrogateescape")
    # The common case, fast (a rerun turns 100,000 paths into text): nothing to escape. Lone
    # surrogates, control and bidirectional-override characters are all not printable.
    if "\\" not in decoded and decoded.isprintable():
        return decoded
    out = []
    for char in decoded:
        code = ord(char)
        if char == "\\":
            out.append("\\\\")
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that is not valid UTF-8
            out.append(f"\\x{code - 0xDC00:02x}")
        elif _hidden(char):
            out.extend(f"\\x{byte:02x}" for byte in char.encode("utf-8"))
        else:
            out.append(char)
    return "".join(out)


def to_bytes(text: str) -> bytes:
    """The bytes of the native path whose text form is `text`."""
    parts = []
    pos = 0
    for match in _ESCAPE.finditer(text):
        parts.append(text[pos : match.start()].encode("utf-8", "surrogateescape"))
        token = match.group(1)
        parts.append(b"\\" if token == "\\" else bytes([int(token[1:], 16)]))
        pos = match.end()
    parts.append(text[pos:].encode("utf-8", "surrogateescape"))
    return b"".join(parts)


def to_native(text: str) -> str:
    """The native path (as Python's os functions take it) whose text form is `text`."""
    return os.fsdecode(to_bytes(text))


def native_path(text: str) -> Path:
    return Path(to_native(text))


def printable(message: object, keep_newlines: bool = False) -> str:
    """A message (a library's error, drawing text) safe for JSON, Parquet, logs and terminals:
    lone surrogates and hidden characters escaped as in `to_text`; backslashes stay as they are,
    since a message is read, never turned back into a path."""
    text = str(message)
    if text.isprintable():  # the common case, fast
        return text
    out = []
    for char in text:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF:  # another lone surrogate: not encodable at all
            out.append(f"\\u{code:04x}")
        elif keep_newlines and char in "\n\t":
            out.append(char)
        elif _hidden(char):
            out.extend(f"\\x{byte:02x}" for byte in char.encode("utf-8"))
        else:
            out.append(char)
    return "".join(out)


def clean(value):
    """`value` (JSON-like: dicts, lists, strings, numbers) with every string made encodable:
    lone surrogates escaped (what ezdxf keeps of bytes that are not valid in the drawing's
    encoding), everything else unchanged."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return printable(value, keep_newlines=True)
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value
