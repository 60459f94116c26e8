"""SVG path data formatted by cadpipe: ezdxf's syntax, every vertex within half a unit."""

from __future__ import annotations

import re

import numpy as np
import pytest
from ezdxf.addons.drawing.svg import SVGRenderBackend
from ezdxf.math import Vec2
from ezdxf.npshapes import NumpyPath2d
from ezdxf.path import Path

from converters.svg_paths import lines_data, path_data, polyline_data

_SIZES = {"l": 1, "m": 1, "q": 2, "c": 3}


def absolute(d: str) -> tuple[list[str], list[tuple[float, float]]]:
    """Command letters and the absolute position of every point of an SVG path's data."""
    tokens = d.split()
    assert tokens[0] == "M"
    x, y = float(tokens[1]), float(tokens[2])
    letters, points, i, letter = ["M"], [(x, y)], 3, None
    while i < len(tokens):
        if re.fullmatch(r"[lmqcZ]", tokens[i]):
            letter = tokens[i]
            letters.append(letter)
            i += 1
            if letter == "Z":
                continue
        n = _SIZES[letter]
        base = (x, y)
        for _ in range(n):
            x, y = base[0] + float(tokens[i]), base[1] + float(tokens[i + 1])
            points.append((x, y))
            i += 2
    return letters, points


def random_path(rng, commands: int) -> Path:
    path = Path(start=tuple(rng.uniform(-5e5, 5e5, 2)))
    for _ in range(commands):
        kind = rng.integers(4)
        point = lambda: tuple(rng.uniform(-5e5, 5e5, 2))  # noqa: E731
        if kind == 0:
            path.line_to(point())
        elif kind == 1:
            path.curve3_to(point(), point())
        elif kind == 2:
            path.curve4_to(point(), point(), point())
        else:
            path.move_to(point())
    return path


@pytest.mark.parametrize("seed", range(20))
def test_paths_read_as_ezdxf_writes_them_and_never_drift(seed):
    rng = np.random.default_rng(seed)
    numpy_path = NumpyPath2d(random_path(rng, int(rng.integers(1, 400))))
    ours = path_data(numpy_path._vertices, numpy_path._commands, close=seed % 2 == 0)
    theirs = SVGRenderBackend.make_path_str(numpy_path, close=seed % 2 == 0)
    our_letters, our_points = absolute(ours)
    their_letters, their_points = absolute(theirs)
    assert our_letters == their_letters and len(our_points) == len(their_points)
    exact = numpy_path._vertices.tolist()
    # ezdxf's path data lists each curve's points in the stored order too (control, then end).
    assert max(max(abs(a - b) for a, b in zip(p, q)) for p, q in zip(our_points, exact)) <= 0.5


def test_polylines_and_line_segments():
    points = [Vec2(0.4, 0.6), Vec2(10.5, -3.5), Vec2(20.49, 7.51)]
    assert polyline_data(points) == "M 0 1 l 10 -5 10 12"
    assert polyline_data(points, close=True).endswith(" Z")
    assert polyline_data(points[:1]) == ""
    lines = [(Vec2(0, 0), Vec2(10, 0)), (Vec2(10, 5), Vec2(0, 5))]
    assert lines_data(lines) == "M 0 0 l 10 0 m 0 5 l -10 0" == SVGRenderBackend.make_multi_line_str(lines)


def test_an_empty_path_has_no_data():
    empty = NumpyPath2d(Path(start=(1, 2)))
    assert path_data(empty._vertices, empty._commands) == "" == SVGRenderBackend.make_path_str(empty)


def test_many_small_steps_do_not_add_up_to_an_error():
    # ezdxf rounds every relative step: 100 steps of 0.6 units come out as 100 steps of 1.
    path = Path(start=(0, 0))
    for i in range(1, 101):
        path.line_to((0.6 * i, 0))
    numpy_path = NumpyPath2d(path)
    _, ours = absolute(path_data(numpy_path._vertices, numpy_path._commands))
    _, theirs = absolute(SVGRenderBackend.make_path_str(numpy_path))
    assert ours[-1] == (60.0, 0.0)
    assert theirs[-1] == (100.0, 0.0), "the drift this module avoids"
