"""DXF metadata of real corpus files: every loadable corpus DXF against the manifest (as the batch
over the corpus catalogued it), and the references of an AutoCAD sample (generated drawings, and
the plain types of every table: tests/unit/test_dxf_metadata.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import ezdxf
import pandas as pd

from documents.dxf_document import open_dxf
from extractors.dxf_metadata import extract_metadata
from tests.conftest import REPO, catalog_table

sys.path.insert(0, str(REPO / "bench"))
import fidelity  # the file's own block names, as the fidelity check reads them


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


def test_every_loadable_corpus_dxf(corpus_batch):
    """The metadata of every ok/recover row, as the batch over the corpus catalogued it (its
    workers load each drawing once: no second parse here), checked against the manifest."""
    catalog = corpus_batch["out"] / "catalog"
    files = catalog_table(catalog.parent, "files").set_index("path")
    entities = catalog_table(catalog.parent, "entities").groupby("sha256")["count"].sum()
    layers = catalog_table(catalog.parent, "layers").groupby("sha256")["entity_count"].sum()
    texts = catalog_table(catalog.parent, "texts")
    layout_attribs = set(
        texts.loc[(texts["dxftype"] == "ATTRIB") & ~texts["layout"].str.startswith("block:"), "sha256"]
    )
    rows = [
        r for r in corpus_batch["rows"] if r["format"] in ("dxf", "dxf-binary") and r["ezdxf_load"] in ("ok", "recover")
    ]
    assert len(rows) > 150
    arrows = ezdxf_arrow_entities()
    problems = []
    for row in rows:
        s = files.loc[Path(row["path"]).name]
        if s["status"] != "ok":
            problems.append((row["path"], "not ok", s["error_message"]))
            continue
        if bool(s["recovered"]) != (row["ezdxf_load"] == "recover"):
            problems.append((row["path"], "recovered", s["recovered"]))
        if s["recovered"] and not any("recovery" in w for w in s["warnings"]):
            problems.append((row["path"], "no recovery warning"))
        if s["layout_count"] != int(row["layouts_count"]):
            problems.append((row["path"], "layouts", s["layout_count"]))
        if (None if pd.isna(s["dxf_version"]) else s["dxf_version"]) != (row["dxf_version"].split(" ")[0] or None):
            problems.append((row["path"], "version", s["dxf_version"]))
        # The manifest counted before the audit, which may delete broken entities, and, for R13
        # and R14, with the arrow blocks ezdxf adds when it upgrades such a file to R2000.
        total = s["entity_count"] + s["block_entity_count"]
        counted = int(row["entity_count"]) - (arrows if row["dxf_version"].split(" ")[0] in ("AC1012", "AC1014") else 0)
        if not counted - s["audit_fix_count"] <= total <= counted:
            problems.append((row["path"], "entities", total, row["entity_count"]))
        if (s["sha256"] in layout_attribs) != (int(row["inserts_with_attribs"]) > 0):
            problems.append((row["path"], "attribs", row["inserts_with_attribs"]))
        if entities.get(s["sha256"], 0) != s["entity_count"]:
            problems.append((row["path"], "entity table"))
        if layers.get(s["sha256"], 0) != s["entity_count"]:
            problems.append((row["path"], "layer counts"))
        if pd.isna(s["extents_source"]) != pd.isna(s["extents_min_x"]):
            problems.append((row["path"], "extents"))
    assert problems == []


def ezdxf_arrow_entities() -> int:
    """The entities of the 20 arrow blocks ezdxf adds to an R13/R14 drawing it upgrades to R2000."""
    doc = ezdxf.new("R2000")
    before = sum(len(block) for block in doc.blocks)
    doc.create_all_arrow_blocks()
    return sum(len(block) for block in doc.blocks) - before


def test_the_blocks_catalogued_are_the_files_own(corpus_batch, corpus_dir):
    """No block that ezdxf made up while loading (the arrow blocks of an R13/R14 upgrade) is listed
    as the drawing's: every catalogued block is named in the file."""
    files = catalog_table(corpus_batch["out"], "files").set_index("path")
    blocks = catalog_table(corpus_batch["out"], "blocks")
    checked, old_versions = 0, 0
    for row in corpus_batch["rows"]:
        if row["format"] not in ("dxf", "dxf-binary") or row["ezdxf_load"] != "ok":
            continue
        s = files.loc[Path(row["path"]).name]
        listed = {name.casefold() for name in blocks.loc[blocks["sha256"] == s["sha256"], "name"]}
        own = {name.casefold() for name in fidelity.block_names_in_file(corpus_dir / row["path"])}
        assert listed <= own, (row["path"], listed - own)
        checked += 1
        old_versions += row["dxf_version"].split(" ")[0] in ("AC1012", "AC1014")
    assert checked > 120 and old_versions >= 10, (checked, old_versions)
