"""documents/dxf_tags.py reads exactly the tags ezdxf's own reader reads, or refuses (the corpus:
tests/e2e/test_dxf_tags_corpus.py)."""

from __future__ import annotations

import io

import ezdxf
import pytest
from ezdxf.lldxf.tagger import ascii_tags_loader, tag_compiler

from documents.dxf_tags import BLOCK_CHARS, NotFast, read_tags

BLOCKS = (BLOCK_CHARS, 1001, 64, 7)  # small blocks end inside lines, pairs and points


def tag_list(tags) -> list[tuple[str, int, object]]:
    return [(type(t).__name__, t.code, tuple(t.value) if type(t).__name__ == "DXFVertex" else t.value) for t in tags]


def ezdxfs(text: str) -> list[tuple[str, int, object]]:
    return tag_list(tag_compiler(ascii_tags_loader(io.StringIO(text))))


def ours(text: str, block: int) -> list[tuple[str, int, object]]:
    return tag_list(read_tags(io.StringIO(text), block))


def a_drawing() -> str:
    doc = ezdxf.new("R2018", setup=True)
    msp = doc.modelspace()
    msp.add_line((0, 0, 1), (10, 5, 2))
    msp.add_lwpolyline([(0, 0), (3, 4), (5, 0)], close=True)
    msp.add_text("tag reading", dxfattribs={"height": 2.5})
    msp.add_spline([(0, 0), (1, 2), (3, 1), (4, 4)])
    msp.add_mtext("line one\\Pline two")
    stream = io.StringIO()
    doc.write(stream)
    return stream.getvalue()


@pytest.mark.parametrize("block", BLOCKS)
def test_a_whole_drawing_gives_ezdxfs_tags_whatever_the_block_size(block):
    text = a_drawing()
    assert ours(text, block) == ezdxfs(text)
    assert len(ezdxfs(text)) > 1000


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize(
    "text",
    [
        "0\nSECTION\n999\na comment\n2\nHEADER\n0\nENDSEC\n0\nEOF\n",
        "0\nLINE\n10\n1.5\n999\ninside a point\n20\n2.5\n30\n0\n0\nEOF\n",  # ezdxf skips it there too
        "0\nLINE\n10\n1\n20\n2\n11\n3\n21\n4\n0\nEOF\n",  # 2-D points
        "0\nLINE\n62\n7.0\n70\n1.0\n0\nEOF\n",  # ProE: integers written as floats
        "0\nSECTION\r\n2\r\nENTITIES\r\n0\r\nENDSEC\r\n0\r\nEOF\r\n",  # Windows line ends
        "  0\nSECTION \n  2\nENTITIES\n0\nEOF\nthen\nanything\nat\nall\n",  # nothing after EOF is read
        "0\nSECTION\n2\nENTITIES\n0\nEOF",  # no final line break
        "0\nLINE\n1\nEOF\n0\nEOF\n",  # EOF as a text value is a value
        "0\nLINE\n310\n0A0B0C\n0\nEOF\n",  # binary data
        "0\nLINE\n10\n1\n20\n2\n",  # the file ends right after a point's y: ezdxf drops the point
        "0\nLINE\n10\n1\n",  # ... or before it
        "0\nLINE\n8\n",  # a last code without value
        "",
    ],
)
def test_odd_but_readable_text_gives_ezdxfs_tags(text, block):
    assert ours(text, block) == ezdxfs(text)


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize(
    "text",
    [
        "0\nSECTION\nX\nHEADER\n0\nEOF\n",  # a group code that is not a number
        "0\nLINE\n10\none\n20\n2\n30\n0\n0\nEOF\n",  # a coordinate that is not a number
        "0\nLINE\n10\n1\n30\n2\n0\nEOF\n",  # a point without its y
        "0\nLINE\n70\nseven\n0\nEOF\n",  # an integer that is not one
        "0\nLINE\n310\nXYZ\n0\nEOF\n",  # binary data that is not hex
        "0\nLINE\n8\n0\nX\n",  # a last code that is not a number
    ],
)
def test_what_ezdxf_refuses_is_left_to_ezdxf(text, block):
    with pytest.raises(ezdxf.DXFStructureError):
        ezdxfs(text)
    with pytest.raises(NotFast):
        read_tags(io.StringIO(text), block)


def test_a_refused_file_is_loaded_by_ezdxfs_reader_with_ezdxfs_verdict(tmp_path):
    """A bad group code makes the fast reader step aside: the load then ends as it did before it,
    in ezdxf's recovery, which skips the broken tag."""
    from documents.dxf_document import open_dxf

    text = a_drawing().replace("\n  8\n0\n", "\nX8\n0\n", 1)
    path = tmp_path / "bad-code.dxf"
    path.write_text(text)
    with pytest.raises(NotFast):
        read_tags(io.StringIO(text))
    loaded = open_dxf(path)
    assert loaded.recovered
    assert len(loaded.doc.modelspace()) == 5
