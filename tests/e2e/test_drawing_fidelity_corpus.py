"""Drawing fidelity on real corpus drawings: a blank page names what it left out, entities ezdxf cannot
draw are named once (generated drawings: tests/unit/test_drawing_fidelity.py)."""

from __future__ import annotations

from converters.dxf_render import RenderOptions, render_dxf
from tests.unit.test_drawing_fidelity import PNG_ONLY, load


def test_a_blank_page_for_a_drawing_with_content_names_every_entity_left_out(tmp_path, corpus_dir):
    # An ACIS torus: ezdxf cannot draw ACIS solids (nor does LibreCAD): the page says why it is blank.
    src = corpus_dir / "files/ezdxf/exploration__acis__torus_r2010.dxf"
    loaded, _ = load(src)
    result = render_dxf(loaded.doc, tmp_path / "render", PNG_ONLY)
    assert result.layouts[0].empty
    assert any("has nothing to draw (its entity drew nothing)" in w for w in result.warnings), result.warnings
    assert any("1 3DSOLID (unsupported)" in w for w in result.warnings), result.warnings


def test_entities_ezdxf_cannot_draw_are_named_once_not_per_viewport(tmp_path, corpus_dir):
    # Its modelspace holds TOLERANCE, 3DSOLID, REGION, SHAPE and a PDF underlay; three paperspace
    # layouts show the modelspace through viewports.
    loaded, _ = load(corpus_dir / "files/acadsharp/samples__sample_AC1032_binary.dxf")
    result = render_dxf(loaded.doc, tmp_path / "render", RenderOptions(formats=("svg",)))
    named = [w for w in result.warnings if "not drawn" in w]
    assert len(named) == 1 and "layout 'Model': 8 entities not drawn: 3 TOLERANCE (unsupported)" in named[0]
