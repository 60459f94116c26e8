"""ezdxf's viewport clipping with the same output, without measuring every sub-path that lies
wholly inside (or far outside) a rectangular viewport.

A paperspace viewport draws the modelspace again, through ezdxf's clipping portal. For each
path (a text is one path of all its glyphs, a hatch one of all its lines) ezdxf splits it into
its sub-paths, measures each one's box (building a ``Vec2`` per vertex) and keeps it when the
box lies inside the clipping rectangle, drops it when outside, and clips it otherwise. On the
corpus's text-heavy layouts that measuring was a third of the drawing. Here the whole path's box
is measured once (NumPy, on its vertex array): when it lies inside the rectangle every sub-path
does, and they are kept as ezdxf keeps them (the same sub-path objects, the same checks); when it
lies strictly apart from the rectangle no sub-path can be inside or touch it, and all are
dropped. Any other path, and every clipping shape other than a rectangle, takes ezdxf's own
code. The sub-paths come out in the same order, so the SVG is byte-identical.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ezdxf.npshapes import NumpyPath2d
from ezdxf.tools.clipping_portal import ClippingPortal, ClippingRect, ClippingShape, ClippingStage

_INSIDE, _APART, _ELSE = 0, 1, 2


class FastClippingPortal(ClippingPortal):
    """ezdxf's ``ClippingPortal``; paths through rectangles are sorted per path, not per sub-path."""

    def clip_paths(self, paths: Iterable[NumpyPath2d], max_sagitta: float) -> list[NumpyPath2d]:
        return self._through_stages(paths, max_sagitta, filled=False)

    def clip_filled_paths(self, paths: Iterable[NumpyPath2d], max_sagitta: float) -> list[NumpyPath2d]:
        return self._through_stages(paths, max_sagitta, filled=True)

    def _through_stages(self, paths: Iterable[NumpyPath2d], max_sagitta: float, filled: bool) -> list[NumpyPath2d]:
        # ezdxf's ClippingPortal.clip_paths / clip_filled_paths, stage by stage
        def do(stage: ClippingStage) -> bool:
            paths = list(result)
            result.clear()
            for path in paths:
                if stage.transform:
                    path.transform_inplace(stage.transform)
            result.extend(_clip(stage.portal, paths, max_sagitta, filled))
            return bool(result)

        result = list(paths)
        self.foreach_stage(do)
        return result


def _clip(portal: ClippingShape, paths: list[NumpyPath2d], max_sagitta: float, filled: bool) -> Iterator[NumpyPath2d]:
    if type(portal) is not ClippingRect or portal.remove_all:
        yield from portal.clip_filled_paths(paths, max_sagitta) if filled else portal.clip_paths(paths, max_sagitta)
        return
    box = portal.bbox()
    rect = (box.extmin.x, box.extmin.y, box.extmax.x, box.extmax.y)
    for path in paths:
        where = _where(path, rect)
        if where == _INSIDE:
            for sub_path in path.sub_paths():
                # ezdxf's own checks before its box test: too short to fill, or no vertices
                if (len(sub_path) >= 2) if filled else (len(sub_path.np_vertices()) > 0):
                    yield sub_path
        elif where == _ELSE:
            yield from (
                portal.clip_filled_paths([path], max_sagitta) if filled else portal.clip_paths([path], max_sagitta)
            )


def _where(path: NumpyPath2d, rect: tuple[float, float, float, float]) -> int:
    """Where the box of all of `path`'s vertices lies: inside `rect` (borders included, as
    ezdxf's ``BoundingBox2d.contains``), strictly apart from it, or else (NaN included)."""
    vertices = path.np_vertices()
    if len(vertices) == 0:
        return _ELSE
    (x0, y0), (x1, y1) = vertices.min(axis=0).tolist(), vertices.max(axis=0).tolist()
    left, bottom, right, top = rect
    if left <= x0 and x1 <= right and bottom <= y0 and y1 <= top:
        return _INSIDE
    if x0 > right or x1 < left or y0 > top or y1 < bottom:
        return _APART
    return _ELSE
