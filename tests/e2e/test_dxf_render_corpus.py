"""Rendering a varied sample of real corpus drawings to SVG/PDF/PNG (generated drawings:
tests/unit/test_dxf_render.py)."""

from __future__ import annotations

from pathlib import Path

import ezdxf
import pytest

from converters.dxf_render import RenderOptions, render_dxf
from tests.unit.test_dxf_render import all_white, assert_no_temp_files, assert_valid_outputs, png_pixmap

# A varied sample of real files; all load with plain ezdxf.readfile (manifest ezdxf_load = ok).
CORPUS_SAMPLE = [
    "files/ezdxf/examples_dxf__mtext_complex_inline_codes.dxf",  # slow MTEXT-heavy page
    "files/netdxf/TestDxfDocument__sample_binary.dxf",  # binary DXF with a paperspace layout
    "files/trimesh/models__2D__versions__ae.r2013b.dxf",  # binary DXF
    "files/acadsharp/samples__geolocation__geoloc.dxf",  # empty bounding box
    "files/ezdxf/exploration__acis__torus_r2010.dxf",  # only a 3DSOLID: nothing ezdxf can draw
    "files/ezdxf/examples_dxf__text.dxf",  # two paperspace layouts
    "files/ezdxf/examples_dxf__VP4.dxf",  # paperspace viewports onto the modelspace
    "files/bjnortier-dxf/test__resources__entities.dxf",  # hatches, dimensions, splines, leaders
    "files/ezdxf/examples_dxf__wipeout_door.dxf",
    "files/ezdxf/examples_dxf__image__images.dxf",  # IMAGE referencing missing raster files
    "files/trimesh/models__2D__versions__ae.r12a.dxf",  # R12
    "files/dxf-parser/test__data__extendeddata.dxf",  # paperspace with only its main viewport
    "files/ezdxf/integration_tests__data__layout_broken_links.dxf",
    "files/bjnortier-dxf/test__resources__array-rotated.dxf",  # its only INSERT has z-scale 0
]
EXPECTED_PAPERSPACE = {
    "TestDxfDocument__sample_binary.dxf": ["layout-layout1"],
    "examples_dxf__text.dxf": ["layout-layout1", "layout-layout2"],
    "examples_dxf__VP4.dxf": ["layout-layout1"],
}
EXPECTED_BLANK_MODEL = {
    "samples__geolocation__geoloc.dxf",
    "exploration__acis__torus_r2010.dxf",
    "integration_tests__data__layout_broken_links.dxf",
    "test__resources__array-rotated.dxf",
}
# ezdxf raises on these entities (ZeroDivisionError for the z-scale 0); they are left out.
EXPECTED_FAILURES = {"test__resources__array-rotated.dxf": "INSERT(#57) (ZeroDivisionError"}


@pytest.mark.parametrize("relpath", CORPUS_SAMPLE, ids=lambda p: Path(p).name)
def test_corpus_sample_renders(relpath, manifest, corpus_copy, tmp_path):
    [row] = [r for r in manifest if r["path"] == relpath]
    assert row["ezdxf_load"] == "ok" and row["format"] in ("dxf", "dxf-binary")
    name = Path(relpath).name
    doc = ezdxf.readfile(corpus_copy(relpath) / name)

    result = render_dxf(doc, tmp_path / "out", RenderOptions(png_dpi=100))

    stems = [r.stem for r in result.layouts]
    assert stems == ["model", *EXPECTED_PAPERSPACE.get(name, [])]
    model = result.layouts[0]
    if int(row["entity_count"]) == 0:
        assert model.empty
    assert model.empty == (name in EXPECTED_BLANK_MODEL)
    assert sum("nothing to draw" in w for w in result.warnings) == sum(r.empty for r in result.layouts)
    failures = [w for w in result.warnings if "could not be drawn" in w]
    if name in EXPECTED_FAILURES:
        assert len(failures) == 1 and EXPECTED_FAILURES[name] in failures[0]
    else:
        assert failures == []
    for rendered in result.layouts:
        assert_valid_outputs(rendered)
        assert rendered.png_dpi == 100
        assert all_white(png_pixmap(rendered.files["png"])) == rendered.empty
    assert_no_temp_files(tmp_path / "out")
    assert len(list((tmp_path / "out").iterdir())) == 4 * len(result.layouts)  # svg, pdf, png, thumbnail
