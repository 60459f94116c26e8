"""The tags of an ASCII DXF file, as ezdxf's ``tag_compiler(ascii_tags_loader(fp))`` yields them,
read block by block instead of line by line.

ezdxf reads a text file one ``readline`` and two tag objects per tag, through two chained
generators: a third of loading a typical drawing. Here a block of the file is split into lines
at once, group codes are converted in one ``map``, and each tag is built once.

The tags are exactly ezdxf's, or there are none: whatever this reader does not take exactly as
ezdxf would (a group code that is not a number, a bad coordinate or binary value, a point
without its y) raises `NotFast` before ezdxf has seen a tag, and the caller reads the file
again with ezdxf's own reader, which then fails, or repairs, with its own words. Memory stays
that of ezdxf's reader plus one block: the lines of a block are dropped once compiled.
"""

from __future__ import annotations

from typing import TextIO

from ezdxf.lldxf.types import BINARY_DATA, POINT_CODES, TYPE_TABLE, DXFBinaryTag, DXFTag, DXFVertex

BLOCK_CHARS = 1 << 20  # characters read per block: 1 MiB of text, about 100,000 lines
_COMMENT = 999


class NotFast(Exception):
    """The file holds something only ezdxf's own reader should judge."""


def read_tags(fp: TextIO, block_chars: int = BLOCK_CHARS) -> list[DXFTag]:
    """All tags of the text stream `fp` (opened as ezdxf opens it: its encoding, universal
    newlines), comments left out, up to and including ``0/EOF``."""
    tags: list[DXFTag] = []
    codes: list[int] = []  # tags read but not yet compiled: a point may go on in the next block
    values: list[str] = []
    partial = ""  # the end of the last block, up to its first line break
    odd_line: list[str] = []  # a group code line whose value is in the next block
    while True:
        chunk = fp.read(block_chars)
        if chunk:
            lines = (partial + chunk).split("\n")
            partial = lines.pop()  # "" when the block ended with a line break
        else:
            lines = [partial] if partial else []
        lines = odd_line + lines
        odd_line = lines[-1:] if len(lines) % 2 else []
        if odd_line:
            lines.pop()
        at_eof = _add_pairs(lines, codes, values)
        last = at_eof or not chunk
        done = _compile(codes, values, tags, last)
        del codes[:done], values[:done]
        if last:
            if odd_line and not at_eof:
                _group_code(odd_line[0])  # ezdxf reads a last code without value, and so checks it
            return tags


def _group_code(line: str) -> int:
    try:
        return int(line)
    except ValueError:
        raise NotFast(f"invalid group code {line!r}") from None


def _add_pairs(lines: list[str], codes: list[int], values: list[str]) -> bool:
    """Append the (code, value) pairs of `lines` (an even count) up to ``0/EOF``; True at EOF."""
    block_values = lines[1::2]
    try:
        block_codes = list(map(int, lines[0::2]))
    except ValueError:  # refused, unless it comes after 0/EOF, where ezdxf reads nothing
        block_codes = _codes_up_to_eof(lines[0::2], block_values)
    at_eof = False
    start = 0
    while True:  # ezdxf's reader stops at the first 0/EOF, as written (before any stripping)
        try:
            found = block_values.index("EOF", start)
        except ValueError:
            break
        if block_codes[found] == 0:
            del block_codes[found + 1 :], block_values[found + 1 :]
            at_eof = True
            break
        start = found + 1
    if _COMMENT in block_codes:
        kept = [i for i, code in enumerate(block_codes) if code != _COMMENT]
        block_codes = [block_codes[i] for i in kept]
        block_values = [block_values[i] for i in kept]
    codes += block_codes
    values += block_values
    return at_eof


def _codes_up_to_eof(code_lines: list[str], values: list[str]) -> list[int]:
    codes: list[int] = []
    for line, value in zip(code_lines, values):
        codes.append(_group_code(line))
        if codes[-1] == 0 and value == "EOF":
            break
    return codes


def _compile(codes: list[int], values: list[str], tags: list[DXFTag], last: bool) -> int:
    """Compile the pairs into `tags` as ezdxf's tag_compiler does; returns how many pairs were
    used. Unless `last`, the final two pairs wait: they may begin a point that the next block ends."""
    count = len(codes)
    end = count if last else count - 2
    points, binary, types = POINT_CODES, BINARY_DATA, TYPE_TABLE
    append = tags.append
    i = 0
    while i < end:
        code = codes[i]
        value = values[i]
        if code in points:
            # (Only the last block gets here within two pairs of its end.) ezdxf stops without
            # the point when the file ends before its y or right after it, and refuses a wrong y.
            if i + 1 >= count:
                return count
            if codes[i + 1] != code + 10:
                raise NotFast(f"point {code} without its y")
            if i + 2 >= count:
                return count
            try:
                if codes[i + 2] == code + 20:
                    append(DXFVertex(code, (float(value), float(values[i + 1]), float(values[i + 2]))))
                    i += 3
                else:
                    append(DXFVertex(code, (float(value), float(values[i + 1]))))
                    i += 2
            except ValueError:
                raise NotFast(f"invalid coordinate of point {code}") from None
            continue
        if code in binary:
            try:
                append(DXFBinaryTag.from_string(code, value))
            except ValueError:
                raise NotFast(f"invalid binary data, code {code}") from None
        elif code == 0:
            append(DXFTag(0, value.strip()))
        else:
            cast = types.get(code, str)
            try:
                append(DXFTag(code, cast(value)))
            except ValueError:
                if cast is not int:
                    raise NotFast(f"invalid value of code {code}") from None
                try:  # ProE writes integers as floats; ezdxf accepts them
                    append(DXFTag(code, int(float(value))))
                except ValueError:
                    raise NotFast(f"invalid value of code {code}") from None
        i += 1
    return i
