"""Generated documentation of a run: a datasheet per drawing and a batch report (issue 3)."""

from __future__ import annotations


def publish_docs(cfg, run: dict, outcomes: list) -> list[str]:
    """Write the run's HTML documents under OUT; return their paths relative to OUT."""
    return []
