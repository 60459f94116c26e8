"""Real corpus drawings survive a recipe that matches nothing: not rewritten, nothing lost (generated
drawings: tests/unit/test_edit_file.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

from editors.edit_file import edit_file
from tests.edit_drawings import sha256
from tests.unit.test_edit_file import SETTINGS, recipe

# Corpus drawings of every version, ASCII and binary, some needing recovery, one with a title-block
# like insert: a recipe whose operations match nothing must leave each file exactly as it is.
CORPUS_SAMPLE = [
    "files/ezdxf/examples_dxf__Minimal_DXF_AC1009.dxf",
    "files/assimp/test__models__DXF__lineTest.dxf",
    "files/ixmilia-dxf/src__IxMilia.Dxf.Test__diamond-bin.dxf",
    "files/ezdxf/integration_tests__data__empty_handles.dxf",
    "files/ezdxf/integration_tests__data__AC1003_LINE_Example.dxf",
    "files/ezdxf/integration_tests__data__bin_dxf_r12.dxf",
    "files/trimesh/models__2D__versions__uc.r14b.dxf",
    "files/cadquery/tests__testdata__rational_spline.dxf",
    "files/ezdxf/examples_dxf__text_alignments.dxf",
    "files/ezdxf/examples_dxf__mtext_columns_R2018.dxf",
    "files/netdxf/TestDxfDocument.NETCore__sample_2000.dxf",
]
NO_OP = r"""
operations:
  - set_attributes: {tags: {CADPIPE_NO_SUCH_TAG: x}, blocks: ["*"]}
  - replace_text: {pattern: 'CADPIPE-NO-MATCH-\d{9}', replacement: x}
  - rename_layer: {from: CADPIPE_NO_SUCH_LAYER, to: CADPIPE_OTHER}
  - set_layer: {layer: "CADPIPE_NO_SUCH_LAYER*", color: 3}
  - redefine_block: {block: CADPIPE_NO_SUCH_BLOCK, source: lib/tb.dxf, source_block: TB-A3}
"""


def test_corpus_drawings_survive_a_recipe_that_matches_nothing(tmp_path, corpus_dir, manifest):
    rows = {row["path"]: row for row in manifest}
    rec = recipe(tmp_path, NO_OP)
    for rel in CORPUS_SAMPLE:
        src = tmp_path / "corpus" / Path(rel).name
        src.parent.mkdir(exist_ok=True)
        shutil.copy2(corpus_dir / rel, src)
        dest = tmp_path / "rev" / src.name
        edit = edit_file(src, rec, SETTINGS, dest=dest)
        assert (edit.status, edit.changes) == ("unchanged", []), rel
        assert sha256(src) == rows[rel]["sha256"] == edit.sha256_before, rel
    assert not (tmp_path / "rev").exists()
