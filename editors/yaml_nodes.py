"""Read a YAML document as nodes, so that every error names the line and the field at fault.

``yaml.safe_load`` forgets where a value came from; ``yaml.compose`` keeps each node's position
(``start_mark``) and its resolved tag, and leaves the scalar text as written: ``REV: 02`` stays
``"02"`` and ``DATE: 2024-05-01`` stays a string, which is what attribute values need.
"""

from __future__ import annotations

from typing import NoReturn

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"


class RecipeError(ValueError):
    """A recipe that cannot be used. The message reads ``FILE:LINE: FIELD: what is wrong``."""


class NodeReader:
    """Typed access to composed YAML nodes; each failure raises :class:`RecipeError`."""

    def __init__(self, source: str) -> None:
        self.source = source  # the file name errors start with

    def compose(self, text: str) -> Node:
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = f"{mark.line + 1}: " if mark is not None else " "
            raise RecipeError(f"{self.source}:{line}invalid YAML: {exc.problem or exc.context}") from exc
        except yaml.YAMLError as exc:
            raise RecipeError(f"{self.source}: invalid YAML: {exc}") from exc
        if node is None:
            raise RecipeError(f"{self.source}: the recipe is empty")
        return node

    def fail(self, node: Node, where: str, message: str) -> NoReturn:
        raise RecipeError(f"{self.source}:{node.start_mark.line + 1}: {where}: {message}")

    def mapping(
        self, node: Node, where: str, required: tuple[str, ...] = (), optional: tuple[str, ...] = ()
    ) -> dict[str, Node]:
        """The fields of a mapping; unknown, repeated and missing fields are errors."""
        if not isinstance(node, MappingNode):
            self.fail(node, where, f"must be a mapping with the fields {', '.join(required + optional)}")
        known = required + optional
        fields: dict[str, Node] = {}
        for key_node, value in node.value:
            key = self.key(key_node, where)
            if key in fields:
                self.fail(key_node, f"{where}.{key}", "given twice")
            if known and key not in known:
                self.fail(key_node, where, f"unknown field {key!r} (known: {', '.join(known)})")
            fields[key] = value
        for key in required:
            if key not in fields:
                self.fail(node, where, f"missing field {key!r}")
        return fields

    def pairs(self, node: Node, where: str) -> list[tuple[str, Node]]:
        """A mapping of free-form keys (tag -> value), in the order written; no key twice."""
        fields = self.mapping(node, where)
        if not fields:
            self.fail(node, where, "must not be empty")
        return list(fields.items())

    def key(self, node: Node, where: str) -> str:
        if not isinstance(node, ScalarNode) or node.tag == _NULL or not node.value.strip():
            self.fail(node, where, "keys must be non-empty names")
        return node.value

    def text(self, node: Node, where: str, *, empty: bool = False) -> str:
        """A scalar as written (numbers and dates included); null is not text."""
        if not isinstance(node, ScalarNode) or node.tag == _NULL:
            self.fail(node, where, "must be a text value")
        if not empty and not node.value.strip():
            self.fail(node, where, "must not be empty")
        return node.value

    def flag(self, node: Node, where: str) -> bool:
        if not isinstance(node, ScalarNode) or node.tag != _BOOL:
            self.fail(node, where, f"must be true or false, not {_shown(node)}")
        return node.value.lower() in ("true", "yes", "on", "y")

    def integer(self, node: Node, where: str, low: int, high: int) -> int:
        if not isinstance(node, ScalarNode) or node.tag != _INT:
            self.fail(node, where, f"must be a whole number from {low} to {high}, not {_shown(node)}")
        value = yaml.safe_load(node.value)
        if not low <= value <= high:
            self.fail(node, where, f"must be from {low} to {high}, not {value}")
        return value

    def texts(self, node: Node, where: str) -> list[tuple[Node, str]]:
        """One text or a list of texts, each with its node (for errors about a single item)."""
        if isinstance(node, ScalarNode):
            return [(node, self.text(node, where))]
        items = self.sequence(node, where)
        return [(item, self.text(item, f"{where}[{i}]")) for i, item in enumerate(items)]

    def sequence(self, node: Node, where: str) -> list[Node]:
        if not isinstance(node, SequenceNode):
            self.fail(node, where, "must be a list")
        if not node.value:
            self.fail(node, where, "must not be empty")
        return list(node.value)


def _shown(node: Node) -> str:
    if isinstance(node, ScalarNode):
        return repr(node.value) if node.tag != _NULL else "null"
    return "a list" if isinstance(node, SequenceNode) else "a mapping"
