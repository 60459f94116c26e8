"""Format sniffing of every real corpus file, against the manifest and its known mistakes (generated
samples: tests/unit/test_file_kind.py)."""

from __future__ import annotations

from documents.file_kind import sniff_format

# The corpus manifest is wrong about these files; the test pins what the content really is.
MANIFEST_MISTAKES = {
    # Named .igs, listed as "ASCII STL", but it is a SolidWorks IGES file: its first record starts
    # "SolidWorks IGES file ..." (a naive "starts with solid" check), column 73 holds S / G.
    "files/occt/data__iges__bug22566_test_Bad.igs": "iges"
}


def test_every_corpus_file_matches_the_manifest(corpus_dir, manifest):
    wrong = {}
    for row in manifest:
        expected = MANIFEST_MISTAKES.get(row["path"], row["format"])
        found = sniff_format(corpus_dir / row["path"])
        if found != expected:
            wrong[row["path"]] = (row["format"], found)
    assert not wrong
    assert {row["format"] for row in manifest} >= {"dxf", "dxf-binary", "dwg", "step", "iges", "stl"}


def test_manifest_mistake_is_really_iges(corpus_dir, manifest):
    for rel in MANIFEST_MISTAKES:
        row = next(r for r in manifest if r["path"] == rel)
        assert row["format"] == "stl"  # still wrong upstream; drop the entry once fixed
        first = (corpus_dir / rel).read_text(encoding="latin-1").splitlines()[0]
        assert first.lower().startswith("solid") and first[72] == "S"
