"""Generated drawings for the deliverables' tests, and a run of the engine without Prefect.

`catalogue` does what the batch flow does for each file (discover, plan, process, publish, docs,
deliverables) in this process, one file after the other: the real work and catalog, fast enough
to run for every case. tests/e2e/test_deliverables_batch.py runs the real flow.
"""

from __future__ import annotations

import uuid
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import ezdxf

from engine.catalog import Catalog, Outcome, now_iso
from engine.config import fingerprint, load_config
from engine.deliverables import publish_deliverables
from engine.discover import scan
from engine.docs import publish_docs
from engine.library import Built
from engine.plan import make_plan
from engine.version import pipeline_version
from engine.work import process_job

TITLE_TAGS = ("TITLE", "DWG_NO", "REV", "DATE", "DRAWN_BY", "SCALE", "SHEET", "PROJECT")


def titled_drawing(
    path: Path,
    number: str | None,
    title: str,
    *,
    revision: str = "A",
    date: str = "2024-05-01",
    project: str = "",
    sheets: int = 1,
    offset: float = 0.0,
    paper: tuple[float, float] | None = None,
) -> Path:
    """A drawing with a line in modelspace and `sheets` paperspace layouts, the title block
    (TITLE_A3: TITLE, DWG_NO, REV ...) on the first one; `offset` moves the line (new content)."""
    doc = ezdxf.new("R2018")
    block = doc.blocks.new("TITLE_A3")
    block.add_lwpolyline([(0, 0), (420, 0), (420, 297), (0, 297)], close=True)
    for i, tag in enumerate(TITLE_TAGS):
        block.add_attdef(tag, (300, 40 - 5 * i), dxfattribs={"height": 2.5})
    doc.modelspace().add_line((0, 0), (100 + offset, 50))
    layouts = [doc.layouts.get("Layout1")] + [doc.layouts.new(f"Sheet {i + 2}") for i in range(sheets - 1)]
    for i, layout in enumerate(layouts):
        if paper is not None:
            layout.page_setup(size=paper, margins=(0, 0, 0, 0), units="mm")
        layout.add_line((10, 10), (200, 150 + i))
        layout.add_text(f"sheet {i + 1} of {title}", dxfattribs={"height": 5}).set_placement((20, 200))
    values = {
        "TITLE": title,
        "DWG_NO": number or "",
        "REV": revision,
        "DATE": date,
        "DRAWN_BY": "ab",
        "SCALE": "1:1",
        "SHEET": f"1 of {sheets}",
        "PROJECT": project,
    }
    layouts[0].add_blockref("TITLE_A3", (0, 0)).add_auto_attribs(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc.saveas(path)
    return path


def catalogue(sources: list[Path], out: Path, *, build_deliverables: bool = True, **overrides) -> Built | None:
    """One run of the engine over `sources` into `out`, without Prefect; the deliverables it built
    (with `build_deliverables` False: none built, None)."""
    cfg = load_config(None, sources=[str(s) for s in sources], out=str(out), overrides=overrides)
    catalog = Catalog(cfg.out)
    inputs = scan(
        list(cfg.sources),
        exclude=cfg.raw["inputs"]["exclude"],
        formats=cfg.raw["inputs"]["formats"],
        known=catalog.known_files(),
        skip=[cfg.out],
        roots=catalog.roots(),
    ).inputs
    version = pipeline_version()
    from flows.batch import completed_work

    plan = make_plan(
        inputs,
        options_for=cfg.options_for,
        options_key=cfg.options_key,
        version=version,
        recorded=catalog.recorded(0),
        completed=completed_work(cfg.out, inputs, cfg, version),
    )
    outcomes = [Outcome(item.input, item.work_id, "unchanged") for item in plan.unchanged]
    outcomes += [Outcome(item.input, item.work_id, "reused") for item in plan.reuse]
    outcomes += [Outcome(item.input, item.work_id, "failed", {"unchanged": True}) for item in plan.still_failed]
    for item in plan.todo:
        result = process_job(item.to_job(str(cfg.out)))
        state = "processed" if result.ok else "failed"
        outcomes.append(Outcome(item.input, result.work_id or item.work_id, state, result.record()))
    run = {
        "run_id": f"test-{uuid.uuid4().hex[:8]}",
        "flow_run_id": None,
        "started_at": now_iso(),
        "sources": [str(s) for s in cfg.sources],
        "pipeline_version": version,
        "config": fingerprint(cfg.raw),
    }
    row = catalog.publish(run, outcomes, [str(s) for s in cfg.sources if s.is_dir()])
    publish_docs(cfg, row, outcomes)
    return publish_deliverables(cfg) if build_deliverables else None


class PageLinks(HTMLParser):
    """Link targets and the text of an HTML page, as a browser's parser reads them."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.links: list[str] = []
        self.text: list[str] = []
        self.body_rows = 0
        self._in_body = False
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.links += [attrs[a] for a in ("href", "src") if attrs.get(a)]
        self._in_body = self._in_body or tag == "tbody"
        self.body_rows += tag == "tr" and self._in_body

    def handle_endtag(self, tag):
        self._in_body = self._in_body and tag != "tbody"

    def handle_data(self, data):
        self.text.append(data)


def broken_links(path: Path, out: Path) -> list[str]:
    """The links of a page that are absolute, leave `out` or lead to no file."""
    broken = []
    for link in PageLinks(path).links:
        parts = urlsplit(link)
        target = (path.parent / unquote(parts.path)).resolve()
        if parts.scheme or parts.netloc or not target.is_relative_to(out.resolve()) or not target.is_file():
            broken.append(link)
    return broken
