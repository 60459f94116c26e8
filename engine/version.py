"""The pipeline version: part of every work identity, so an upgrade that changes outputs reprocesses.

It names cadpipe's own output version and the libraries whose upgrade changes what a file yields.
Bump OUTPUT_VERSION when a change to cadpipe alters any output or catalog row of an unchanged input.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version

OUTPUT_VERSION = "4"  # 4: R13/R14 drawings no longer list the arrow blocks ezdxf adds as theirs
_LIBRARIES = ("ezdxf", "pymupdf", "cadquery-ocp")


def _installed(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "none"


@lru_cache(maxsize=1)
def pipeline_version() -> str:
    libs = ",".join(f"{name}={_installed(name)}" for name in _LIBRARIES)
    return f"cadpipe-{OUTPUT_VERSION};{libs}"
