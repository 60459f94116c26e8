"""SVG path data (``d``) from ezdxf's drawing paths, with integer arithmetic.

ezdxf's SVG backend builds a ``Vec2`` per command and formats each coordinate pair with
``str.format("{0.x:.0f} {0.y:.0f}")``: on a text-heavy page (text is drawn as glyph outlines,
hundreds of thousands of curve commands) that is most of the render. Here the path's vertex list is
read once (``tolist()`` of its NumPy array), each vertex is rounded to the integer view-box grid
with ``round`` (the same half-to-even rounding as ``.0f``), and the relative steps are integer
differences turned into text with ``str``: the SVG render of the corpus's text-heaviest page takes
0.55 of the time, four heavy pages together 0.69 (``bench/render_paths.py``). A NumPy version of the same was slower: most paths hold a handful of
commands, and NumPy's per-call cost outweighs its speed there.

The output is ezdxf's SVG syntax (``M x y``, then relative ``l``/``q``/``c``/``m`` commands,
integer coordinates), and slightly more exact: ezdxf rounds each relative step on its own, so a
long path drifts by up to a unit per command; rounding absolute positions first keeps every vertex
within half a unit of where it belongs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

# ezdxf.path.Command codes: 1 LINE_TO, 2 CURVE3_TO, 3 CURVE4_TO, 4 MOVE_TO; vertices each stores
# (a quadratic's control then end, a cubic's two controls then end), and their SVG letters.
_SIZES = (0, 1, 2, 3, 1)
_LETTERS = ("", "l", "q", "c", "m")


def path_data(vertices, commands, close: bool = False) -> str:
    """``d`` of one ezdxf ``NumpyPath2d``: its `vertices` (N x 2 array: the start point, then each
    command's points) and `commands` (array of command codes)."""
    codes = commands.tolist()
    if not codes:
        return ""
    points = vertices.tolist()
    x, y = round(points[0][0]), round(points[0][1])
    parts = ["M", str(x), str(y)]
    index = 1
    for code in codes:
        parts.append(_LETTERS[code])
        base_x, base_y = x, y  # every point of a command is relative to where it starts
        for point in points[index : index + _SIZES[code]]:
            x, y = round(point[0]), round(point[1])
            parts += (str(x - base_x), str(y - base_y))
        index += _SIZES[code]
    if close:
        parts.append("Z")
    return " ".join(parts)


def polyline_data(points: Sequence, close: bool = False) -> str:
    """``d`` of a polyline: ``M`` to the first point, then one relative ``l`` run."""
    if len(points) < 2:
        return ""
    x, y = round(points[0][0]), round(points[0][1])
    parts = ["M", str(x), str(y), "l"]
    for point in points[1:]:
        next_x, next_y = round(point[0]), round(point[1])
        parts += (str(next_x - x), str(next_y - y))
        x, y = next_x, next_y
    if close:
        parts.append("Z")
    return " ".join(parts)


def lines_data(lines: Iterable[tuple]) -> str:
    """``d`` of separate line segments: ``M`` to the first start, then ``l`` to its end, ``m`` to
    the next start, and so on."""
    parts: list[str] = []
    x = y = 0
    for start, end in lines:
        start_x, start_y = round(start[0]), round(start[1])
        if parts:
            parts += ("m", str(start_x - x), str(start_y - y))
        else:
            parts += ("M", str(start_x), str(start_y))
        x, y = round(end[0]), round(end[1])
        parts += ("l", str(x - start_x), str(y - start_y))
    return " ".join(parts)
