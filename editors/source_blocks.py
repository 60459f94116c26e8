"""The library drawing a ``redefine_block`` copies from, loaded once per process and content.

Below both the recipe (which checks the source when it is read) and the block operation (which
copies from it), so neither imports the other for it.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

from ezdxf.document import Drawing
from ezdxf.layouts import BlockLayout

from documents.dxf_document import open_dxf
from documents.errors import CadpipeError


class SourceBlockError(ValueError):
    """The library drawing of a redefinition is unusable; `field` is the recipe field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class SourceBlock:
    doc: Drawing
    block: BlockLayout
    sha256: str


def load_source_block(path: Path, name: str) -> SourceBlock:
    """The block `name` of the library drawing `path` (``*Model_Space``: the drawing itself, as a
    drawing saved with WBLOCK is meant to be used)."""
    try:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except FileNotFoundError as exc:
        raise SourceBlockError("source", f"library drawing not found: {path}") from exc
    except OSError as exc:
        raise SourceBlockError("source", f"cannot read library drawing {path}: {exc.strerror or exc}") from exc
    try:
        doc = _load(str(path), digest)
    except CadpipeError as exc:
        raise SourceBlockError("source", f"library drawing {Path(path).name} cannot be used: {exc}") from exc
    block = doc.blocks.get(name)
    if block is None:
        known = sorted(b.name for b in doc.blocks if not b.name.startswith("*"))
        listed = ", ".join(known) or "none"
        raise SourceBlockError("source_block", f"{Path(path).name} has no block {name!r} (blocks: {listed})")
    return SourceBlock(doc, block, digest)


@functools.lru_cache(maxsize=8)
def _load(path: str, sha256: str) -> Drawing:
    """Loaded once per process and content: every drawing of a run copies from the same block."""
    return open_dxf(Path(path), decode_text=False).doc  # copied into another drawing as stored
