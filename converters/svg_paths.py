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

# ezdxf.path.Command codes: 1 LINE_TO, 2 CURVE3_TO, 3 CURVE4_TO, 4 MOVE_TO; the points each
# stores (1, a quadratic's control then end, a cubic's two controls then end, 1), and their letters.
_LETTERS = ("", "l", "q", "c", "m")


def path_data(vertices, commands, close: bool = False) -> str:
    """``d`` of one ezdxf ``NumpyPath2d``: its `vertices` (N x 2 array: the start point, then each
    command's points) and `commands` (array of command codes). All coordinates are rounded in one
    pass, then each command is one f-string of its steps (a fifth faster than a token per number)."""
    codes = commands.tolist()
    if not codes:
        return ""
    r = [round(v) for v in vertices.ravel().tolist()]  # x0, y0, x1, y1 ...
    x, y = r[0], r[1]
    parts = [f"M {x} {y}"]
    append = parts.append
    i = 2
    for code in codes:  # every point of a command is relative to where the command starts
        if code == 2:
            append(f"q {r[i] - x} {r[i + 1] - y} {r[i + 2] - x} {r[i + 3] - y}")
            i += 4
        elif code == 1:
            append(f"l {r[i] - x} {r[i + 1] - y}")
            i += 2
        elif code == 3:
            append(f"c {r[i] - x} {r[i + 1] - y} {r[i + 2] - x} {r[i + 3] - y} {r[i + 4] - x} {r[i + 5] - y}")
            i += 6
        else:
            append(f"{_LETTERS[code]} {r[i] - x} {r[i + 1] - y}")
            i += 2
        x, y = r[i - 2], r[i - 1]
    if close:
        append("Z")
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
