"""Loading real corpus DXF/DWG files: binary, recovered, refused, truncated (generated inputs: tests/unit/test_dxf_document.py)."""

from __future__ import annotations

import re
from pathlib import Path

import ezdxf
import pytest

from documents.dxf_document import open_dxf
from documents.errors import InputError


def rows(manifest: list[dict[str, str]], **match: str) -> list[str]:
    found = [r["path"] for r in manifest if all(r[k] == v for k, v in match.items())]
    assert found, match  # the corpus must still hold such files
    return found


def test_corpus_binary_dxf(corpus_dir, manifest):
    for rel in rows(manifest, format="dxf-binary")[:4]:
        loaded = open_dxf(corpus_dir / rel)
        assert loaded.recovered is False, rel
        assert len(loaded.doc.modelspace()) > 0, rel


def test_corpus_files_that_need_recovery(corpus_dir, manifest):
    for rel in rows(manifest, ezdxf_load="recover"):
        assert open_dxf(corpus_dir / rel).recovered is True, rel


def test_corpus_files_that_cannot_load(corpus_dir, manifest):
    for rel in rows(manifest, ezdxf_load="fail"):
        with pytest.raises(InputError) as info:
            open_dxf(corpus_dir / rel)
        message = str(info.value)
        assert message.startswith(f"{Path(rel).name}: cannot load DXF: "), message
        assert ("recovery failed" in message or "recovery fails the same way" in message) and len(message) < 700
        # ezdxf names an entity without a handle by its Python object id: never quote it.
        assert not re.search(r"#\d{12,}", message), message
        cause = message.split("cannot load DXF: ", 1)[1].split(";", 1)[0]
        assert message.count(cause) == 1, f"the same cause twice: {message}"


def test_corpus_dwg_loads_through_its_reader(corpus_dir, manifest):
    for rel in rows(manifest, format="dwg"):
        loaded = open_dxf(corpus_dir / rel, dwg_readers=["pycadkit"])
        assert len(loaded.doc.layouts) >= 1, rel
        assert loaded.dwg.reader == "pycadkit" and loaded.dwg.dwg_version == loaded.header_vars["$ACADVER"]
        assert loaded.recovered is False and not loaded.audit_errors, rel


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.95])
def test_truncated_dxf_is_refused(tmp_path, corpus_dir, fraction):
    data = (corpus_dir / "files/acadsharp/samples__dynamic-blocks__BLOCKXYPARAMETER.dxf").read_bytes()
    cut = tmp_path / "cut.dxf"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(InputError, match=r"cut\.dxf: (truncated DXF|cannot load DXF)"):
        open_dxf(cut)


def test_every_ascii_corpus_dxf_gives_ezdxfs_own_tags_or_is_left_to_ezdxf(corpus_dir, manifest):
    """documents/dxf_tags.py against ezdxf's reader on every ASCII DXF of the corpus: the same tags,
    type for type and value for value; where ezdxf's reader refuses, so does ours."""
    from ezdxf.filemanagement import dxf_file_info
    from ezdxf.lldxf.tagger import ascii_tags_loader, tag_compiler

    from documents.dxf_tags import NotFast, read_tags

    def tag_list(tags):
        return [
            (type(t).__name__, t.code, tuple(t.value) if type(t).__name__ == "DXFVertex" else t.value) for t in tags
        ]

    same = refused = 0
    for rel in rows(manifest, format="dxf"):
        path = str(corpus_dir / rel)
        encoding = dxf_file_info(path).encoding
        with open(path, encoding=encoding, errors="surrogateescape") as fp:
            try:
                theirs = tag_list(tag_compiler(ascii_tags_loader(fp)))
            except ezdxf.DXFStructureError:
                theirs = None
        with open(path, encoding=encoding, errors="surrogateescape") as fp:
            try:
                mine = tag_list(read_tags(fp, block_chars=4093))  # blocks end inside lines and points
            except NotFast:
                mine = None
        if theirs is None:
            assert mine is None, rel
            refused += 1
        else:
            assert mine == theirs, rel
            same += 1
    assert same >= 130 and refused < 10, (same, refused)
