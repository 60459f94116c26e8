"""Loading DXF/DWG files: plain, binary, recovered, refused; generated ones (the real corpus files:
tests/e2e/test_dxf_document_corpus.py)."""

from __future__ import annotations

import io
import os
from datetime import datetime
from pathlib import Path

import ezdxf
import pytest
from ezdxf.addons import odafc
from ezdxf.tools.juliandate import juliandate

from documents.dxf_document import LoadedDxf, open_dxf
from documents.errors import InputError, TransientError


def drawing(path: Path, version: str = "R2018", fmt: str = "asc") -> Path:
    doc = ezdxf.new(version)
    msp = doc.modelspace()
    msp.add_line((0, 0), (10, 0), dxfattribs={"layer": "Walls"})
    msp.add_text("hello", dxfattribs={"insert": (1, 1)})
    doc.header["$TDCREATE"] = juliandate(datetime(2020, 5, 6, 7, 8, 9))
    doc.saveas(path, fmt=fmt)
    return path


def test_plain_ascii_dxf(tmp_path):
    loaded = open_dxf(drawing(tmp_path / "a.dxf"))
    assert isinstance(loaded, LoadedDxf)
    assert loaded.recovered is False
    assert loaded.audit_errors == []
    assert sorted(e.dxftype() for e in loaded.doc.modelspace()) == ["LINE", "TEXT"]
    assert loaded.warnings == []


def test_header_vars_are_the_files_not_ezdxfs(tmp_path):
    loaded = open_dxf(drawing(tmp_path / "a.dxf"))
    stored = juliandate(datetime(2020, 5, 6, 7, 8, 9))
    assert loaded.header_vars["$TDCREATE"] == pytest.approx(stored)
    # ezdxf's own header says "now": the reason header_vars exists
    assert loaded.doc.header["$TDCREATE"] != pytest.approx(stored)
    assert loaded.header_vars["$ACADVER"] == "AC1032"


def test_binary_dxf(tmp_path):
    loaded = open_dxf(drawing(tmp_path / "b.dxf", "R2000", fmt="bin"))
    assert loaded.recovered is False
    assert len(loaded.doc.modelspace()) == 2
    assert loaded.header_vars["$TDCREATE"] == pytest.approx(juliandate(datetime(2020, 5, 6, 7, 8, 9)))


def test_bom_crlf_and_leading_blank_lines_load_through_recovery(tmp_path):
    plain = drawing(tmp_path / "plain.dxf").read_bytes()
    odd = tmp_path / "odd.dxf"
    odd.write_bytes(b"\xef\xbb\xbf\r\n\r\n" + plain.replace(b"\n", b"\r\n"))
    loaded = open_dxf(odd)
    assert loaded.recovered is True  # ezdxf.readfile refuses the BOM
    assert sorted(e.dxftype() for e in loaded.doc.modelspace()) == ["LINE", "TEXT"]
    assert loaded.header_vars["$ACADVER"] == "AC1032"


def test_file_without_header_section(tmp_path):
    path = tmp_path / "bare.dxf"
    path.write_text("0\nSECTION\n2\nENTITIES\n0\nLINE\n8\n0\n10\n0\n20\n0\n11\n5\n21\n5\n0\nENDSEC\n0\nEOF\n")
    loaded = open_dxf(path)
    assert [e.dxftype() for e in loaded.doc.modelspace()] == ["LINE"]
    assert loaded.header_vars == {}  # nothing stored; ezdxf's defaults are not passed off as the file's


def test_truncated_binary_dxf_is_refused(tmp_path):
    data = drawing(tmp_path / "b.dxf", "R2010", fmt="bin").read_bytes()
    cut = tmp_path / "cut.dxf"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.dxf"):
        open_dxf(cut)


def test_broken_binary_dxf_is_refused_without_recovery(tmp_path):
    data = drawing(tmp_path / "b.dxf", "R2010", fmt="bin").read_bytes()
    last_endsec = data.rindex(b"\x00\x00ENDSEC\x00")  # group code 0 (2 bytes), value, NUL
    broken = tmp_path / "broken.dxf"
    broken.write_bytes(data[:last_endsec] + data[last_endsec + 9 :])  # still ends with EOF
    with pytest.raises(InputError, match=r"broken\.dxf: cannot load binary DXF: .*missing ENDSEC"):
        open_dxf(broken)


@pytest.mark.parametrize(
    ("content", "cause"),
    [
        (b"", "file is empty"),
        (bytes(range(256)) * 16, "content is not a recognised CAD format"),
        (b"ISO-10303-21;\nHEADER;\nENDSEC;\n", "content is STEP"),
    ],
    ids=["empty", "garbage", "step"],
)
def test_not_a_dxf(tmp_path, content, cause):
    path = tmp_path / "x.dxf"
    path.write_bytes(content)
    with pytest.raises(InputError, match=rf"x\.dxf: not a DXF file \({cause}"):
        open_dxf(path)


def test_garbage_behind_a_valid_first_tag(tmp_path):
    path = tmp_path / "junk.dxf"
    path.write_bytes(b"0\nSECTION\n2\nHEADER\n" + bytes(range(1, 256)) * 8)
    with pytest.raises(InputError, match=r"junk\.dxf"):
        open_dxf(path)


def test_missing_file_is_an_input_error(tmp_path):
    # Decision: permanent. The batch saw the file moments ago; if it is gone, retrying cannot help.
    with pytest.raises(InputError, match=r"nope\.dxf: no such file"):
        open_dxf(tmp_path / "nope.dxf")


def test_directory_is_an_input_error(tmp_path):
    (tmp_path / "folder.dxf").mkdir()
    with pytest.raises(InputError, match=r"folder\.dxf: no such file"):
        open_dxf(tmp_path / "folder.dxf")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a user that file modes restrict")
def test_unreadable_file_is_transient(tmp_path):
    path = drawing(tmp_path / "locked.dxf")
    path.chmod(0)
    try:
        with pytest.raises(TransientError, match=r"locked\.dxf: cannot read"):
            open_dxf(path)
    finally:
        path.chmod(0o644)


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_other_os_errors_are_transient(tmp_path):
    # A symlink loop stands in for the environment faults root cannot be denied (EACCES, EIO).
    loop = tmp_path / "loop.dxf"
    loop.symlink_to(loop)
    with pytest.raises(TransientError, match=r"loop\.dxf: cannot read"):
        open_dxf(loop)


def test_dwg_without_an_available_reader_names_each_reader_and_why(tmp_path):
    if odafc.is_installed():
        pytest.skip("ODA File Converter installed")
    path = tmp_path / "plan.dwg"
    path.write_bytes(b"AC1032" + bytes(200))
    with pytest.raises(
        InputError, match="plan.dwg: no DWG reader available .oda: the ODA File Converter is not installed"
    ):
        open_dxf(path, dwg_readers=["oda"])


def an_r14_drawing(path: Path) -> Path:
    """A drawing whose header says R14 (ezdxf writes R2000 at the oldest): ezdxf upgrades it to
    R2000 while loading."""
    doc = ezdxf.new("R2000")
    doc.modelspace().add_line((0, 0), (1, 1))
    stream = io.StringIO()
    doc.write(stream)
    path.write_text(stream.getvalue().replace("AC1015", "AC1014", 1))
    return path


def test_a_drawing_read_holds_only_its_own_blocks_one_to_save_also_ezdxfs_arrows(tmp_path):
    path = an_r14_drawing(tmp_path / "r14.dxf")
    read = {block.name for block in open_dxf(path).doc.blocks}
    assert read == {"*Model_Space", "*Paper_Space"}
    saved = {block.name for block in open_dxf(path, for_saving=True).doc.blocks}
    assert saved == {block.name for block in ezdxf.readfile(path).blocks}  # what ezdxf itself makes of it
    assert {"_DOT", "_OPEN30", "_CLOSEDBLANK"} <= saved - read


def test_a_read_drawing_can_still_be_given_the_arrow_blocks(tmp_path):
    doc = open_dxf(an_r14_drawing(tmp_path / "r14.dxf")).doc
    assert "_DOT" not in doc.blocks
    doc.create_all_arrow_blocks()  # the skip lasted for the load only
    assert "_DOT" in doc.blocks


def test_a_query_string_is_parsed_once_and_still_selects_as_ezdxf_does(tmp_path):
    from ezdxf import query

    doc = ezdxf.new("R2018")
    for i in range(30):
        block = doc.blocks.new(f"B{i}")
        block.add_line((0, 0), (i, 1), dxfattribs={"layer": "A" if i % 2 else "B"})
        doc.modelspace().add_blockref(f"B{i}", (i, 0))
    path = tmp_path / "blocks.dxf"
    doc.saveas(path)
    before = query.entity_matcher.cache_info()
    loaded = open_dxf(path)  # the audit queries each of the 30 blocks
    after = query.entity_matcher.cache_info()
    assert after.hits - before.hits >= 29 and after.misses - before.misses <= 2
    lines = [e for b in loaded.doc.blocks for e in b if e.dxftype() == "LINE"]
    picked = [e for b in loaded.doc.blocks for e in b.query('LINE[layer=="A"]')]
    assert picked == [e for e in lines if e.dxf.layer == "A"] and len(picked) == 15
