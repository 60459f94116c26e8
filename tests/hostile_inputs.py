"""Hostile inputs, generated at test time (no committed blobs): each attack writes its entries into
a library folder and says how it must end. Used by tests/e2e/test_hostile_inputs.py, whose table
(`ATTACKS`: attack, outcome, reason) is also the README's; its small and endless drawings serve the
other tests too (the endless one is the hung file of every timeout test)."""

from __future__ import annotations

import io
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ezdxf

# A secret outside the library, standing in for /etc/shadow (mode 0640).
SECRET = b"root:$6$secret-hash:19000:0:99999:7:::\n"


@dataclass(frozen=True)
class Attack:
    name: str  # what the README table calls it
    entries: Callable[[Path, Path], list[bytes]]  # (library, outside) -> the entries' paths below the library, as bytes
    status: str  # ok | failed | none (no row of its own)
    error_classes: tuple[str, ...] = ()  # for failed: the allowed error classes
    reason: str = ""  # the README's reason column
    in_message: str = ""  # a fragment the error message (failed) or a warning (ok) must contain


def drawing(seed: int = 0, *, entities: int = 5, colour: int = 256) -> bytes:
    """A small drawing whose content differs by seed; `colour`: the lines' ACI colour (256:
    BYLAYER, which draws black on white)."""
    doc = ezdxf.new("R2010")
    msp = doc.modelspace()
    for i in range(entities):
        msp.add_line((i, seed), (i + 10, seed + 5), dxfattribs={"color": colour} if colour != 256 else None)
    msp.add_text(f"PART {seed}", dxfattribs={"height": 2.5})
    return _text(doc)


def _text(doc) -> bytes:
    stream = io.StringIO()
    doc.write(stream)
    return stream.getvalue().encode("utf-8")


def _write(folder: Path, name: bytes, data: bytes) -> bytes:
    with open(os.path.join(os.fsencode(folder), name), "wb") as fh:
        fh.write(data)
    return name


# Generators: (library, outside) -> names written (bytes, relative to the library).


def markup_in_content(lib: Path, _: Path) -> list[bytes]:
    return [_write(lib, b"markup-content.dxf", b"0\nSECTION\n2\nENTITIES\n0\nLINE\n[/x]\n0\n0\nENDSEC\n0\nEOF\n")]


def markup_in_name(lib: Path, _: Path) -> list[bytes]:
    (lib / "[").mkdir()  # the path `[/b] [red]name.dxf`: Rich would read `[/b]` as a closing tag
    return [b"[/" + _write(lib / "[", b"b] [red]name.dxf", drawing(1))]


def latin1_name(lib: Path, _: Path) -> list[bytes]:
    return [_write(lib, b"caf\xe9 plan.dxf", drawing(2))]


def bidi_name(lib: Path, _: Path) -> list[bytes]:
    return [_write(lib, "\u202efdp.dxf".encode(), drawing(3))]


def newline_name(lib: Path, _: Path) -> list[bytes]:
    return [_write(lib, b"two\nlines.dxf", drawing(4))]


def quotes_name(lib: Path, _: Path) -> list[bytes]:
    return [_write(lib, b"\"quoted\" 'name'; $(id).dxf", drawing(5))]


def script_name(lib: Path, _: Path) -> list[bytes]:
    (lib / "<script>alert(1)<").mkdir()  # a name cannot hold "/": the path `<script>alert(1)</script>.dxf`
    return [b"<script>alert(1)</" + _write(lib / "<script>alert(1)<", b"script>.dxf", drawing(6))]


def dotdot_name(lib: Path, _: Path) -> list[bytes]:
    return [_write(lib, b"up\\..\\..\\escape.dxf", drawing(7))]  # not a dotfile: those are excluded


def long_failing_name(lib: Path, _: Path) -> list[bytes]:
    return [_write(lib, b"n" * 234 + b".dxf", b"0\nSECTION\n2\nENTITIES\n0\nLINE\n8\n0\n10\nnot a number\n")]


def truncated(lib: Path, _: Path) -> list[bytes]:
    whole = drawing(8, entities=200)
    rng = random.Random(11)
    names = []
    for i, cut in enumerate(sorted(rng.sample(range(len(whole) // 10, len(whole) - 10), 3))):
        names.append(_write(lib, f"truncated-{i}.dxf".encode(), whole[:cut]))
    return names


def random_bytes(lib: Path, _: Path) -> list[bytes]:
    rng = random.Random(12)
    return [_write(lib, f"random.{ext}".encode(), rng.randbytes(4096)) for ext in ("dxf", "dwg", "step", "stl", "igs")]


def zero_bytes(lib: Path, _: Path) -> list[bytes]:
    return [_write(lib, b"empty.dxf", b"")]


def folder_named_dxf(lib: Path, _: Path) -> list[bytes]:
    (lib / "folder.dxf").mkdir()
    return [b"folder.dxf/" + _write(lib / "folder.dxf", b"inside.dxf", drawing(9))]


def block_bomb(lib: Path, _: Path) -> list[bytes]:
    return [_write(lib, b"block-bomb.dxf", endless_drawing())]


def endless_drawing() -> bytes:
    """Nine levels of blocks, each inserting the one below ten times: 10^8 lines to draw. No worker
    finishes it within any test's time limit, and its memory stays flat (about 170 MB): the hung
    file of the timeout tests, whatever the machine's speed or load."""
    doc = ezdxf.new("R2010")
    below = None
    for level in range(9):
        block = doc.blocks.new(f"LEVEL{level}")
        if below is None:
            block.add_line((0, 0), (1, 1))
        else:
            for i in range(10):
                block.add_blockref(below, (i * 2, 0))
        below = block.name
    doc.modelspace().add_blockref(below, (0, 0))
    return _text(doc)


def self_insert(lib: Path, _: Path) -> list[bytes]:
    doc = ezdxf.new("R2010")
    block = doc.blocks.new("SELF")
    block.add_line((0, 0), (1, 1))
    block.add_blockref("SELF", (1, 1))
    doc.modelspace().add_blockref("SELF", (0, 0))
    doc.modelspace().add_line((0, 0), (5, 5))
    return [_write(lib, b"self-insert.dxf", _text(doc))]


def huge_mtext(lib: Path, _: Path) -> list[bytes]:
    doc = ezdxf.new("R2010")
    doc.modelspace().add_mtext("overflowing words " * 600_000)  # 10.8 MB in one MTEXT
    return [_write(lib, b"huge-mtext.dxf", _text(doc))]


def million_entities(lib: Path, _: Path) -> list[bytes]:
    body = b"0\nPOINT\n8\n0\n10\n1.0\n20\n2.0\n30\n0.0\n" * 1_000_000
    return [_write(lib, b"million.dxf", b"0\nSECTION\n2\nENTITIES\n" + body + b"0\nENDSEC\n0\nEOF\n")]


def non_finite(lib: Path, _: Path) -> list[bytes]:
    text = (
        b"0\nSECTION\n2\nENTITIES\n"
        b"0\nLINE\n8\n0\n10\nnan\n20\ninf\n30\n0\n11\n1\n21\n-inf\n31\n0\n"
        b"0\nCIRCLE\n8\n0\n10\n0\n20\n0\n30\n0\n40\nnan\n"
        b"0\nLINE\n8\n0\n10\n0\n20\n0\n30\n0\n11\n10\n21\n10\n31\n0\n"
        b"0\nENDSEC\n0\nEOF\n"
    )
    return [_write(lib, b"nan-inf.dxf", text)]


def undecodable_text(lib: Path, _: Path) -> list[bytes]:
    doc = ezdxf.new("R2010")  # R2007+ is UTF-8: these bytes are not
    doc.modelspace().add_text("PLACEHOLDER-TEXT")
    return [
        _write(lib, b"bad-bytes-text.dxf", _text(doc).replace(b"PLACEHOLDER-TEXT", b"caf\xe9 \xff\xfe [/x] {0} %s"))
    ]


def references_outside(lib: Path, outside: Path) -> list[bytes]:
    """An IMAGE at the secret (absolute), one at a FIFO outside (opening it would hang), and an
    xref climbing out with ../ ."""
    doc = ezdxf.new("R2010")
    msp = doc.modelspace()
    for i, target in enumerate([outside / "secret.png", outside / "fifo.png"]):
        image_def = doc.add_image_def(filename=str(target), size_in_pixel=(10, 10))
        msp.add_image(image_def, insert=(i * 20, 0), size_in_units=(10, 10))
    doc.add_xref_def("../" * 12 + str(outside).lstrip("/") + "/secret.dwg", "OUTSIDE")
    msp.add_blockref("OUTSIDE", (0, 0))
    msp.add_line((0, 0), (30, 10))
    return [_write(lib, b"refs-outside.dxf", _text(doc))]


def fifo(lib: Path, _: Path) -> list[bytes]:
    os.mkfifo(lib / "pipe.dxf")
    return [b"pipe.dxf"]


def link_outside(lib: Path, outside: Path) -> list[bytes]:
    os.symlink(outside / "secret.txt", lib / "shadow.dxf")
    os.symlink(outside / "secret.txt", lib / "shadow")  # not even a CAD name
    os.symlink(outside, lib / "outside-folder")
    return [b"shadow.dxf", b"shadow", b"outside-folder"]


def broken_link(lib: Path, _: Path) -> list[bytes]:
    os.symlink(lib / "nowhere.dxf", lib / "broken.dxf")
    return [b"broken.dxf"]


def link_loop(lib: Path, _: Path) -> list[bytes]:
    os.symlink(lib / "loop-b.dxf", lib / "loop-a.dxf")
    os.symlink(lib / "loop-a.dxf", lib / "loop-b.dxf")
    return [b"loop-a.dxf", b"loop-b.dxf"]


def link_inside(lib: Path, _: Path) -> list[bytes]:
    _write(lib, b"target.dxf", drawing(10))
    os.symlink("target.dxf", lib / "alias.dxf")
    os.symlink(".", lib / "self-folder")
    return [b"alias.dxf", b"self-folder"]


HEAVY = ("Timeout", "MemoryLimit")
ATTACKS = [
    Attack(
        "bad group code `[/x]` in the content",
        markup_in_content,
        "failed",
        ("InputError",),
        "load: the DXF structure error, quoted as text",
        "[/x]",
    ),
    Attack("Rich markup `[/b]` in a file name", markup_in_name, "ok", reason="a name is text, never markup"),
    Attack("Latin-1 file name (not UTF-8)", latin1_name, "ok", reason="recorded as `caf\\xe9 plan.dxf`"),
    Attack(
        "right-to-left override in a file name",
        bidi_name,
        "ok",
        reason="recorded with the override escaped (`\\xe2\\x80\\xae`)",
    ),
    Attack("newline in a file name", newline_name, "ok", reason="recorded as `two\\x0alines.dxf`: no forged log line"),
    Attack("quotes, `;` and `$(id)` in a file name", quotes_name, "ok", reason="never given to a shell"),
    Attack("`<script>` in a file name", script_name, "ok", reason="escaped in the HTML report"),
    Attack(
        "`..\\..\\` in a file name", dotdot_name, "ok", reason="a name, not a path: written nowhere but where it is"
    ),
    Attack(
        "238-character name of a failing file",
        long_failing_name,
        "failed",
        ("InputError",),
        "quarantined under a shortened name that fits 255 bytes",
    ),
    Attack(
        "truncated at random offsets (3 files)",
        truncated,
        "failed",
        ("InputError",),
        "load: truncated, or not a DXF any more",
    ),
    Attack(
        "random bytes named .dxf .dwg .step .stl .igs",
        random_bytes,
        "failed",
        ("InputError",),
        "detect: not a recognised CAD format",
        "not a recognised CAD format",
    ),
    Attack("zero-byte file", zero_bytes, "failed", ("InputError",), "detect: no content"),
    Attack("a folder named `x.dxf`", folder_named_dxf, "ok", reason="a folder: the drawing inside it is the input"),
    Attack("nested block bomb (10^8 lines)", block_bomb, "failed", HEAVY, "stopped at limits.timeout_s (or memory_mb)"),
    Attack(
        "self-inserting block",
        self_insert,
        "ok",
        reason="drawn without the cycle, which a warning names",
        in_message="cycle",
    ),
    Attack("huge MTEXT (10.8 MB)", huge_mtext, "failed", HEAVY, "stopped at limits.memory_mb (or timeout_s)"),
    Attack("10^6 entities", million_entities, "failed", HEAVY, "stopped at limits.timeout_s (or memory_mb)"),
    Attack(
        "NaN and infinite coordinates",
        non_finite,
        "ok",
        reason="the entities are left out, and named in a warning",
        in_message="NaN or infinite coordinates",
    ),
    Attack(
        "text bytes invalid in the drawing's encoding",
        undecodable_text,
        "ok",
        reason="kept, the bad bytes escaped (`\\xe9`) in the catalog",
    ),
    Attack(
        "IMAGE at a secret and at a FIFO outside, xref with `../`",
        references_outside,
        "ok",
        reason="references outside the source are not looked up: `exists` false, nothing opened",
        in_message="missing image",
    ),
    Attack("FIFO named `pipe.dxf`", fifo, "failed", ("NotRegularFile",), "discover: a FIFO, never opened", "FIFO"),
    Attack(
        "symbolic links to a secret and to a folder outside the source",
        link_outside,
        "failed",
        ("OutsideSource",),
        "discover: not followed, nothing read or copied",
        "outside the source",
    ),
    Attack(
        "broken symbolic link",
        broken_link,
        "failed",
        ("BrokenSymlink",),
        "discover: retried, it may be fixed",
        "broken symbolic link",
    ),
    Attack("symbolic link loop", link_loop, "failed", ("SymlinkLoop",), "discover: a loop", "loop"),
    Attack(
        "links inside the source (to a file, to its own folder)",
        link_inside,
        "none",
        reason="no row of their own: the target is recorded once, under its own name",
    ),
]
