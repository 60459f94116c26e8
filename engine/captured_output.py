"""What libraries print while a worker works on one file, kept with that file.

OpenCASCADE, and C code in general, writes straight to the process's file descriptors 1 and 2
("*** ERR StepReaderData *** ..."), below Python's sys.stdout: on the terminal those lines would
carry no file name and collide with the progress bar. While a file is worked on, both
descriptors point at a temporary file; afterwards what was written there becomes one warning of
that file ("library output: ..."), and nothing reaches the terminal. A worker works on one file
at a time, so everything written meanwhile is that file's.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

from documents.names import printable

MAX_LINES = 20  # a library may print the same complaint thousands of times
MAX_CHARS = 2000
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # OpenCASCADE colours its messages


@dataclass
class Captured:
    text: str = ""
    lines: list[str] = field(default_factory=list)

    def warnings(self) -> list[str]:
        """One warning naming what was printed: distinct lines, with their counts, bounded."""
        if not self.lines:
            return []
        counts: dict[str, int] = {}
        for line in self.lines:
            counts[line] = counts.get(line, 0) + 1
        shown = [f"{line} (x{n})" if n > 1 else line for line, n in list(counts.items())[:MAX_LINES]]
        text = " | ".join(shown)
        if len(text) > MAX_CHARS:
            text = text[: MAX_CHARS - 3] + "..."
        more = len(counts) - MAX_LINES
        extra = f" | and {more} more distinct lines" if more > 0 else ""
        noun = "line" if len(self.lines) == 1 else "lines"
        return [printable(f"library output while processing ({len(self.lines)} {noun}): {text}{extra}")]


@contextlib.contextmanager
def captured_output() -> Iterator[Captured]:
    """Redirect file descriptors 1 and 2 (and so sys.stdout, sys.stderr) into a temporary file
    for the duration; the result is filled in on exit."""
    result = Captured()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield result
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            result.text = sink.read(1 << 20).decode("utf-8", errors="replace")
            plain = _ANSI.sub("", result.text)
            result.lines = [line.strip() for line in plain.splitlines() if line.strip()]
