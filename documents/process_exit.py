"""How a process of ours that has read or written the catalog ends: as a normal exit does, minus
the interpreter's teardown.

Arrow's C++ thread pools (pyarrow, as deltalake reads and writes the catalog with it) can still
hold threads when Python tears the interpreter down, and the process then aborts after its work
is done: "terminate called without an active exception", SIGABRT, about 1 run in 15 on a busy
machine (apache/arrow#34314, delta-io/delta-rs#2184). A cron job, or a test, reads that as a
crash. So what a normal exit does first is done here, in its order: wait for the threads that are
not daemons; the atexit handlers (Prefect's log and event drains, multiprocessing's clean-up,
logging.shutdown); flush the standard streams. Then the process exits with the code given.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
import traceback
from collections.abc import Callable
from typing import NoReturn


def run_then_exit(main: Callable[[], int | None]) -> NoReturn:
    """`main()`, then the end below with its code: SystemExit's (its message printed, as Python
    prints it), 1 after an uncaught exception (its traceback printed), 130 after Ctrl-C."""
    try:
        code = main() or 0
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except KeyboardInterrupt:
        code = 130
    except BaseException:
        traceback.print_exc()
        code = 1
    exit_without_teardown(code)


def exit_without_teardown(code: int) -> NoReturn:
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (`cadpipe failures | head`)
            stream.flush()
    os._exit(code)
