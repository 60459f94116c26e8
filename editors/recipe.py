"""Edit recipes: the end result a library of DXF drawings should reach, stated once in YAML.

A recipe names the drawings it applies to (``select``) and the ``operations`` that bring each one
to the stated result, in order. Operations state results, not steps ("the revision is B", "layer
DIM is called DIMENSIONS"), so applying a recipe twice changes nothing the second time.
``editors/recipe-example.yaml`` shows every field with comments.

::

    name: rev-b-project-x          # optional, default: the file name; names the output folder
    description: Revision B for every sheet of project X     # optional, free text
    select:                        # optional; without it every DXF drawing of the library
      paths: ["project-x/**"]      # globs; one without "/" matches the file name, else the path
      exclude: ["*/old/*"]         #   relative to the library ("*" also crosses "/"); no case
      formats: [dxf, dxf-binary]   # ASCII and/or binary DXF (the catalog's `format` values)
      dxf_version: "< R2000"       # a version (R12, AC1009), a list (any of), or <, <=, >, >= one
      layers: [DIM]                # every one of these layers is present (defined or used)
      title_block:                 # title block fields (as in the catalog's files table),
        drawing_number: "PX-*"     #   each a glob or a list of globs (any of), no case
    operations:                    # a list; each item is one operation with its fields
      - set_attributes:            # title block attribute values
          tags: {REV: B}           #   by tag; spelling-independent (Rev., REV_NO ...)
          fields: {date: "2024-05-01"}   # by title field: whatever tag fills it in this drawing
          blocks: title_block      #   default: title blocks; or a list of block-name globs
      - replace_text:              # regular expression over TEXT, MTEXT and ATTRIB values
          pattern: 'PROJECT\\s+X'  #   Python syntax; applied to the stored value (MTEXT
          replacement: PROJECT Y   #   formatting codes included); \\1 or \\g<name> for groups
          ignore_case: false       #   optional
          entities: [TEXT, MTEXT, ATTRIB]   # optional, default all three
      - rename_layer: {from: DIM, to: DIMENSIONS}   # merges into DIMENSIONS when that exists
      - set_layer: {layer: "DIM*", color: 3, linetype: DASHED}   # glob(s); color 1-255
      - purge: {layers: true, blocks: true}         # unused layers and named blocks
      - redefine_block: {block: TB-A3, source: lib/tb.dxf, source_block: TB-A3}
      - convert_version: {to: R2018}                # R2000 ... R2018; never downgrades

Errors name the file, line and field, e.g. ``recipe.yaml:12: operations[2].rename_layer.to:
missing field 'to'`` (list indexes count from 0). ``source`` paths of ``redefine_block`` are
relative to the recipe's folder; that drawing is checked when the recipe is loaded, and its
content is part of the recipe's hash (a changed library block is a new recipe).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from ezdxf.lldxf.const import acad_release, acad_release_to_dxf_version
from ezdxf.lldxf.validator import is_valid_layer_name
from yaml.nodes import Node

from editors.yaml_nodes import NodeReader, RecipeError
from extractors.title_block import DEFAULT_TITLE_TAG_MAP

__all__ = ["RecipeError", "Recipe", "Selection", "VersionTest", "load_recipe", "parse_recipe"]

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
FORMATS: tuple[str, ...] = ("dxf", "dxf-binary")
TEXT_ENTITIES: tuple[str, ...] = ("TEXT", "MTEXT", "ATTRIB")
# Versions ezdxf writes; R12 is left out: writing it means exploding newer entities.
WRITABLE_VERSIONS = ("AC1015", "AC1018", "AC1021", "AC1024", "AC1027", "AC1032")
_OLD_RELEASES = {"AC1001": "R2.2", "AC1002": "R2.5", "AC1003": "R2.6"}
RELEASES: dict[str, str] = {**_OLD_RELEASES, **acad_release}  # AC code -> release name
_VERSION_TEST = re.compile(r"\s*(<=|>=|<|>|==|=)?\s*(\S+)\s*")
TITLE_EXTRA_FIELDS = ("title_block_name",)


def version_code(text: str) -> str | None:
    """``R12``, ``r2018``, ``AC1009`` -> the AC code; None when unknown."""
    upper = text.strip().upper()
    if upper in RELEASES:
        return upper
    if upper == "R11":  # R11 and R12 share AC1009
        return "AC1009"
    by_release = {release.upper(): code for code, release in RELEASES.items()}
    return by_release.get(upper) or acad_release_to_dxf_version.get(upper)


def version_label(code: str | None) -> str:
    return f"{code} ({RELEASES[code]})" if code in RELEASES else str(code)


@dataclass(frozen=True)
class VersionTest:
    """``op`` is ``in`` (any of `versions`) or a comparison with the single version."""

    op: str
    versions: tuple[str, ...]

    def matches(self, code: str | None) -> bool:
        if not code:
            return False
        code = code.upper()
        if self.op == "in":
            return code in self.versions
        other = self.versions[0]  # AC codes sort in release order
        return {"<": code < other, "<=": code <= other, ">": code > other, ">=": code >= other}[self.op]


@dataclass(frozen=True)
class Selection:
    paths: tuple[str, ...] = ()  # include globs; empty: every file
    exclude: tuple[str, ...] = ()
    formats: tuple[str, ...] = FORMATS
    dxf_version: VersionTest | None = None
    layers: tuple[str, ...] = ()
    title_block: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (field, globs) pairs

    @property
    def needs_facts(self) -> bool:
        """True when selection looks into the drawing (or its catalog record), not only its path."""
        return bool(self.dxf_version or self.layers or self.title_block)


@dataclass(frozen=True)
class SetAttributes:
    tags: tuple[tuple[str, str], ...] = ()  # (tag, value)
    fields: tuple[tuple[str, str], ...] = ()  # (title field, value)
    blocks: tuple[str, ...] | None = None  # block-name globs; None: the title blocks
    op = "set_attributes"


@dataclass(frozen=True)
class ReplaceText:
    pattern: str
    replacement: str
    ignore_case: bool = False
    entities: tuple[str, ...] = TEXT_ENTITIES
    op = "replace_text"

    def compiled(self) -> re.Pattern[str]:
        return re.compile(self.pattern, re.IGNORECASE if self.ignore_case else 0)


@dataclass(frozen=True)
class RenameLayer:
    old: str
    new: str
    op = "rename_layer"


@dataclass(frozen=True)
class SetLayer:
    layers: tuple[str, ...]  # globs over layer names, no case
    color: int | None = None
    linetype: str | None = None
    op = "set_layer"


@dataclass(frozen=True)
class Purge:
    layers: bool = True
    blocks: bool = True
    op = "purge"


@dataclass(frozen=True)
class RedefineBlock:
    block: str
    source: Path = field(compare=False)  # absolute; its content counts, through source_sha256
    source_block: str
    source_sha256: str
    op = "redefine_block"


@dataclass(frozen=True)
class ConvertVersion:
    to: str  # AC code
    op = "convert_version"


Operation = SetAttributes | ReplaceText | RenameLayer | SetLayer | Purge | RedefineBlock | ConvertVersion


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    select: Selection
    operations: tuple[Operation, ...]
    path: Path | None = None
    hash: str = ""  # sha256 of what the recipe does (not of comments or layout of the file)

    @property
    def short_hash(self) -> str:
        return self.hash[:8]


def load_recipe(path: str | Path, title_fields: Iterable[str] | None = None) -> Recipe:
    """Read and validate a recipe file. `title_fields` are the title block fields the catalog
    knows (default: the built-in ones; the config's ``title_block.tags`` may add more)."""
    path = Path(path).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise RecipeError(f"{path}: recipe file not found") from exc
    except UnicodeDecodeError as exc:
        raise RecipeError(f"{path.name}: not a UTF-8 text file") from exc
    return parse_recipe(
        text, source=path.name, base_dir=path.parent, default_name=path.stem, title_fields=title_fields, path=path
    )


def parse_recipe(
    text: str,
    *,
    source: str = "recipe",
    base_dir: Path = Path("."),
    default_name: str = "recipe",
    title_fields: Iterable[str] | None = None,
    path: Path | None = None,
) -> Recipe:
    r = NodeReader(source)
    top = r.mapping(r.compose(text), "recipe", required=("operations",), optional=("name", "description", "select"))
    name = default_name
    if "name" in top:
        name = r.text(top["name"], "name")
        if not NAME.fullmatch(name):
            r.fail(top["name"], "name", "letters, digits, '.', '_' and '-' only (it names a folder)")
    elif not NAME.fullmatch(name):
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-._") or "recipe"
    description = r.text(top["description"], "description", empty=True) if "description" in top else ""
    fields = tuple(title_fields) if title_fields is not None else tuple(DEFAULT_TITLE_TAG_MAP)
    select = _selection(r, top["select"], fields) if "select" in top else Selection()
    ops = tuple(
        _operation(r, node, f"operations[{i}]", fields, base_dir)
        for i, node in enumerate(r.sequence(top["operations"], "operations"))
    )
    recipe = Recipe(name, description, select, ops, path)
    return Recipe(name, description, select, ops, path, _hash(recipe))


def _selection(r: NodeReader, node: Node, title_fields: tuple[str, ...]) -> Selection:
    where = "select"
    f = r.mapping(node, where, optional=("paths", "exclude", "formats", "dxf_version", "layers", "title_block"))
    globs = {
        key: tuple(value for _, value in r.texts(f[key], f"{where}.{key}")) for key in ("paths", "exclude") if key in f
    }
    formats = FORMATS
    if "formats" in f:
        items = r.texts(f["formats"], f"{where}.formats")
        for item, value in items:
            if value not in FORMATS:
                r.fail(item, f"{where}.formats", f"{value!r} cannot be edited (allowed: {', '.join(FORMATS)})")
        formats = tuple(value for _, value in items)
    layers = tuple(value for _, value in r.texts(f["layers"], f"{where}.layers")) if "layers" in f else ()
    version = _version_test(r, f["dxf_version"], f"{where}.dxf_version") if "dxf_version" in f else None
    title: list[tuple[str, tuple[str, ...]]] = []
    if "title_block" in f:
        allowed = title_fields + TITLE_EXTRA_FIELDS
        for key, patterns in r.pairs(f["title_block"], f"{where}.title_block"):
            if key not in allowed:
                r.fail(patterns, f"{where}.title_block", f"unknown title field {key!r} (known: {', '.join(allowed)})")
            title.append((key, tuple(v for _, v in r.texts(patterns, f"{where}.title_block.{key}"))))
    return Selection(globs.get("paths", ()), globs.get("exclude", ()), formats, version, layers, tuple(title))


def _version_test(r: NodeReader, node: Node, where: str) -> VersionTest:
    items = r.texts(node, where)
    if len(items) == 1:
        item, text = items[0]
        match = _VERSION_TEST.fullmatch(text)
        if match is None:
            return VersionTest("in", (_version(r, item, where, text),))
        op, value = match.group(1), match.group(2)
        if op and op not in ("=", "=="):
            return VersionTest(op, (_version(r, item, where, value),))
        return VersionTest("in", (_version(r, item, where, value),))
    return VersionTest("in", tuple(_version(r, item, where, text) for item, text in items))


def _version(r: NodeReader, node: Node, where: str, text: str) -> str:
    code = version_code(text)
    if code is None:
        r.fail(node, where, f"unknown DXF version {text!r} (e.g. R12, R2000, R2018 or AC1009)")
    return code


class _OperationBuilder(Protocol):
    def __call__(
        self, r: NodeReader, node: Node, where: str, *, title_fields: tuple[str, ...], base_dir: Path
    ) -> Operation: ...


def _operation(r: NodeReader, node: Node, where: str, title_fields: tuple[str, ...], base_dir: Path) -> Operation:
    builders: dict[str, _OperationBuilder] = {
        "set_attributes": _set_attributes,
        "replace_text": _replace_text,
        "rename_layer": _rename_layer,
        "set_layer": _set_layer,
        "purge": _purge,
        "redefine_block": _redefine_block,
        "convert_version": _convert_version,
    }
    item = r.mapping(node, where)
    if len(item) != 1:
        r.fail(node, where, f"must name exactly one operation ({', '.join(builders)})")
    ((op, body),) = item.items()
    if op not in builders:
        r.fail(node, where, f"unknown operation {op!r} (known: {', '.join(builders)})")
    return builders[op](r, body, f"{where}.{op}", title_fields=title_fields, base_dir=base_dir)


def _set_attributes(
    r: NodeReader, node: Node, where: str, *, title_fields: tuple[str, ...], **_: object
) -> SetAttributes:
    f = r.mapping(node, where, optional=("tags", "fields", "blocks"))
    if "tags" not in f and "fields" not in f:
        r.fail(node, where, "give 'tags' (attribute tag: value) or 'fields' (title field: value)")
    tags: tuple[tuple[str, str], ...] = ()
    if "tags" in f:
        tags = tuple((k, r.text(v, f"{where}.tags.{k}", empty=True)) for k, v in r.pairs(f["tags"], f"{where}.tags"))
    fields = []
    for key, value in r.pairs(f["fields"], f"{where}.fields") if "fields" in f else ():
        if key not in title_fields:
            r.fail(value, f"{where}.fields", f"unknown title field {key!r} (known: {', '.join(title_fields)})")
        fields.append((key, r.text(value, f"{where}.fields.{key}", empty=True)))
    blocks: tuple[str, ...] | None = None
    if "blocks" in f:
        items = r.texts(f["blocks"], f"{where}.blocks")
        if not (len(items) == 1 and items[0][1] == "title_block"):
            blocks = tuple(value for _, value in items)
    return SetAttributes(tags, tuple(fields), blocks)


def _replace_text(r: NodeReader, node: Node, where: str, **_: object) -> ReplaceText:
    f = r.mapping(node, where, required=("pattern", "replacement"), optional=("ignore_case", "entities"))
    pattern = r.text(f["pattern"], f"{where}.pattern")
    replacement = r.text(f["replacement"], f"{where}.replacement", empty=True)
    ignore_case = r.flag(f["ignore_case"], f"{where}.ignore_case") if "ignore_case" in f else False
    entities = TEXT_ENTITIES
    if "entities" in f:
        items = r.texts(f["entities"], f"{where}.entities")
        for item, value in items:
            if value.upper() not in TEXT_ENTITIES:
                r.fail(item, f"{where}.entities", f"{value!r} is not one of {', '.join(TEXT_ENTITIES)}")
        entities = tuple(dict.fromkeys(value.upper() for _, value in items))
    spec = ReplaceText(pattern, replacement, ignore_case, entities)
    try:
        compiled = spec.compiled()
    except re.error as exc:
        r.fail(f["pattern"], f"{where}.pattern", f"invalid regular expression: {exc}")
    if compiled.fullmatch(""):
        r.fail(f["pattern"], f"{where}.pattern", "matches empty text: it would insert the replacement everywhere")
    try:  # a match of the pattern made optional checks the replacement's escapes and group references
        empty_match = re.compile(f"(?:{pattern})?", compiled.flags).match("")
    except re.error:
        empty_match = None  # global inline flags such as (?x) cannot be wrapped: checked when used
    if empty_match is not None:
        try:
            empty_match.expand(replacement)
        except (re.error, IndexError) as exc:
            r.fail(f["replacement"], f"{where}.replacement", f"invalid replacement: {exc}")
    return spec


def _layer_name(r: NodeReader, node: Node, where: str) -> str:
    name = r.text(node, where)
    if not is_valid_layer_name(name):
        r.fail(node, where, f'{name!r} is not a valid layer name (no <>/\\":;?*|=` and no surrounding spaces)')
    return name


def _rename_layer(r: NodeReader, node: Node, where: str, **_: object) -> RenameLayer:
    f = r.mapping(node, where, required=("from", "to"))
    old = _layer_name(r, f["from"], f"{where}.from")
    new = _layer_name(r, f["to"], f"{where}.to")
    if old.casefold() in ("0", "defpoints"):
        r.fail(f["from"], f"{where}.from", f"layer {old!r} cannot be renamed")
    if new.casefold() == "defpoints":
        r.fail(f["to"], f"{where}.to", "nothing may be moved onto Defpoints (it never plots)")
    if old == new:
        r.fail(f["to"], f"{where}.to", "is the same as 'from'")
    return RenameLayer(old, new)


def _set_layer(r: NodeReader, node: Node, where: str, **_: object) -> SetLayer:
    f = r.mapping(node, where, required=("layer",), optional=("color", "linetype"))
    if "color" not in f and "linetype" not in f:
        r.fail(node, where, "give 'color' and/or 'linetype'")
    layers = tuple(value for _, value in r.texts(f["layer"], f"{where}.layer"))
    color = r.integer(f["color"], f"{where}.color", 1, 255) if "color" in f else None
    linetype = r.text(f["linetype"], f"{where}.linetype") if "linetype" in f else None
    return SetLayer(layers, color, linetype)


def _purge(r: NodeReader, node: Node, where: str, **_: object) -> Purge:
    if getattr(node, "tag", "").endswith(":null"):  # `- purge:` alone: purge both
        return Purge()
    f = r.mapping(node, where, optional=("layers", "blocks"))
    spec = Purge(*(r.flag(f[k], f"{where}.{k}") if k in f else True for k in ("layers", "blocks")))
    if not (spec.layers or spec.blocks):
        r.fail(node, where, "nothing to purge: 'layers' and 'blocks' are both false")
    return spec


def _redefine_block(r: NodeReader, node: Node, where: str, *, base_dir: Path, **_: object) -> RedefineBlock:
    from editors.source_blocks import SourceBlockError, load_source_block

    f = r.mapping(node, where, required=("block", "source"), optional=("source_block",))
    block = r.text(f["block"], f"{where}.block")
    if block.startswith("*"):
        r.fail(f["block"], f"{where}.block", "layouts and anonymous blocks cannot be redefined")
    source = (base_dir / r.text(f["source"], f"{where}.source")).resolve()
    source_block = r.text(f["source_block"], f"{where}.source_block") if "source_block" in f else block
    try:
        digest = load_source_block(source, source_block).sha256
    except SourceBlockError as exc:
        node_at = f.get(exc.field, f["source"])
        r.fail(node_at, f"{where}.{exc.field}", str(exc))
    return RedefineBlock(block, source, source_block, digest)


def _convert_version(r: NodeReader, node: Node, where: str, **_: object) -> ConvertVersion:
    f = r.mapping(node, where, required=("to",))
    code = _version(r, f["to"], f"{where}.to", r.text(f["to"], f"{where}.to"))
    if code not in WRITABLE_VERSIONS:
        allowed = ", ".join(RELEASES[c] for c in WRITABLE_VERSIONS)
        r.fail(f["to"], f"{where}.to", f"cannot write {version_label(code)} (allowed: {allowed})")
    return ConvertVersion(code)


def _hash(recipe: Recipe) -> str:
    """What the recipe does, canonically: the same recipe reformatted or moved hashes the same."""
    ops = []
    for op in recipe.operations:
        body = asdict(op)
        body.pop("source", None)  # the library drawing counts by content (source_sha256)
        ops.append({"op": op.op, **body})
    canonical = {"name": recipe.name, "select": asdict(recipe.select), "operations": ops}
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
