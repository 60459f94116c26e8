"""Fidelity over the real corpus, against LibreCAD as an independent reference renderer.

The batch's ``ok`` drawings are checked the way a CAD manager would: LibreCAD (Debian package
``librecad``, ``dxf2pdf``, offscreen) draws the same file; where it draws and cadpipe's page is
blank or holds far less ink, the test fails with the file's name. The catalog must hold every
entity ``ezdxf.readfile`` reads unless the warnings name what was removed; extents must agree
with what is drawn; no text escape may be left in the ``texts`` table.

The comparison is ``bench/fidelity.py``'s (its functions, the same verdicts).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import ezdxf
import pandas as pd
import pytest
from ezdxf import bbox

from tests.conftest import REPO, catalog_table

sys.path.insert(0, str(REPO / "bench"))
import fidelity


@pytest.fixture(scope="module")
def librecad_timeout(tmp_path_factory) -> float:
    """LibreCAD hangs on some files for good. The limit is 50 times what it takes for a small
    drawing here and now (at least 10 s; its median file takes about 0.2 s on an idle machine):
    a loaded machine stretches both alike, so no file is judged hung for the load alone."""
    if not fidelity.librecad_available():
        pytest.skip("LibreCAD is not installed (make test installs the Debian package librecad)")
    work, sample = tmp_path_factory.mktemp("librecad-calibration"), REPO / "data" / "samples" / "gear.dxf"
    fidelity.librecad_pdf(sample, work / "cold", timeout_s=600)  # the first start reads LibreCAD from disk
    status, seconds, _ = fidelity.librecad_pdf(sample, work / "warm", timeout_s=600)
    assert status == "ok", "LibreCAD cannot draw the sample drawing"
    return round(max(10.0, 50 * seconds), 1)


@pytest.fixture(scope="module")
def comparison(corpus_batch, librecad_timeout):
    return fidelity.compare(corpus_batch["lib"], corpus_batch["out"], jobs=2, timeout_s=librecad_timeout)


def test_no_ok_drawing_is_blank_or_far_emptier_than_librecad_draws_it(comparison):
    referenced = [r for r in comparison if r.verdict != "no-reference"]
    assert len(referenced) >= 100, "LibreCAD judged too few drawings for the test to mean anything"
    bad = [
        f"{r.path}: {r.verdict} (cadpipe ink {r.cadpipe_ink:.4f}, LibreCAD {r.librecad.ink})"
        for r in comparison
        if r.verdict in ("blank", "less")
    ]
    assert not bad, "\n".join(bad)


def test_no_ok_drawing_loses_entities_its_warnings_do_not_name(comparison):
    lost = [
        f"{r.path}: ezdxf reads {r.entities_ezdxf}, the catalog keeps {r.entities_kept}"
        for r in comparison
        if r.verdict == "lost"
    ]
    assert not lost, "\n".join(lost)


def ok_drawings(out: Path) -> pd.DataFrame:
    files = catalog_table(out, "files")
    return files[(files["status"] == "ok") & files["format"].isin(["dxf", "dxf-binary"])]


@dataclass(frozen=True)
class Read:
    """What plain `ezdxf.readfile` makes of a drawing: read once for every check below."""

    entities: int  # in every block of the file, layouts included
    drawn: bbox.BoundingBox  # the modelspace's extents, measured entity by entity


@pytest.fixture(scope="module")
def ezdxf_reads(corpus_batch) -> dict[str, Read]:
    """The batch's ok drawings as ezdxf reads them; those only `ezdxf.recover` loads are left out."""
    reads = {}
    for row in ok_drawings(corpus_batch["out"]).itertuples():
        try:
            doc = ezdxf.readfile(Path(row.source_root) / row.path)
        except Exception:
            continue
        added = fidelity.blocks_ezdxf_adds(doc, Path(row.source_root) / row.path)  # not the file's
        entities = sum(1 for block in doc.blocks if block.name not in added for _ in block)
        reads[row.path] = Read(entities, measure(doc.modelspace()))
    return reads


def test_catalog_entity_counts_hold_what_ezdxf_reads(corpus_batch, ezdxf_reads):
    for row in ok_drawings(corpus_batch["out"]).itertuples():
        if row.path not in ezdxf_reads:
            continue  # only ezdxf.recover loads it
        read = ezdxf_reads[row.path].entities
        assert row.entities_read == read, row.path
        assert row.entity_count + row.block_entity_count == row.entities_kept, row.path
        if row.entities_kept < read:
            assert any(w.startswith("removed ") for w in row.warnings), (row.path, list(row.warnings))


def test_catalog_extents_agree_with_the_drawn_geometry(corpus_batch, ezdxf_reads):
    checked = 0
    for row in ok_drawings(corpus_batch["out"]).itertuples():
        if row.extents_source is None or not isinstance(row.extents_source, str):
            continue
        if row.path not in ezdxf_reads:
            continue
        drawn = ezdxf_reads[row.path].drawn
        if not drawn.has_data:
            continue
        diagonal = math.dist((drawn.extmin.x, drawn.extmin.y), (drawn.extmax.x, drawn.extmax.y)) or 1.0
        stored = (row.extents_min_x, row.extents_min_y, row.extents_max_x, row.extents_max_y)
        want = (drawn.extmin.x, drawn.extmin.y, drawn.extmax.x, drawn.extmax.y)
        off = max(abs(a - b) for a, b in zip(stored, want)) / diagonal
        assert off <= 0.05, f"{row.path}: catalog extents {stored} are {off:.0%} of the diagonal from {want}"
        checked += 1
    assert checked >= 100


def measure(msp) -> bbox.BoundingBox:
    box = bbox.BoundingBox()
    for entity in msp:
        try:
            part = bbox.extents((entity,), fast=False)
        except Exception:
            continue
        if part.has_data:
            box.extend((part.extmin, part.extmax))
    return box


def test_no_text_escape_is_left_in_the_texts_table(corpus_batch):
    texts = catalog_table(corpus_batch["out"], "texts")
    assert len(texts) > 1000
    for pattern in (r"\\U\+[0-9A-Fa-f]{4}", r"\\M\+[1-5][0-9A-Fa-f]{4}", r"\\~", r"%%\d{3}"):
        left = texts[texts["text"].str.contains(pattern, regex=True)]
        assert left.empty, f"{pattern} left in: {left[['sha256', 'text']].head().values.tolist()}"


def test_the_fidelity_script_runs_and_prints_its_summary(tmp_path, corpus_dir, cli_env, librecad_timeout):
    lib = tmp_path / "lib"
    lib.mkdir()
    for name in (
        "test__resources__hatches.dxf",
        "tests__testdata__rational_spline.dxf",
        "test__resources__array-rotated.dxf",
    ):
        source = next(corpus_dir.glob(f"files/*/{name}"))
        (lib / name).write_bytes(source.read_bytes())
    import subprocess

    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "fidelity.py"),
            str(lib),
            "--out",
            str(tmp_path / "out"),
            "--timeout",
            str(librecad_timeout),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=cli_env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("3 ok drawings: 3 ok"), done.stdout
