"""The Dask cluster a `--runner dask` batch runs its chunks on, checked before any file is touched.

Each Dask worker runs its chunk's files in a process pool of its own (per-file isolation: time
limits, memory caps, a crash fails one file), and Dask's worker processes are daemonic by default,
which may not have children. So a cluster is checked at the start of a run: every worker must be
allowed children. Without an address a local cluster is started for the run, its workers allowed
children, one single-threaded worker per configured worker process.

The local cluster's workers inherit this terminal, but print no Prefect log lines on it (only a
CRITICAL one): their task runs' lines go to the Prefect API and the run's JSON log, and what a run
did is told once, by the flow process (the summary; its own log lines above the bar, none with
`--quiet`). Printed straight to stderr by another process they would be drawn over the bar and
break `--quiet`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Iterator

from flows.outcomes import RunRefused

CONNECT_TIMEOUT_S = 15.0
# Prefect's logging config, overridden for the local cluster's worker processes: its `console`
# handler (the one on stderr) passes CRITICAL lines only.
WORKER_ENVIRONMENT = {"PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL"}
DAEMON_ADVICE = "start the Dask workers with DASK_DISTRIBUTED__WORKER__DAEMON=False"


def _is_daemonic() -> bool:
    return multiprocessing.current_process().daemon


def check_cluster(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> int:
    """The number of workers of the cluster at `address`; RunRefused (exit 3) when it does not
    answer, has no worker, or has workers that cannot start child processes."""
    from distributed import Client

    try:
        with Client(address, timeout=timeout_s) as client:
            daemonic = client.run(_is_daemonic)
    except (OSError, TimeoutError) as exc:
        raise RunRefused(
            f"the Dask scheduler at {address} does not answer ({type(exc).__name__}: {exc}); "
            "start it, or leave out --dask-address to run on a local cluster",
            exit_code=3,
        ) from None
    if not daemonic:
        raise RunRefused(f"the Dask cluster at {address} has no workers; start some", exit_code=3)
    stuck = sorted(worker for worker, flag in daemonic.items() if flag)
    if stuck:
        raise RunRefused(
            f"{len(stuck)} of the {len(daemonic)} Dask workers at {address} are daemonic processes, which "
            f"cannot start the processes that isolate each file: {DAEMON_ADVICE}",
            exit_code=3,
        )
    return len(daemonic)


@contextlib.contextmanager
def local_cluster(workers: int) -> Iterator[str]:
    """A Dask cluster on this machine for one run (`workers` single-threaded worker processes that
    may have children); yields its scheduler's address. RunRefused (exit 3) when it cannot start."""
    import dask
    from distributed import LocalCluster

    # Read by each worker's nanny whenever it starts (or restarts) its worker process.
    dask.config.set({"distributed.worker.daemon": False})
    try:
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            # "None" still starts the scheduler's HTTP server on port 8787, and when another
            # cluster (or a notebook's) holds it, Dask warns on the terminal: a free loopback port.
            dashboard_address="127.0.0.1:0",
            env=dict(WORKER_ENVIRONMENT),  # set in each worker process before it runs a task
        )
    except Exception as exc:
        raise RunRefused(
            f"a local Dask cluster did not start ({type(exc).__name__}: {exc})",
            exit_code=3,
        ) from None
    with cluster:
        yield cluster.scheduler_address
