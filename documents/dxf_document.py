"""Load a DXF (ASCII or binary) or DWG file into an ezdxf document, recovering when needed.

Order of attempts:

1. The content is sniffed first (:mod:`documents.file_kind`): anything that is not DXF or DWG
   is refused at once, because ``ezdxf.recover`` turns almost any bytes into an empty drawing.
2. ``ezdxf.readfile`` (for ASCII DXF with the tags read by :mod:`documents.dxf_tags`, exactly
   ezdxf's and faster), then ezdxf's audit (cheap, and it repairs what the renderer would trip on),
   run so that it keeps what a CAD program would draw (:mod:`documents.dxf_repair`): what it still
   removes is counted in ``LoadedDxf.repair``.
3. When ezdxf rejects the structure, ``ezdxf.recover``'s loader and the same audit;
   ``recovered=True``. A file that ends inside a section is refused instead: recovery would
   silently keep the half that arrived. Binary DXF is refused too: ezdxf's recovery reads ASCII
   DXF only.
4. DWG is converted in memory to DXF by a reader of :mod:`documents.dwg_readers` (pycadkit by
   default, the ODA File Converter or LibreDWG where configured), and those DXF bytes are loaded
   with ``ezdxf.recover``'s loader and the same audit; ``LoadedDxf.dwg`` says which reader and
   what it could not convert.
5. Text escapes (``\\U+XXXX``, ``%%nnn``, MTEXT ``\\~``) are decoded in the document
   (:mod:`documents.dxf_text`) unless the caller asks for the text as stored (``decode_text=False``,
   for editors that write the drawing back).

``LoadedDxf.header_vars`` holds the HEADER variables as the file states them, read once more from
the file's first section: while loading, ezdxf overwrites ``$TDCREATE`` with the load time and
``$ACADVER`` with the version it treats the file as, and fills a missing HEADER with defaults
(``$INSUNITS`` 6 ...). An empty dict means the file has no HEADER section. When that section cannot
be parsed on its own, or for DWG, the loaded header is used without ``$TDCREATE``.

Errors (``documents.errors``):

- ``InputError``: the content is not a DXF/DWG, is empty, truncated, or neither loader copes; a
  DWG the reader refuses (the message names reader, version and cause) or no DWG reader
  available; and a path that does not exist or is not a regular file. The
  last is permanent on purpose: the batch found the file moments ago, so if it has gone the
  work item is obsolete and retrying the same path would fail the same way.
- ``TransientError``: any other ``OSError`` while reading (permissions, network share, disk).
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from ezdxf import query as ezdxf_query
from ezdxf.audit import Auditor
from ezdxf.document import Drawing
from ezdxf.filemanagement import dxf_file_info
from ezdxf.lldxf.loader import load_dxf_structure
from ezdxf.lldxf.tagger import ascii_tags_loader, binary_tags_loader, tag_compiler
from ezdxf.lldxf.tags import Tags
from ezdxf.lldxf.types import DXFTag
from ezdxf.lldxf.validator import is_dxf_file
from ezdxf.recover import Recover
from ezdxf.sections.header import HeaderSection

from documents.dxf_repair import RepairReport, audit_keeping_content, repair_for_drawing
from documents.dxf_tags import NotFast, read_tags
from documents.dxf_text import decode_text_escapes
from documents.errors import InputError, TransientError
from documents.file_kind import sniff_format

if TYPE_CHECKING:
    from documents.dwg_readers import DwgSource

_MESSAGE_LIMIT = 240
# ezdxf names an entity without a handle by its Python object id: "SPLINE(#140505207361944)".
_OBJECT_ID = re.compile(r"\(#\d{12,}\)")


# ezdxf parses a query string (pyparsing, about half a millisecond) for every query, and its audit
# queries every block for "INSERT": a drawing of 300 blocks parsed the same string 300 times. The
# matcher a string gives depends on the string alone, so each is parsed once per process.
ezdxf_query.entity_matcher = functools.lru_cache(maxsize=512)(ezdxf_query.entity_matcher)


@dataclass
class LoadedDxf:
    """A loaded drawing and what loading it took."""

    doc: Drawing
    recovered: bool  # True when only ezdxf.recover could load it
    audit_fixes: list[str] = field(default_factory=list)  # problems the auditor repaired
    audit_errors: list[str] = field(default_factory=list)  # problems it found but left
    # HEADER variables as stored in the file (see module doc); None: use doc.header as it is.
    header_vars: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)  # what loading noticed beyond the auditor
    repair: RepairReport = field(default_factory=RepairReport)  # what the audit removed or repaired
    texts_decoded: int = 0  # strings whose escapes were decoded (decode_text=True)
    dwg: DwgSource | None = None  # a DWG: which reader converted it and what it could not carry


def open_dxf(
    path: Path,
    *,
    dwg_readers: Sequence[str] = ("oda", "pycadkit"),
    dwg_timeout_s: float = 120.0,
    decode_text: bool = True,
    for_saving: bool = False,
) -> LoadedDxf:
    """Load `path`: ASCII DXF, binary DXF, or DWG converted by the first available of
    `dwg_readers` (names of :data:`documents.dwg_readers.READERS`). `for_saving`: the drawing
    will be written back, so it gets what ezdxf adds for AutoCAD when it upgrades an R13/R14
    file to R2000 (all 20 standard arrow blocks); read only, it holds the blocks of the file."""
    loaded = _open(Path(path), dwg_readers, dwg_timeout_s, for_saving)
    if decode_text:
        loaded.texts_decoded = decode_text_escapes(loaded.doc)
    return loaded


def _open(path: Path, dwg_readers: Sequence[str], dwg_timeout_s: float, for_saving: bool) -> LoadedDxf:
    kind = _guard_io(path, sniff_format, path)
    if kind == "dwg":
        return _open_dwg(path, dwg_readers, dwg_timeout_s, for_saving)
    if kind not in ("dxf", "dxf-binary"):
        raise InputError(f"{path.name}: not a DXF file ({_describe_content(path, kind)})")
    # ezdxf.readfile refuses (with a bare IOError) ASCII files whose first tags it does not like,
    # e.g. after a byte-order mark: ask its own gate first so any OSError below is real I/O.
    if kind == "dxf" and not _guard_io(path, is_dxf_file, str(path)):
        return _recover(path, kind, "no SECTION tag where ezdxf expects the first one", for_saving)
    try:
        doc, stored_header = _readfile(path, kind, for_saving)
    except OSError as exc:
        _raise_io(path, exc)
    except MemoryError:
        raise
    except Exception as exc:  # ezdxf signals malformed content with many exception types
        first_failure = _describe(exc)
    else:
        return _audited(doc, None, path, kind, recovered=False, stored_header=stored_header)
    return _recover(path, kind, first_failure, for_saving)


def _readfile(path: Path, kind: str, for_saving: bool) -> tuple[Drawing, list[DXFTag] | None]:
    """What ``ezdxf.readfile`` does, and the HEADER section's tags as the file states them
    (None: it starts with another section, or has none), taken from the one parse of the file
    before ezdxf loads them."""
    if kind == "dxf-binary":
        data = path.read_bytes()
        sections = load_dxf_structure(tag_compiler(binary_tags_loader(data, errors="surrogateescape")))
    else:
        info = dxf_file_info(str(path))
        with open(path, encoding=info.encoding, errors="surrogateescape") as fp:
            try:
                tags: Iterator[DXFTag] = iter(read_tags(fp))
            except NotFast:  # ezdxf's own reader judges it, in its own words
                fp.seek(0)
                tags = tag_compiler(ascii_tags_loader(fp))
            sections = load_dxf_structure(tags)
    sections.pop("THUMBNAILIMAGE", None)
    header = sections.get("HEADER") if next(iter(sections), None) == "HEADER" else None
    stored = list(header[0]) if header else None
    return _drawing(sections, path, for_saving), stored


def _drawing(sections: dict, path: Path | None, for_saving: bool) -> Drawing:
    """The document of ezdxf's section dict, as ``Drawing._load`` makes it. ezdxf upgrades an
    R13/R14 file to R2000 and then adds all 20 standard arrow blocks, which AutoCAD wants in an
    R2000 file that ezdxf writes. Unless the drawing is to be saved, they are not added: they
    are not the file's (the catalog listed them as its blocks), and adding them took a third of
    the load of a small R14 drawing."""
    doc = Drawing()
    doc.is_loading = True
    if not for_saving:
        doc.create_all_arrow_blocks = lambda: None  # type: ignore[method-assign]  # this document only
    doc._load_section_dict(sections)
    if not for_saving:
        del doc.create_all_arrow_blocks
    if path is not None:
        doc.filename = str(path)
    return doc


def _recover(path: Path, kind: str, first_failure: str, for_saving: bool) -> LoadedDxf:
    data = _guard_io(path, path.read_bytes)
    if not _ends_cleanly(data, binary=kind == "dxf-binary"):
        raise InputError(f"{path.name}: truncated DXF (ends inside a section); ezdxf: {first_failure}")
    if kind == "dxf-binary":
        raise InputError(f"{path.name}: cannot load binary DXF: {first_failure} (ezdxf cannot recover binary DXF)")
    # ezdxf.recover stumbles on a byte-order mark or blank lines before the first tag.
    data = data.removeprefix(b"\xef\xbb\xbf").lstrip()
    try:
        doc, auditor = _recovered_document(data, for_saving)
    except MemoryError:
        raise
    except Exception as exc:
        second = _describe(exc)
        how = "recovery fails the same way" if second == first_failure else f"recovery failed: {second}"
        raise InputError(f"{path.name}: cannot load DXF: {first_failure}; {how}") from exc
    doc.filename = str(path)
    return _audited(doc, auditor, path, kind, recovered=True)


def _recovered_document(data: bytes, for_saving: bool) -> tuple[Drawing, Auditor]:
    """``ezdxf.recover.read`` up to its audit: the audit is ours, so that it keeps content."""
    tool = Recover.run(io.BytesIO(data))
    doc = _drawing(tool.section_dict, None, for_saving)
    auditor = Auditor(doc)
    for code, message in tool.errors:
        auditor.add_error(code, message)
    for code, message in tool.fixes:
        auditor.fixed_error(code, message)
    return doc, auditor


def _open_dwg(path: Path, readers: Sequence[str], timeout_s: float, for_saving: bool) -> LoadedDxf:
    """Convert with a DWG reader, then load its DXF bytes like any recovered DXF: ``recover``'s
    loader on the bytes (a text stream of the same DXF lost every entity in one trial)."""
    from documents.dwg_readers import read_dwg

    try:
        conversion = read_dwg(path, readers, timeout_s=timeout_s)
    except OSError as exc:
        _raise_io(path, exc)
    try:
        doc, auditor = _recovered_document(conversion.dxf, for_saving)
    except MemoryError:
        raise
    except Exception as exc:
        raise InputError(
            f"{path.name}: the DXF that {conversion.reader} {conversion.reader_version} made of the DWG "
            f"does not load: {_describe(exc)}"
        ) from exc
    doc.filename = str(path)
    loaded = _audited(doc, auditor, path, "dwg", recovered=False)
    # The HEADER as the reader wrote it, then what the DWG itself states (its version, dates):
    # a reader may write another DXF version and leave variables out.
    try:
        text = io.StringIO(conversion.dxf.decode("utf-8", errors="replace"), newline=None)  # CRLF too
        loaded.header_vars = _header_from_tags(ascii_tags_loader(text))
    except Exception:  # the loaded header stays; the drawing itself loaded
        pass
    loaded.header_vars = {**(loaded.header_vars or {}), **conversion.header}
    if conversion.dwg_version:
        loaded.header_vars["$ACADVER"] = conversion.dwg_version
    loaded.dwg = conversion.source(doc)
    loaded.warnings += loaded.dwg.warnings()
    return loaded


def _audited(
    doc: Drawing,
    auditor: Auditor | None,
    path: Path,
    kind: str,
    *,
    recovered: bool,
    stored_header: list[DXFTag] | None = None,
) -> LoadedDxf:
    """`stored_header`: the HEADER section's tags as loaded (not read from the file again)."""
    auditor, repair = audit_keeping_content(doc, auditor)
    repair.repaired.update(repair_for_drawing(doc))
    loaded = LoadedDxf(
        doc=doc,
        recovered=recovered,
        audit_fixes=[entry.message for entry in auditor.fixes],
        audit_errors=[entry.message for entry in auditor.errors],
        repair=repair,
    )
    if kind == "dwg":
        loaded.header_vars = _loaded_header(doc)
        return loaded
    try:
        if stored_header is not None:
            loaded.header_vars = _header_from_compiled(iter(stored_header))
        else:
            loaded.header_vars = _file_header(path, kind)
    except OSError as exc:
        _raise_io(path, exc)
    except (TransientError, MemoryError):
        raise
    except Exception as exc:  # only a damaged HEADER gets here; the drawing itself loaded
        loaded.header_vars = _loaded_header(doc)
        loaded.warnings.append(f"HEADER section unreadable as stored ({_describe(exc)}); using ezdxf's header")
    return loaded


def _file_header(path: Path, kind: str) -> dict[str, Any]:
    if kind == "dxf-binary":
        return _header_from_tags(binary_tags_loader(_guard_io(path, path.read_bytes)))
    with _guard_io(path, lambda: open(path, encoding="utf-8-sig", errors="replace")) as fh:
        # ezdxf annotates a TextIO but only calls readline(), all that _SkipBlankStart offers
        return _header_from_tags(ascii_tags_loader(_SkipBlankStart(fh)))  # type: ignore[arg-type]


def _header_from_tags(tags: Iterator[DXFTag]) -> dict[str, Any]:
    return _header_from_compiled(tag_compiler(tags))


def _header_from_compiled(compiled: Iterator[DXFTag]) -> dict[str, Any]:
    if next(compiled, None) != (0, "SECTION") or next(compiled, None) != (2, "HEADER"):
        return {}  # no HEADER: the first section is another one
    section: list[DXFTag] = [DXFTag(0, "SECTION"), DXFTag(2, "HEADER")]
    for tag in compiled:  # stop at the end of HEADER: the rest of the file is not needed
        if tag.code == 0:
            break
        section.append(tag)
    header = HeaderSection.load(Tags(section))
    return {name: header.get(name) for name in header.varnames()}


def _loaded_header(doc: Drawing) -> dict[str, Any]:
    # ezdxf sets $TDCREATE to the time of loading: it says nothing about the drawing.
    return {name: doc.header.get(name) for name in doc.header.varnames() if name != "$TDCREATE"}


class _SkipBlankStart:
    """A readline() source for ezdxf's tag loader that skips blank lines before the first tag."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._first: str | None = None
        for line in iter(stream.readline, ""):
            if line.strip():
                self._first = line
                break

    def readline(self) -> str:
        if self._first is not None:
            line, self._first = self._first, None
            return line
        return self._stream.readline()


def _ends_cleanly(data: bytes, *, binary: bool) -> bool:
    """True when the last tag is EOF or ENDSEC (some writers drop the EOF; ENDSEC still closes)."""
    if binary:
        tail = data.rstrip(b"\x1a")[-16:]
        return tail.endswith((b"EOF\x00", b"ENDSEC\x00"))
    # DOS-era files end with Ctrl-Z; NULs come from preallocated, never-filled files.
    last_lines = data.rstrip(b" \t\r\n\x1a\x00")[-16:].splitlines()
    return bool(last_lines) and last_lines[-1].strip().upper() in (b"EOF", b"ENDSEC")


def _guard_io(path: Path, func: Callable[..., Any], *args: Any) -> Any:
    try:
        return func(*args)
    except OSError as exc:
        _raise_io(path, exc)


def _raise_io(path: Path, exc: OSError) -> NoReturn:
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, NotADirectoryError)):
        raise InputError(f"{path.name}: no such file ({path})") from exc
    raise TransientError(f"{path.name}: cannot read: {exc.strerror or exc}") from exc


def _describe_content(path: Path, kind: str | None) -> str:
    if kind:
        return f"content is {kind.upper()}"
    if _guard_io(path, lambda: path.stat().st_size) == 0:
        return "file is empty"
    return "content is not a recognised CAD format"


def _describe(exc: BaseException) -> str:
    """One short line: exception kind and message, without ezdxf's repeated class prefix."""
    name = type(exc).__name__
    text = _OBJECT_ID.sub("(without handle)", " ".join(str(exc).split()))
    while text.startswith(f"{name}:"):
        text = text[len(name) + 1 :].strip()
    text = f"{name}: {text}" if text else name
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 3] + "..."
