"""Tell other systems about a finished run: signed webhooks (issue 5)."""

from __future__ import annotations


def notify_run(cfg, summary: dict) -> None:
    """Send the run's events; a failed delivery is logged and never fails the batch."""
