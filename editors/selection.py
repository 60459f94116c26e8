"""Which drawings a recipe applies to: paths and formats first (free), then what is known of the
drawing (DXF version, layers, title block) from the catalog or from the document itself."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from documents.dxf_document import LoadedDxf
from editors.recipe import Selection
from extractors.title_block import TitleBlockRules, title_block


@dataclass(frozen=True)
class TitleSettings:
    """How title blocks are recognised: the catalog's rules (config [title_block] and [bom])."""

    patterns: tuple[str, ...]
    title_tags: dict[str, list[str]] = field(hash=False)
    part_tags: dict[str, list[str]] = field(hash=False)

    def rules(self) -> TitleBlockRules:
        return TitleBlockRules.build(self.patterns, self.title_tags, self.part_tags)


@dataclass(frozen=True)
class FileFacts:
    """What selection conditions look at; the same fields as the catalog's tables."""

    dxf_version: str | None  # $ACADVER as stored, e.g. AC1009
    layers: frozenset[str]  # case-folded names of defined and used layers
    title_block: dict[str, str | None] = field(hash=False)  # title field -> value

    def to_dict(self) -> dict[str, Any]:
        return {"dxf_version": self.dxf_version, "layers": sorted(self.layers), "title_block": dict(self.title_block)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileFacts:
        return cls(data["dxf_version"], frozenset(data["layers"]), dict(data["title_block"]))


def _glob_match(value: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(value.casefold(), pattern.casefold())


def _path_match(path: str, pattern: str) -> bool:
    """A glob with a "/" matches the whole relative path, one without it the file name."""
    return _glob_match(path if "/" in pattern else PurePosixPath(path).name, pattern)


def path_selected(select: Selection, path: str, fmt: str) -> bool:
    """`path` is relative to the library (POSIX); `fmt` as discovery sniffed it. A file with a
    DXF extension whose content is unrecognised is selected, so that it fails with a reason."""
    if fmt not in select.formats and not (fmt == "unknown" and path.lower().endswith(".dxf")):
        return False
    if select.paths and not any(_path_match(path, p) for p in select.paths):
        return False
    return not any(_path_match(path, p) for p in select.exclude)


def facts_selected(select: Selection, facts: FileFacts) -> bool:
    if select.dxf_version is not None and not select.dxf_version.matches(facts.dxf_version):
        return False
    if any(layer.casefold() not in facts.layers for layer in select.layers):
        return False
    for name, patterns in select.title_block:
        value = facts.title_block.get(name)
        if value is None or not any(_glob_match(value, p) for p in patterns):
            return False
    return True


def stored_version(loaded: LoadedDxf) -> str:
    """$ACADVER as the file states it; a file without HEADER is R12 (ezdxf and AutoCAD agree)."""
    stated = (loaded.header_vars or {}).get("$ACADVER")
    return str(stated or loaded.doc.loaded_dxfversion or loaded.doc.dxfversion).strip().upper()


def document_facts(loaded: LoadedDxf, settings: TitleSettings) -> FileFacts:
    doc = loaded.doc
    layers = {layer.dxf.name.casefold() for layer in doc.layers}
    layers.update(e.dxf.layer.casefold() for e in doc.entitydb.values() if e.is_alive and e.dxf.hasattr("layer"))
    fields = title_block(doc, list(settings.patterns), settings.title_tags, settings.part_tags)
    return FileFacts(stored_version(loaded), frozenset(layers), fields)
