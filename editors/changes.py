"""What an operation changed in a drawing, and what every operation gets besides the drawing."""

from __future__ import annotations

from dataclasses import dataclass

from extractors.title_block import TitleBlockRules


@dataclass(frozen=True)
class Change:
    """One change, as the dry run prints it and the catalog's ``edits`` table records it."""

    operation: str  # the recipe operation, or "save"/"audit" for what writing the file adds
    target: str  # what changed, e.g. "Layout1: TB-A3 #2F REV" or "layer DIM"
    before: str | None
    after: str | None


@dataclass(frozen=True)
class EditContext:
    title_rules: TitleBlockRules  # which INSERTs are title blocks (the catalog's own rules)
    stored_version: str  # $ACADVER as the file states it (ezdxf upgrades R13/R14 while loading)
