"""Scale-out: the chunks run on a Dask cluster of separate worker processes through prefect-dask."""

from __future__ import annotations

import dask
import pytest
from distributed import LocalCluster

from flows.batch import batch
from flows.outcomes import RunRefused, summary_of
from tests.conftest import catalog_table

pytestmark = pytest.mark.usefixtures("prefect_harness")

FILES = [
    "files/ezdxf/examples_dxf__text_alignments.dxf",
    "files/cadquery/tests__testdata__gear.dxf",
    "files/trimesh/models__2D__250_cycloidal.DXF",
    "files/ezdxf/integration_tests__data__bin_dxf_r2000.dxf",
]


def test_a_batch_runs_on_a_dask_cluster_of_worker_processes(corpus_copy, tmp_path):
    lib = corpus_copy(*FILES)
    (lib / "broken.dxf").write_text("0\nSECTION\n2\nENTITIES\n0\nLINE\n10\nx\n")
    out = tmp_path / "out"
    # Workers must be allowed children: each isolates its files in a process pool of its own.
    with (
        dask.config.set({"distributed.worker.daemon": False}),
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
    ):
        state = batch(
            sources=[str(lib)],
            out=str(out),
            runner="dask",
            dask_address=cluster.scheduler_address,
            chunk_size=1,
            return_state=True,
        )
        worker_pids = set(cluster.scheduler_info["workers"])
    summary = summary_of(state.result(raise_on_failure=False))
    assert len(worker_pids) == 2
    assert (summary["processed"], summary["failed"]) == (4, 1)
    files = catalog_table(out, "files")
    assert sorted(files["status"]) == ["failed", "ok", "ok", "ok", "ok"]
    assert files.loc[files["path"] == "broken.dxf", "error_message"].item().startswith("broken.dxf: load:")


def test_runner_dask_alone_starts_a_local_cluster_that_can_isolate_files(corpus_copy, tmp_path):
    lib = corpus_copy(*FILES[:2])
    (lib / "broken.dxf").write_text("0\nSECTION\n2\nENTITIES\n0\nLINE\n10\nx\n")
    state = batch(sources=[str(lib)], out=str(tmp_path / "out"), runner="dask", workers=2, return_state=True)
    summary = summary_of(state.result(raise_on_failure=False))
    assert summary is not None, state.message
    assert (summary["processed"], summary["failed"], summary["deferred"]) == (2, 1, 0)
    files = catalog_table(tmp_path / "out", "files").set_index("path")
    assert files.loc["broken.dxf", "error_stage"] == "load", "the file's own fault, not the cluster's"


def test_a_cluster_of_daemonic_workers_is_refused_before_any_file_is_touched(corpus_copy, tmp_path):
    lib = corpus_copy(FILES[0])
    out = tmp_path / "out"
    with (
        dask.config.set({"distributed.worker.daemon": True}),
        LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
    ):
        state = batch(
            sources=[str(lib)], out=str(out), runner="dask", dask_address=cluster.scheduler_address, return_state=True
        )
    refused = state.result(raise_on_failure=False)
    assert state.is_failed() and isinstance(refused, RunRefused) and refused.exit_code == 3
    assert "daemonic" in state.message and "DASK_DISTRIBUTED__WORKER__DAEMON=False" in state.message
    assert not (out / "catalog").exists() and not (out / "quarantine").exists(), "no file was touched"


def test_an_unreachable_scheduler_is_one_line_and_exit_3(tmp_path):
    import socket
    import subprocess
    import sys

    from tests.conftest import REPO

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{sock.getsockname()[1]}"
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "a.dxf").write_text("0\nEOF\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "run",
            str(lib),
            "--out",
            str(tmp_path / "out"),
            "--dask-address",
            address,
            "--quiet",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 3, proc.stderr[-2000:]
    [line] = proc.stderr.splitlines()
    assert address in line and "does not answer" in line
    assert not (tmp_path / "out" / "catalog").exists()
