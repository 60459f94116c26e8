"""Tell CAD formats apart by their content, not their file name.

Real folders hold files with wrong or missing extensions (an IGES file named ``.stl``, a DXF
named ``.txt``), so discovery sniffs the first few KB and uses the extension only as a hint.

Formats returned by :func:`sniff_format`:

- ``"dxf"``: ASCII DXF. Optional UTF-8 BOM and blank lines, then (group code, value) line
  pairs up to ``0`` / ``SECTION``; pairs before it (``999`` comments) are accepted, as ezdxf does.
- ``"dxf-binary"``: binary DXF (sentinel ``AutoCAD Binary DXF\\r\\n\\x1a\\x00``).
- ``"dwg"``: DWG, whose first bytes name the version (``AC1032``, ``AC1.50``, ``AC2.10`` ...).
- ``"step"``: ISO 10303-21 exchange file (``ISO-10303-21;``, maybe after ``/* comments */``).
- ``"iges"``: IGES fixed format: 80-column records, section letter S or G in column 73 followed
  by the sequence number.
- ``"stl"``: binary STL (80-byte header, triangle count, size == 84 + 50 * count) or ASCII
  STL (``solid`` then ``facet``, or an empty ``solid`` ... ``endsolid``; ``#`` comment lines
  some exporters write are skipped).
"""

from __future__ import annotations

import codecs
import os
import re
import struct
from pathlib import Path

HEAD_SIZE = 8192

FORMAT_EXTENSIONS: dict[str, str] = {
    ".dxf": "dxf",
    ".dwg": "dwg",
    ".step": "step",
    ".stp": "step",
    ".iges": "iges",
    ".igs": "iges",
    ".stl": "stl",
}

_BINARY_DXF_SENTINEL = b"AutoCAD Binary DXF\r\n\x1a\x00"
# AC1001..AC1032 and the pre-R10 stamps AC1.2, AC1.40, AC1.50, AC2.10, AC2.21, AC2.22.
_DWG_MAGIC = re.compile(rb"AC(?:10\d\d|1\.\d\d?|2\.\d\d)")
# Part 21 allows whitespace and /* comments */ before the header keyword.
_STEP_MAGIC = re.compile(rb"(?:\s|/\*.*?\*/)*ISO-10303-21\s*;", re.DOTALL)
_IGES_RECORD = re.compile(r"[SG][ 0-9]{6}\d")
_STL_SOLID = re.compile(r"solid(?:\s|$)", re.IGNORECASE)
_STL_BODY = re.compile(r"\b(?:facet|endsolid)\b", re.IGNORECASE)


def is_cad_extension(path: Path) -> bool:
    """True when the file name ends with an extension of a format cadpipe knows (any case)."""
    return Path(path).suffix.lower() in FORMAT_EXTENSIONS


def sniff_format(path: Path) -> str | None:
    """The format of `path` judged from its first bytes, or None when it is none of ours.

    OSError (missing file, permissions) propagates: the caller decides whether that is fatal.
    """
    with open(path, "rb") as fh:
        head = fh.read(HEAD_SIZE)
        size = os.fstat(fh.fileno()).st_size
    return sniff_bytes(head, size)


def sniff_bytes(head: bytes, size: int) -> str | None:
    """:func:`sniff_format` on the first bytes of a file whose total size is `size`."""
    if not head:
        return None
    if head.startswith(_BINARY_DXF_SENTINEL):
        return "dxf-binary"
    if _DWG_MAGIC.match(head):
        return "dwg"
    body = head[len(codecs.BOM_UTF8) :] if head.startswith(codecs.BOM_UTF8) else head
    if _STEP_MAGIC.match(body):
        return "step"
    # latin-1 maps every byte, so text checks never fail on odd encodings or binary junk.
    lines = body.decode("latin-1").splitlines()
    if _is_ascii_dxf(lines):
        return "dxf"
    if _is_iges(lines):
        return "iges"
    if _is_binary_stl(head, size):
        return "stl"
    if _is_ascii_stl(lines):
        return "stl"
    return None


def _is_ascii_dxf(lines: list[str]) -> bool:
    i = 0
    while i < len(lines) and not lines[i].strip():
        i += 1
    # A DXF is (group code, value) line pairs. Like ezdxf (and AutoCAD), accept pairs such as
    # 999 comments in front of the first 0/SECTION, as long as every code is a number.
    while i + 1 < len(lines):
        code = lines[i].strip()
        if not code.isdigit() or int(code) > 1071:
            return False
        if code.lstrip("0") == "" and lines[i + 1].strip().upper() == "SECTION":
            return True
        i += 2
    return False


def _is_iges(lines: list[str]) -> bool:
    # Column 73 holds the section letter (S start, G global), columns 74-80 the sequence number.
    records = [line for line in lines[:4] if line.strip()][:2]
    return bool(records) and all(len(line) >= 80 and _IGES_RECORD.fullmatch(line[72:80]) for line in records)


def _is_binary_stl(head: bytes, size: int) -> bool:
    if size < 84 or len(head) < 84:
        return False
    (count,) = struct.unpack_from("<I", head, 80)
    return size == 84 + 50 * count


def _is_ascii_stl(lines: list[str]) -> bool:
    content = [line.strip() for line in lines]
    content = [line for line in content if line and not line.startswith("#")]
    if not content or not _STL_SOLID.match(content[0]):
        return False
    return any(_STL_BODY.match(line) for line in content[1:])
