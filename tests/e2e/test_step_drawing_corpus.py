"""A real corpus model without faces cannot be drawn (generated models: tests/unit/test_step_drawing.py)."""

from __future__ import annotations

import pytest

from converters.step_drawing import render_views
from documents.errors import InputError
from documents.step_document import open_step


def test_model_without_faces_cannot_be_drawn(corpus_copy, tmp_path):
    folder = corpus_copy("files/occt/data__step__bug27333_simple.stp")
    with pytest.raises(InputError):
        render_views(open_step(folder / "data__step__bug27333_simple.stp"), tmp_path)
