"""DWG readers: a DWG file becomes DXF bytes in memory, which the DXF path then loads.

One reader per class, chosen by ``[dwg] readers`` in ``cadpipe.toml`` (first available wins):

- ``pycadkit``: the pycadkit package (Rust, MIT/Apache-2.0), a core dependency, in process.
  Reads R13 (AC1012) to R2018 (AC1032); entities it cannot model are dropped and named.
- ``oda``: the ODA File Converter (proprietary freeware a user installs by hand) through ezdxf's
  ``odafc`` add-on; the best fidelity where it is installed.
- ``libredwg``: LibreDWG compiled to WebAssembly (``@mlightcad/libredwg-web``, GPL-3.0), opt in
  (``make libredwg``), run as one Node.js process per file with a timeout.

Every reader returns a :class:`DwgConversion`: the DXF bytes, the DWG's version, HEADER values
the DXF does not carry, the reader's own warnings, and the entity types the reader saw in the
DWG (``expected``). After loading, :meth:`DwgConversion.source` compares those with what the DXF
holds, so whatever the reader could not carry into the DXF is counted and named, never silent.

Errors (``documents.errors``): content a reader refuses is an ``InputError`` (permanent) whose
message names the reader, its version, the DWG version and the cause; a reader process that was
killed or ran out of time is a ``TransientError``. ``OSError`` reading the file propagates: the
loader tells a missing file from a passing I/O fault.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import tempfile
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from ezdxf.document import Drawing
from ezdxf.lldxf.const import acad_release

from documents.errors import InputError, TransientError

DEFAULT_READERS = ("oda", "pycadkit")
DXF_OUTPUT_VERSION = "r2018"  # the DXF version pycadkit writes: the richest one ezdxf reads
_MESSAGE_LIMIT = 240
_WARNING_LIMIT = 20  # distinct reader warnings kept per file; the rest are counted
# Versions ezdxf does not name; pre-R13 DWG ("AC1.50" ... "AC1009") turns up in old archives.
_OLD_RELEASES = {
    "AC1.2": "R1.2",
    "AC1.40": "R1.40",
    "AC1.50": "R2.05",
    "AC2.10": "R2.10",
    "AC2.21": "R2.21",
    "AC2.22": "R2.22",
    "AC1001": "R2.2",
    "AC1002": "R2.5",
    "AC1003": "R2.6",
    "AC1004": "R9",
    "AC1006": "R10",
    "AC1009": "R11/R12",
}
_PRE_R13 = set(_OLD_RELEASES)

# pycadkit warnings that mean objects were not decoded and are missing from the drawing. A bad
# checksum or a damaged HEADER alone is only noted: the drawing itself is complete (and
# third-party writers get checksums wrong on sound files).
_PYCADKIT_DAMAGE = {"dwg.object_error", "dwg.decode_error", "dwg.object_map", "dwg.classes_incomplete"}


@dataclass
class DwgSource:
    """How a DWG became the drawing that was loaded: what the catalog records about it."""

    reader: str
    reader_version: str
    dwg_version: str | None  # as the DWG states it, e.g. "AC1018"
    reader_warnings: list[str] = field(default_factory=list)  # the reader's own words, all of them
    lost: dict[str, int] = field(default_factory=dict)  # entity type -> count not in the DXF
    notices: list[str] = field(default_factory=list)  # reader warnings the file's warnings repeat

    @property
    def lost_count(self) -> int:
        return sum(self.lost.values())

    def warnings(self) -> list[str]:
        """Sentences for the file's `warnings`: what the conversion left out, what the reader noticed."""
        said = [f"DWG reader {self.reader}: {notice}" for notice in self.notices]
        if not self.lost:
            return said
        kinds = ", ".join(f"{n} {t}" for t, n in sorted(self.lost.items(), key=lambda kv: (-kv[1], kv[0])))
        return [
            f"DWG reader {self.reader} {self.reader_version} could not convert {self.lost_count} "
            f"entities, left out of every output: {kinds}"
        ] + said

    def summary(self) -> dict[str, Any]:
        """Columns of the catalog's `files` table."""
        return {
            "dwg_reader": self.reader,
            "dwg_reader_version": self.reader_version,
            "dwg_reader_warnings": list(self.reader_warnings),
            "dwg_unsupported_count": self.lost_count,
        }


@dataclass
class DwgConversion:
    """One reader's result: DXF bytes for ``ezdxf.recover`` and what the reader knows beyond them."""

    dxf: bytes
    reader: str
    reader_version: str
    dwg_version: str | None
    header: dict[str, Any] = field(default_factory=dict)  # HEADER values from the DWG itself
    warnings: list[str] = field(default_factory=list)  # everything the reader said
    notices: list[str] = field(default_factory=list)  # what of it the file's warnings must repeat
    # Entity types (DXF names) the reader saw in the DWG, over layouts and blocks: the DXF should
    # hold at least as many of each. Only the types a reader may drop need to be listed.
    expected: Counter[str] = field(default_factory=Counter)

    def source(self, doc: Drawing) -> DwgSource:
        """Compare `expected` with the loaded DXF `doc`: the shortfall is what the reader lost."""
        present = Counter(entity.dxftype() for block in doc.blocks for entity in block)
        lost = {t: n - present[t] for t, n in self.expected.items() if n > present[t]}
        return DwgSource(
            self.reader, self.reader_version, self.dwg_version, list(self.warnings), lost, list(self.notices)
        )


class DwgReader(ABC):
    """Converts DWG files to DXF bytes. Subclasses are cheap to make; `available` may look around."""

    name: str
    licence: str

    @abstractmethod
    def available(self) -> bool: ...

    @abstractmethod
    def why_unavailable(self) -> str: ...

    @abstractmethod
    def version(self) -> str: ...

    @abstractmethod
    def convert(self, path: Path) -> DwgConversion:
        """Raises InputError for content the reader refuses, TransientError for passing faults."""

    def refuse(self, path: Path, dwg_version: str | None, cause: str) -> InputError:
        return InputError(
            f"{path.name}: {self.name} {self.version()} cannot read the DWG ({describe_version(dwg_version)}): {cause}"
        )


class PycadkitReader(DwgReader):
    name = "pycadkit"
    licence = "MIT OR Apache-2.0"

    def available(self) -> bool:
        try:
            import cadkit  # noqa: F401
        except ImportError:
            return False
        return True

    def why_unavailable(self) -> str:
        return "the pycadkit package is not installed"

    def version(self) -> str:
        return _installed_version("pycadkit")

    def convert(self, path: Path) -> DwgConversion:
        import cadkit

        stated = dwg_version_of(path)
        try:
            doc = cadkit.read(path)
            dxf = doc.to_dxf_bytes(DXF_OUTPUT_VERSION)
        except (OSError, MemoryError):
            raise  # the loader tells I/O faults from missing files
        except cadkit.UnknownFormatError as exc:
            hint = " (pycadkit reads R13 and later; the libredwg reader has experimental pre-R13 support)"
            raise self.refuse(path, stated, _describe(exc) + (hint if stated in _PRE_R13 else "")) from exc
        except Exception as exc:  # CadkitError subclasses and anything the Rust core raises
            raise self.refuse(path, stated, _describe(exc)) from exc
        said = [(str(w.get("code")), str(w.get("message"))) for w in doc.warnings]
        damage = [message for code, message in said if code in _PYCADKIT_DAMAGE]
        if damage:  # objects it could not decode are missing from the drawing: not complete, not ok
            raise self.refuse(path, stated, f"damaged: {len(damage)} problems decoding it, first: {damage[0]}")
        expected: Counter[str] = Counter()
        for space in (*doc.models, *doc.blocks):
            for entity in space.get("entities", ()):
                kind = entity.get("kind", {})
                if kind.get("type") == "unknown":  # read but not modelled: the DXF may lack it
                    expected[str(kind.get("type_name", "?")).removeprefix("dwg.")] += 1
        return DwgConversion(
            dxf=dxf,
            reader=self.name,
            reader_version=self.version(),
            dwg_version=doc.version or stated,
            header=_pycadkit_header(doc.to_dict().get("props", {})),
            warnings=_distinct(f"{code}: {message}" for code, message in said),
            # unsupported entities are counted from the drawing itself (`expected`), not repeated
            notices=_distinct(message for code, message in said if code != "dwg.unsupported_entity"),
            expected=expected,
        )


class OdaReader(DwgReader):
    """The ODA File Converter, found the way ezdxf's odafc add-on finds it."""

    name = "oda"
    licence = "proprietary freeware (Open Design Alliance), installed by the user"

    def _executable(self) -> str | None:
        from ezdxf.addons import odafc

        configured = odafc.get_unix_exec_path() if os.name != "nt" else odafc.get_win_exec_path()
        if configured and Path(configured).is_file():
            return configured
        return shutil.which("ODAFileConverter")

    def available(self) -> bool:
        return self._executable() is not None and self._can_run_headless()

    def why_unavailable(self) -> str:
        if self._executable() is None:
            return "the ODA File Converter is not installed (ODAFileConverter not on PATH, no odafc-addon path in ezdxf's config)"
        return "the ODA File Converter needs an X display: install Xvfb (package xvfb) or set DISPLAY"

    @staticmethod
    def _can_run_headless() -> bool:
        # ezdxf's add-on starts an Xvfb per call on Linux, else uses DISPLAY (and fails without it).
        return platform.system() != "Linux" or bool(shutil.which("Xvfb") or os.environ.get("DISPLAY"))

    def version(self) -> str:
        exe = self._executable()
        return _oda_version(exe) if exe else "none"

    def convert(self, path: Path) -> DwgConversion:
        from ezdxf.addons import odafc

        stated = dwg_version_of(path)
        # ODA picks inputs by extension: a copy named .dwg also serves a DWG named .dxf.
        with tempfile.TemporaryDirectory(prefix="cadpipe-oda-") as tmp:
            src, dest = Path(tmp) / "in" / "drawing.dwg", Path(tmp) / "drawing.dxf"
            src.parent.mkdir()
            shutil.copyfile(path, src)
            try:
                odafc.convert(src, dest, version="R2018", audit=True, replace=True)
            except (odafc.ODAFCNotInstalledError, odafc.UnsupportedPlatform) as exc:
                raise TransientError(f"{path.name}: ODA File Converter not usable: {_describe(exc)}") from exc
            except odafc.ODAFCError as exc:
                raise self.refuse(path, stated, _describe(exc)) from exc
            if not dest.is_file():
                raise self.refuse(path, stated, "no DXF was written")
            dxf = dest.read_bytes()
        return DwgConversion(dxf=dxf, reader=self.name, reader_version=self.version(), dwg_version=stated)


class LibreDwgReader(DwgReader):
    """LibreDWG as WebAssembly in Node.js: one process per file (a WebAssembly abort poisons the
    process), killed with its worker (PR_SET_PDEATHSIG) and after `timeout_s`."""

    name = "libredwg"
    licence = "GPL-3.0 (LibreDWG, @mlightcad/libredwg-web); run as a separate program, never linked"
    HOME = Path(__file__).with_name("libredwg")  # package.json, the script, node_modules (make libredwg)
    PACKAGE = HOME / "node_modules" / "@mlightcad" / "libredwg-web"
    # Liftoff only: V8's optimising compiler needs ~0.9 GB for this module and fails under the
    # worker's address-space cap; no trap handler: it reserves 10 GB of address space up front.
    NODE_FLAGS = ("--disable-wasm-trap-handler", "--liftoff-only")

    def __init__(self, timeout_s: float = 120.0) -> None:
        self.timeout_s = timeout_s

    def available(self) -> bool:
        return shutil.which("node") is not None and (self.PACKAGE / "package.json").is_file()

    def why_unavailable(self) -> str:
        if shutil.which("node") is None:
            return "Node.js (node) is not on PATH"
        return f"@mlightcad/libredwg-web is not installed in {self.HOME} (run: make libredwg)"

    def version(self) -> str:
        try:
            meta = json.loads((self.PACKAGE / "package.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return "none"
        return f"libredwg-web-{meta.get('version', '?')}"

    def convert(self, path: Path) -> DwgConversion:
        stated = dwg_version_of(path)
        command = ["node", *self.NODE_FLAGS, str(self.HOME / "dwg2dxf.mjs"), str(Path(path).absolute())]
        try:
            proc = subprocess.run(
                command, capture_output=True, timeout=self.timeout_s, preexec_fn=_die_with_parent, cwd=self.HOME
            )
        except subprocess.TimeoutExpired as exc:
            raise TransientError(
                f"{path.name}: {self.name}: no result within {self.timeout_s:g} s; process stopped"
            ) from exc
        except OSError as exc:
            raise TransientError(f"{path.name}: {self.name}: cannot start node: {exc}") from exc
        if proc.returncode < 0:  # killed by a signal: memory, the operator, the machine
            raise TransientError(f"{path.name}: {self.name}: node was killed ({signal.Signals(-proc.returncode).name})")
        head, _, dxf = proc.stdout.partition(b"\n")
        try:
            info = json.loads(head)
        except ValueError:
            info = {}
        messages = _stderr_lines(proc.stderr)
        if any("WebAssembly.instantiate" in m and "memory" in m.lower() for m in messages):
            # The worker's address-space cap, not the file: passing once the cap is raised.
            raise TransientError(
                f"{path.name}: {self.name}: Node cannot reserve LibreDWG's memory under the worker's cap "
                "(limits.memory_mb must be at least 3072)"
            )
        if proc.returncode != 0 or info.get("status") != "ok":
            code = info.get("error_code")
            cause = f"LibreDWG error {_libredwg_errors(code)}" if code else f"node exited with {proc.returncode}"
            said = [m for m in messages if re.search(r"error|abort", m, re.IGNORECASE)] or messages
            detail = f": {said[-1]}" if said else ""
            raise self.refuse(path, stated, cause + detail)
        warnings = messages + (
            [f"LibreDWG reported {_libredwg_errors(info['error_code'])}"] if info.get("error_code") else []
        )
        return DwgConversion(
            dxf=dxf,
            reader=self.name,
            reader_version=self.version(),
            dwg_version=info.get("dwg_version") or stated,
            warnings=_distinct(warnings),
            notices=_distinct(warnings),
            expected=_libredwg_expected(info.get("entities", {})),
        )


READERS: dict[str, type[DwgReader]] = {"oda": OdaReader, "pycadkit": PycadkitReader, "libredwg": LibreDwgReader}


@dataclass(frozen=True)
class ReaderChoice:
    """The reader a run uses for DWG: part of the work identity of every DWG."""

    name: str | None  # None: none of the configured readers is available
    version: str | None
    unavailable: tuple[str, ...] = ()  # "<reader>: <why>" for each configured reader passed over

    def describe(self) -> str:
        return "; ".join(self.unavailable) or "no DWG reader configured"


@lru_cache(maxsize=8)
def choose_reader(names: tuple[str, ...]) -> ReaderChoice:
    """The first available reader of `names` (cached: availability is looked up once per process)."""
    passed: list[str] = []
    for name in names:
        reader = make_reader(name)
        if reader.available():
            return ReaderChoice(name, reader.version(), tuple(passed))
        passed.append(f"{name}: {reader.why_unavailable()}")
    return ReaderChoice(None, None, tuple(passed))


def make_reader(name: str, timeout_s: float = 120.0) -> DwgReader:
    try:
        cls = READERS[name]
    except KeyError:
        raise ValueError(f"unknown DWG reader {name!r} (known: {', '.join(READERS)})") from None
    return cls(timeout_s) if cls is LibreDwgReader else cls()


def read_dwg(path: Path, readers: Sequence[str] = DEFAULT_READERS, *, timeout_s: float = 120.0) -> DwgConversion:
    """Convert `path` with the first available of `readers`."""
    choice = choose_reader(tuple(readers))
    if choice.name is None:
        raise InputError(f"{Path(path).name}: no DWG reader available ({choice.describe()})")
    return make_reader(choice.name, timeout_s).convert(Path(path))


def dwg_version_of(path: Path) -> str | None:
    """The version stamp a DWG starts with (``AC1032``, ``AC1.50`` ...), None when unreadable."""
    with open(path, "rb") as fh:
        head = fh.read(6)
    match = re.match(rb"AC(?:10\d\d|\d\.\d\d?)", head)
    return match.group().decode() if match else None


def describe_version(version: str | None) -> str:
    if not version:
        return "unknown version"
    release = acad_release.get(version) or _OLD_RELEASES.get(version)
    return f"{version}, {release}" if release else version


def _pycadkit_header(props: dict[str, Any]) -> dict[str, Any]:
    """HEADER values the DWG states and pycadkit's DXF writer leaves out or rewrites: the dates
    (stored as [julian day, milliseconds]) and the 3D extents."""
    header: dict[str, Any] = {}
    for name in ("TDCREATE", "TDUPDATE"):
        value = props.get(f"dwg.header.{name}")
        if isinstance(value, (list, tuple)) and len(value) == 2:
            header[f"${name}"] = float(value[0]) + float(value[1]) / 86_400_000
    for name in ("EXTMIN", "EXTMAX"):
        value = props.get(f"dwg.header.{name}")
        if isinstance(value, (list, tuple)) and len(value) == 3:
            header[f"${name}"] = tuple(float(v) for v in value)
    return header


def _libredwg_expected(counts: dict[str, int]) -> Counter[str]:
    """LibreDWG's type names as DXF names; sub-entities (vertices, ATTRIB, SEQEND) travel with
    their owner, BLOCK/ENDBLK are block bookkeeping: none is counted on its own in the DXF."""
    expected: Counter[str] = Counter()
    for name, count in counts.items():
        if name in ("BLOCK", "ENDBLK", "SEQEND", "ATTRIB") or name.startswith("VERTEX_"):
            continue
        if name.startswith("DIMENSION_"):
            name = "DIMENSION"
        elif name.startswith("POLYLINE_"):
            name = "POLYLINE"
        name = {"TABLE": "ACAD_TABLE", "PROXY_ENTITY": "ACAD_PROXY_ENTITY"}.get(name, name)
        expected[name] += int(count)
    return expected


_LIBREDWG_ERRORS = {
    1: "wrong CRC",
    2: "not yet supported",
    4: "unhandled class",
    8: "invalid type",
    16: "invalid handle",
    32: "invalid EED",
    64: "value out of bounds",
    128: "classes not found",
    256: "section not found",
    512: "page not found",
    1024: "internal error",
    2048: "invalid DWG",
    4096: "I/O error",
    8192: "out of memory",
}


def _libredwg_errors(code: Any) -> str:
    try:
        code = int(code)
    except (TypeError, ValueError):
        return str(code)
    names = [text for bit, text in _LIBREDWG_ERRORS.items() if code & bit]
    return f"{code} ({', '.join(names)})" if names else str(code)


def _stderr_lines(data: bytes) -> list[str]:
    """LibreDWG's messages, cut before the first byte that is not printable ASCII: its warnings
    quote the undecodable bytes they are about, which say nothing to a reader of the catalog."""
    lines = []
    for raw in data.decode("utf-8", errors="replace").splitlines():
        text = re.split(r"[^\x20-\x7e]", raw, maxsplit=1)[0].strip()
        if text and not text.startswith(("at ", "Node.js v")):
            lines.append(text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 3] + "...")
    return lines


def _distinct(messages: Iterable[str]) -> list[str]:
    """Each message once, with how often it came, at most _WARNING_LIMIT of them."""
    counts = Counter(messages)
    kept = [f"{text} (x{n})" if n > 1 else text for text, n in counts.items()]
    if len(kept) > _WARNING_LIMIT:
        kept = kept[:_WARNING_LIMIT] + [f"... and {len(kept) - _WARNING_LIMIT} more kinds of reader warnings"]
    return kept


def _installed_version(dist: str) -> str:
    try:
        return package_version(dist)
    except PackageNotFoundError:
        return "none"


@lru_cache(maxsize=4)
def _oda_version(executable: str) -> str:
    """ODA installs under a folder named with its version (``ODAFileConverter_QT6_lnxX64_8.3dll_25.4``);
    else (a launcher script, a renamed copy) the executable's hash tells builds apart. It is part
    of the work identity, so an upgrade redoes the DWG outputs."""
    resolved = Path(executable).resolve()
    found = re.findall(r"\d+\.\d+(?:\.\d+)*", f"{resolved.parent.name}/{resolved.name}")
    if found:
        return found[-1]
    try:
        digest = hashlib.sha256(resolved.read_bytes()).hexdigest()[:12]
    except OSError:
        return "unknown"
    return f"sha256-{digest}"


def _die_with_parent() -> None:
    """In the child before exec: the kernel kills it when the worker that started it dies (a
    timed-out worker is killed by the pool, and its reader process must not live on)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _describe(exc: BaseException) -> str:
    name = type(exc).__name__
    text = " ".join(str(exc).split())
    text = f"{name}: {text}" if text else name
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 3] + "..."
