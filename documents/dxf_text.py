"""Decode the text escapes DXF writers use, once, in the loaded document.

DXF stores characters outside its code page as ``\\U+XXXX`` (and, from Asian DXF writers, MIF
``\\M+NXXXX``); TEXT, ATTRIB and ATTDEF spell special characters ``%%nnn`` (a character code of
the code page, e.g. ``%%176`` for a degree sign); MTEXT writes a non-breaking space as ``\\~``.
ezdxf decodes the first two only when it has to recover a file, ``%%c``, ``%%d`` and ``%%p``
only, and draws ``\\~`` literally in simple MTEXT. Decoding them in the document itself, right
after loading, gives every reader the same text: the ``texts`` table, BOM and title-block values,
and the rendered pages.

Formatting codes are left alone: ``%%u``/``%%o`` toggles and MTEXT inline codes (``\\P``,
stacking ``\\S1/2;``, fonts ...) are interpreted by ezdxf's ``plain_text``/``plain_mtext`` and its
MTEXT renderer; decoding them here would change the layout of the text.
"""

from __future__ import annotations

import re

from ezdxf.document import Drawing
from ezdxf.entities.attrib import BaseAttrib
from ezdxf.lldxf.encoding import decode_dxf_unicode, decode_mif_to_unicode
from ezdxf.tools.text import plain_mtext

NBSP = "\u00a0"
_PERCENT_CODE = re.compile(r"%%(%|\d{3})")
# In MTEXT a backslash is escaped as "\\"; "\~" is a code only after an unescaped backslash.
_MTEXT_NBSP = re.compile(r"(?<!\\)((?:\\\\)*)\\~")
# Attributes holding text of the entity types that carry it (MTEXT keeps its content apart).
_TEXT_ATTRIBS = {
    "TEXT": ("text",),
    "ATTRIB": ("text",),
    "ATTDEF": ("text", "prompt"),
    "DIMENSION": ("text",),
    "ARC_DIMENSION": ("text",),
    "LARGE_RADIAL_DIMENSION": ("text",),
}


def decode_text_escapes(doc: Drawing) -> int:
    """Decode the escapes of every text of `doc` in place; returns how many strings changed."""
    codepage = _python_codec(doc.header.get("$DWGCODEPAGE", "ANSI_1252"))
    changed = 0
    for entity in doc.entitydb.values():
        if not entity.is_alive:
            continue
        dxftype = entity.dxftype()
        if dxftype == "MTEXT":
            changed += _decode_mtext(entity, codepage)
        elif dxftype == "MULTILEADER":
            changed += _decode_multileader(entity, codepage)
        for name in _TEXT_ATTRIBS.get(dxftype, ()):
            value = entity.dxf.get(name)
            if isinstance(value, str) and _has_escape(value):
                entity.dxf.set(name, decode_single_line(value, codepage))
                changed += 1
        if isinstance(entity, BaseAttrib) and entity._embedded_mtext:  # ATTRIB or ATTDEF, multi-line
            changed += _decode_mtext(entity._embedded_mtext, codepage)
    return changed


def plain_mtext_text(text: str) -> str:
    """ezdxf's ``plain_mtext(text)`` as one string: it is annotated ``list[str] | str`` for both
    values of `split`, and without `split` it always returns a str."""
    plain = plain_mtext(text, split=False)
    assert isinstance(plain, str)
    return plain


def decode_single_line(text: str, codepage: str = "cp1252") -> str:
    """TEXT, ATTRIB, ATTDEF: ``\\U+``, ``\\M+`` and ``%%nnn`` decoded."""
    return _percent_codes(_unicode(text), codepage)


def decode_mtext(text: str, codepage: str = "cp1252") -> str:
    """MTEXT content: ``\\U+``, ``\\M+``, ``%%nnn`` and ``\\~`` decoded, inline codes kept."""
    text = _percent_codes(_unicode(text), codepage)
    return _MTEXT_NBSP.sub(lambda m: m.group(1) + NBSP, text) if "\\~" in text else text


def readable(text: str) -> str:
    """Plain text for tables and search: a non-breaking space is a space."""
    return text.replace(NBSP, " ") if NBSP in text else text


def _has_escape(text: str) -> bool:
    return "\\" in text or "%%" in text


def _unicode(text: str) -> str:
    if "\\U+" in text:
        text = decode_dxf_unicode(text)
    if "\\M+" in text:
        text = decode_mif_to_unicode(text)
    return text


def _percent_codes(text: str, codepage: str) -> str:
    if "%%" not in text:
        return text

    def decode(match: re.Match[str]) -> str:
        code = match.group(1)
        if code == "%" or int(code) > 255:
            return match.group(0)  # "%%%" is ezdxf's to read; no such character
        char = bytes([int(code)]).decode(codepage, errors="replace")
        # A multi-byte code page has no single-byte character there: Windows' own code page has.
        return char if char != "\ufffd" else bytes([int(code)]).decode("cp1252", errors="replace")

    return _PERCENT_CODE.sub(decode, text)


def _decode_mtext(mtext, codepage: str) -> int:
    changed = 0
    text = mtext.text
    if _has_escape(text):
        decoded = decode_mtext(text, codepage)
        if decoded != text:
            mtext.text = decoded
            changed += 1
    columns = getattr(mtext, "_columns", None)  # R2018 columns are MTEXT entities of their own
    for column in getattr(columns, "linked_columns", None) or ():
        changed += _decode_mtext(column, codepage)
    return changed


def _decode_multileader(leader, codepage: str) -> int:
    mtext = getattr(getattr(leader, "context", None), "mtext", None)
    content = getattr(mtext, "default_content", None)
    if mtext is None or not isinstance(content, str) or not _has_escape(content):
        return 0
    decoded = decode_mtext(content, codepage)
    if decoded == content:
        return 0
    mtext.default_content = decoded
    return 1


def _python_codec(dwgcodepage: object) -> str:
    """Python's codec for a ``$DWGCODEPAGE`` such as ``ANSI_1252``; cp1252 when unknown."""
    from ezdxf.lldxf.const import DEFAULT_ENCODING
    from ezdxf.tools.codepage import toencoding

    try:
        codec = toencoding(str(dwgcodepage))
        "x".encode(codec)
        return codec
    except (LookupError, TypeError, ValueError):
        return DEFAULT_ENCODING
