"""DXF metadata of real corpus files: every loadable corpus DXF against the manifest, and the
references of an AutoCAD sample (generated drawings: tests/unit/test_dxf_metadata.py)."""

from __future__ import annotations

from documents.dxf_document import open_dxf
from extractors.dxf_metadata import extract_metadata
from tests.unit.test_dxf_metadata import assert_plain_tables


def test_acadsharp_sample_refs(corpus_dir):
    path = corpus_dir / "files/acadsharp/samples__sample_AC1032_binary.dxf"
    meta = extract_metadata(open_dxf(path), path)
    assert {(r["kind"], r["path"], r["exists"]) for r in meta.refs} == {
        ("image", ".\\image.JPG", False),
        ("underlay", "..\\pdf-definition.pdf", False),
    }
    assert "missing image: .\\image.JPG" in meta.warnings
    assert meta.summary["layout_count"] == 4 and meta.summary["units"] == "in"
    assert any(t["dxftype"] == "ATTRIB" and t["tag"] == "PRESET_ATT" for t in meta.texts)


def test_every_loadable_corpus_dxf(corpus_dir, manifest):
    """Loading + metadata for every ok/recover row, checked against the manifest."""
    rows = [r for r in manifest if r["format"] in ("dxf", "dxf-binary") and r["ezdxf_load"] in ("ok", "recover")]
    assert len(rows) > 150
    problems = []
    for row in rows:
        path = corpus_dir / row["path"]
        loaded = open_dxf(path)
        meta = extract_metadata(loaded, path)
        assert_plain_tables(meta)
        s = meta.summary
        if s["recovered"] != (row["ezdxf_load"] == "recover"):
            problems.append((row["path"], "recovered", s["recovered"]))
        if s["recovered"] and not any("recovery" in w for w in meta.warnings):
            problems.append((row["path"], "no recovery warning"))
        if s["layout_count"] != int(row["layouts_count"]):
            problems.append((row["path"], "layouts", s["layout_count"]))
        if s["dxf_version"] != (row["dxf_version"].split(" ")[0] or None):
            problems.append((row["path"], "version", s["dxf_version"]))
        # The manifest counted before the audit, which may delete broken entities.
        total = s["entity_count"] + s["block_entity_count"]
        if not int(row["entity_count"]) - s["audit_fix_count"] <= total <= int(row["entity_count"]):
            problems.append((row["path"], "entities", total, row["entity_count"]))
        layout_attribs = any(t["dxftype"] == "ATTRIB" and not t["layout"].startswith("block:") for t in meta.texts)
        if layout_attribs != (int(row["inserts_with_attribs"]) > 0):
            problems.append((row["path"], "attribs", row["inserts_with_attribs"]))
        if sum(r["count"] for r in meta.entities) != s["entity_count"]:
            problems.append((row["path"], "entity table"))
        if sum(r["entity_count"] for r in meta.layers) != s["entity_count"]:
            problems.append((row["path"], "layer counts"))
        if (s["extents_source"] is None) != (s["extents_min_x"] is None):
            problems.append((row["path"], "extents"))
    assert problems == []
