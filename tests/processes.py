"""Finding a test's child processes by their command line, from /proc (Linux)."""

from __future__ import annotations

import os
from pathlib import Path


def children(parent: int, marker: bytes) -> list[int]:
    """Processes whose parent is `parent` and whose command line contains `marker`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent and marker in cmdline:
                found.append(int(entry))
    return found
