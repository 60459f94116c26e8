"""Title blocks of real corpus drawings: a sheet block, and drawings without one (generated drawings:
tests/unit/test_title_block.py)."""

from __future__ import annotations

from pathlib import Path

import ezdxf
import pytest

from extractors.title_block import title_block
from tests.unit.test_title_block import NOTHING

CW750 = "files/dxf-parser/samples__data__api-cw750-details.dxf"


def test_corpus_sheet_blocks(corpus_copy):
    """The curtain-wall sheets carry their title block as a block named "11x17" on each sheet."""
    doc = ezdxf.readfile(corpus_copy(CW750) / Path(CW750).name)
    assert title_block(doc) == {
        **NOTHING,
        "date": "12-13-10",
        "drawn_by": "SW",
        "scale": "N.T.S",
        "sheet": "1 of 4",
        "title_block_name": "11x17",
        "title_block_layout": "Sheet 1",
    }


@pytest.mark.parametrize(
    "name", ["files/ezdxf/examples_dxf__uncommon.dxf", "files/netdxf/TestDxfDocument.NETCore__sample_2018.dxf"]
)
def test_corpus_drawings_without_title_block(corpus_copy, name):
    doc = ezdxf.readfile(corpus_copy(name) / Path(name).name)
    assert title_block(doc) == NOTHING
