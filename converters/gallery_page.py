"""The gallery page: every drawing of the library as a card with its thumbnails, the failures
first with their reasons, filters by status and folder and a search box that run in the browser.

Plain functions over prepared rows, no Prefect: `Gallery` / `render_gallery`, and the script the
page loads (`GALLERY_SCRIPT`, written beside it by engine/gallery.py). Untrusted text (names,
titles, drawing text) is escaped by the template and set as text by the script, never as HTML;
the page's Content-Security-Policy runs no inline script, only the two files beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from converters.datasheet import environment

GALLERY_SCRIPT = Path(__file__).with_name("templates") / "gallery.js"


@dataclass
class Thumbnail:
    label: str  # the layout ("Model", or the output stem of a paperspace layout)
    src: str  # href of the thumbnail image
    href: str  # href of the full render


@dataclass
class ChangeBadge:
    summary: str
    overlay: str | None  # href of the first overlay image
    diff: str | None  # href of diff.json


@dataclass
class GalleryCard:
    path: str  # as shown (relative to its source root, or full when there are several)
    name: str
    folder: str  # the path's folder as shown ("" at the top)
    status: str  # ok | failed
    format: str | None = None
    sha256: str | None = None
    title: str | None = None
    drawing_number: str | None = None
    revision: str | None = None
    datasheet: str | None = None  # href
    thumbnails: list[Thumbnail] = field(default_factory=list)
    change: ChangeBadge | None = None
    error_class: str | None = None
    error_stage: str | None = None
    error_message: str | None = None
    quarantine: str | None = None  # href of the error report

    @property
    def search_text(self) -> str:
        """What the search box finds on the card itself (the index adds the drawing's text)."""
        fields = (self.path, self.title, self.drawing_number, self.revision, self.format, self.error_message)
        return " ".join(str(v) for v in fields if v)


@dataclass
class Gallery:
    cards: list[GalleryCard]  # failed first, then by path
    folders: list[tuple[str, int]]  # (folder, drawings in it and below), sorted
    generated_at: str
    run_id: str | None
    report_href: str
    script_href: str
    index_href: str | None  # the search index script; None when there is none
    index_note: str = ""  # what the page's search covers, when it is bounded

    @property
    def failed(self) -> list[GalleryCard]:
        return [c for c in self.cards if c.status == "failed"]

    @property
    def drawings(self) -> list[GalleryCard]:
        return [c for c in self.cards if c.status != "failed"]


def render_gallery(gallery: Gallery) -> str:
    return environment().get_template("gallery.html.j2").render(gallery=gallery)


def gallery_script() -> str:
    return GALLERY_SCRIPT.read_text(encoding="utf-8")
