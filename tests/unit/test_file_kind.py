"""Format sniffing from content: generated samples of every format and look-alikes (the real corpus:
tests/e2e/test_file_kind_corpus.py)."""

from __future__ import annotations

import struct
from pathlib import Path

import ezdxf
import pytest

from documents.file_kind import FORMAT_EXTENSIONS, is_cad_extension, sniff_format

IGES_START = "Generated IGES sample".ljust(72) + "S      1"
IGES_GLOBAL = "1H,,1H;,7Hsample,".ljust(72) + "G      1"
STL_ASCII = "solid cube\n  facet normal 0 0 1\n    outer loop\n      vertex 0 0 0\n"


def binary_stl(triangles: int, header: bytes = b"binary stl") -> bytes:
    return header.ljust(80, b" ") + struct.pack("<I", triangles) + bytes(50 * triangles)


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("latin-1") if isinstance(data, str) else data)
    return path


@pytest.fixture(scope="module")
def dxf_bytes(tmp_path_factory) -> bytes:
    doc = ezdxf.new("R2010")
    doc.modelspace().add_line((0, 0), (1, 1))
    path = tmp_path_factory.mktemp("dxf") / "line.dxf"
    doc.saveas(path)
    return path.read_bytes()


def test_ascii_dxf_as_written_by_ezdxf(tmp_path, dxf_bytes):
    assert sniff_format(write(tmp_path, "a.dxf", dxf_bytes)) == "dxf"


def test_ascii_dxf_with_bom_crlf_comments_and_blank_lines(tmp_path, dxf_bytes):
    data = b"\xef\xbb\xbf\r\n\r\n999\r\nwritten by hand\r\n" + dxf_bytes.replace(b"\n", b"\r\n")
    assert sniff_format(write(tmp_path, "drawing.txt", data)) == "dxf"


def test_ascii_dxf_without_header_section(tmp_path):
    data = "0\nSECTION\n2\nENTITIES\n0\nLINE\n8\n0\n10\n0\n20\n0\n11\n1\n21\n1\n0\nENDSEC\n0\nEOF\n"
    assert sniff_format(write(tmp_path, "bare", data)) == "dxf"


def test_binary_dxf(tmp_path):
    doc = ezdxf.new("R2000")
    doc.modelspace().add_circle((0, 0), 2)
    path = tmp_path / "binary.dxf"
    doc.saveas(path, fmt="bin")
    assert sniff_format(path) == "dxf-binary"


@pytest.mark.parametrize("magic", [b"AC1032", b"AC1015", b"AC1009", b"AC1.50", b"AC2.10"])
def test_dwg_version_stamps(tmp_path, magic):
    assert sniff_format(write(tmp_path, "x.bin", magic + b"\x00\x00\x00\x00\x00\x01\x03" + bytes(100))) == "dwg"


def test_step_plain_and_after_a_comment(tmp_path):
    body = "ISO-10303-21;\nHEADER;\nFILE_DESCRIPTION((''),'2;1');\nENDSEC;\n"
    assert sniff_format(write(tmp_path, "a.step", body)) == "step"
    assert sniff_format(write(tmp_path, "b.dat", "/* exported by hand\n*/\n" + body)) == "step"


def test_iges_fixed_format(tmp_path):
    data = "\n".join([IGES_START, IGES_GLOBAL, ""])
    assert sniff_format(write(tmp_path, "part.stl", data)) == "iges"  # the extension is ignored


def test_iges_whose_start_record_begins_with_solid_is_not_stl(tmp_path):
    data = "\n".join(["SolidWorks IGES file".ljust(72) + "S      1", IGES_GLOBAL, ""])
    assert sniff_format(write(tmp_path, "x.igs", data)) == "iges"


def test_ascii_stl_variants(tmp_path):
    assert sniff_format(write(tmp_path, "a.stl", STL_ASCII)) == "stl"
    assert sniff_format(write(tmp_path, "b.stl", "# exported\nSOLID part # note\nfacet normal 0 0 1\n")) == "stl"
    assert sniff_format(write(tmp_path, "c.stl", "solid empty\nendsolid empty")) == "stl"


def test_binary_stl_by_size_even_with_a_solid_header(tmp_path):
    assert sniff_format(write(tmp_path, "a.stl", binary_stl(3))) == "stl"
    assert sniff_format(write(tmp_path, "b.stl", binary_stl(2, header=b"solid exported by CAD"))) == "stl"
    assert sniff_format(write(tmp_path, "c.stl", binary_stl(0))) == "stl"


def test_binary_stl_with_wrong_size_is_unknown(tmp_path):
    assert sniff_format(write(tmp_path, "a.stl", binary_stl(3) + b"extra")) is None


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n",
        b"solid words in a letter, not a mesh\n",
        b"0\nLINE\n8\n0\n",  # DXF-like tags but no SECTION
        b"Hello\nSECTION\n",
        bytes(range(256)) * 4,
    ],
    ids=["empty", "pdf", "solid-prose", "tags-without-section", "prose", "binary-junk"],
)
def test_other_content_is_not_recognised(tmp_path, content):
    assert sniff_format(write(tmp_path, "x.dxf", content)) is None


def test_missing_file_raises_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        sniff_format(tmp_path / "nope.dxf")


def test_extensions():
    assert set(FORMAT_EXTENSIONS) == {".dxf", ".dwg", ".step", ".stp", ".iges", ".igs", ".stl"}
    assert FORMAT_EXTENSIONS[".stp"] == "step" and FORMAT_EXTENSIONS[".igs"] == "iges"
    assert is_cad_extension(Path("a/b/PART.STEP"))
    assert is_cad_extension(Path("plan.Dxf"))
    assert not is_cad_extension(Path("notes.txt"))
    assert not is_cad_extension(Path("dxf"))  # a name, not an extension
