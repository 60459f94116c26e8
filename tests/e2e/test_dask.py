"""Scale-out: the chunks run on a Dask cluster of separate worker processes through prefect-dask."""

from __future__ import annotations

import dask
import pytest
from distributed import LocalCluster

from flows.batch import batch
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
    summary = state.result(raise_on_failure=False)
    assert len(worker_pids) == 2
    assert (summary["processed"], summary["failed"]) == (4, 1)
    files = catalog_table(out, "files")
    assert sorted(files["status"]) == ["failed", "ok", "ok", "ok", "ok"]
    assert files.loc[files["path"] == "broken.dxf", "error_message"].item().startswith("broken.dxf: load:")
