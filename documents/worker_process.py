"""What every worker process sets up first: it dies with its parent, and its memory is capped.

A pool worker whose parent is killed outright (SIGKILL, the OOM killer) would otherwise live on
as an orphan, holding its imports (~150 MB each) until the machine runs out of memory; the
kernel's parent-death signal ends it instead. The address-space cap makes a blow-up fail one
file, not the machine.
"""

from __future__ import annotations

import os
import threading
import time

_CHECK_EVERY_S = 1.0


def die_with_parent() -> None:
    """Exit as soon as the parent process is gone (this process is then re-parented).

    A watching thread, not the kernel's parent-death signal: that signal follows the *thread*
    that started the process, and a pool's first workers are started by whichever thread
    submitted first (a Prefect task thread that ends with its flow), which would kill healthy
    workers of a pool that lives on."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_CHECK_EVERY_S)
        os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def cap_memory(memory_mb: int) -> None:
    """Cap this process's address space at `memory_mb` MiB (0: no cap)."""
    if memory_mb > 0:
        import resource

        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
