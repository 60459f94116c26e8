"""SVG path formatting: ezdxf's own against converters/svg_paths.py, side by side in one run.

    .venv/bin/python bench/render_paths.py [DXF ...] [--repeat 3]

Renders each drawing's modelspace to SVG with cadpipe's backend twice per round, once with
ezdxf's path formatting and once with ours, alternating which goes first, and prints the best time
of each and the ratio. Default drawings: the corpus's text-heavy and entity-heavy ones.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ezdxf.addons.drawing.svg import SVGRenderBackend

from converters import dxf_render
from documents.dxf_document import open_dxf

DEFAULT = [
    "files/ezdxf/examples_dxf__mtext_complex_inline_codes.dxf",
    "files/ezdxf/examples__edgeminer__3_us_main.dxf",
    "files/acadsharp/samples__sample_AC1009_ascii.dxf",
    "files/ezdxf/examples_dxf__colors.dxf",
]
_NAMES = ("make_path_str", "make_polyline_str", "make_multi_line_str")


def formatting(backend_class: type, source: type) -> None:
    for name in _NAMES:
        setattr(backend_class, name, source.__dict__[name])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("drawings", nargs="*", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    corpus = Path(os.environ.get("CADPIPE_CORPUS", REPO.parent / "shared" / "corpus"))
    drawings = args.drawings or [corpus / rel for rel in DEFAULT]
    backend = dxf_render._InlineStyleRenderBackend
    ours = {name: backend.__dict__[name] for name in _NAMES}
    total = {"ezdxf": 0.0, "cadpipe": 0.0}
    for path in drawings:
        doc = open_dxf(path).doc
        best = {"ezdxf": float("inf"), "cadpipe": float("inf")}
        for round_ in range(args.repeat):
            for which in ("ezdxf", "cadpipe") if round_ % 2 == 0 else ("cadpipe", "ezdxf"):
                if which == "ezdxf":
                    formatting(backend, SVGRenderBackend)
                else:
                    for name, function in ours.items():
                        setattr(backend, name, function)
                started = time.perf_counter()
                dxf_render._render_svg(doc, doc.modelspace(), dxf_render.PageSpec(), path.name)
                best[which] = min(best[which], time.perf_counter() - started)
        for name, function in ours.items():
            setattr(backend, name, function)
        total["ezdxf"] += best["ezdxf"]
        total["cadpipe"] += best["cadpipe"]
        print(
            f"{path.name[:50]:50} ezdxf {best['ezdxf']:.3f} s  cadpipe {best['cadpipe']:.3f} s  ratio {best['cadpipe'] / best['ezdxf']:.2f}"
        )
    print(
        f"total: ezdxf {total['ezdxf']:.3f} s, cadpipe {total['cadpipe']:.3f} s, ratio {total['cadpipe'] / total['ezdxf']:.2f} (best of {args.repeat}, SVG render of the modelspace)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
