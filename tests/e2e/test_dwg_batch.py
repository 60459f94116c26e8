"""DWG through the whole batch: bad DWG files end failed and quarantined, the reader is recorded
and part of the work identity, under a real (test harness) Prefect server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from documents.dwg_readers import LibreDwgReader, make_reader
from flows.batch import batch
from tests.conftest import catalog_table

pytestmark = pytest.mark.usefixtures("prefect_harness")
SAMPLE = "files/acadsharp/samples__sample_AC1032.dwg"
SMALL = "files/acadsharp/samples__dynamic-blocks__BLOCKVISIBILITYPARAMETER.dwg"


def run(src: Path, out: Path, config: Path | None = None) -> dict:
    state = batch(
        sources=[str(src)], out=str(out), workers=2, config=str(config) if config else None, return_state=True
    )
    return state.result(raise_on_failure=False)


def files(out: Path) -> pd.DataFrame:
    return catalog_table(out, "files").set_index("path")


def test_corrupt_and_truncated_dwg_fail_for_good_and_are_quarantined(corpus_dir, tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    data = (corpus_dir / SAMPLE).read_bytes()
    (lib / "truncated.dwg").write_bytes(data[: len(data) // 2])
    corrupt = bytearray(data)
    for i in range(200, len(corrupt), 997):
        corrupt[i] ^= 0xFF
    (lib / "corrupt.dwg").write_bytes(bytes(corrupt))
    shutil.copy2(corpus_dir / SAMPLE, lib / "sample.dwg")
    out = tmp_path / "out"

    summary = run(lib, out)
    assert (summary["processed"], summary["failed"]) == (1, 2)
    table = files(out)
    for name in ("truncated.dwg", "corrupt.dwg"):
        row = table.loc[name]
        assert row["status"] == "failed" and row["error_class"] == "InputError" and row["error_permanent"]
        assert row["error_stage"] == "load" and row["attempts"] == 1, "a permanent fault is not retried"
        assert row["error_message"].startswith(
            f"{name}: load: pycadkit 0.5.1 cannot read the DWG (AC1032, R2018): InvalidDataError"
        )
        copy = out / row["quarantine"]
        assert copy.read_bytes() == (lib / name).read_bytes()
        report = json.loads(copy.with_name(copy.name + ".error.json").read_text())
        assert report["error_message"] == row["error_message"] and report["permanent"] is True

    ok = table.loc["sample.dwg"]
    assert ok["status"] == "ok" and ok["dwg_reader"] == "pycadkit" and ok["dwg_unsupported_count"] == 31
    assert any(w.startswith("DWG reader pycadkit 0.5.1 could not convert 31 entities") for w in ok["warnings"])
    assert len(ok["dwg_reader_warnings"]) == 12

    again = run(lib, out)
    assert (again["processed"], again["unchanged"], again["failed"]) == (0, 1, 2), "bad DWG files are not retried"


def test_installing_or_changing_the_reader_redoes_the_dwg(corpus_dir, tmp_path):
    if make_reader("oda").available():
        pytest.skip("ODA File Converter installed")
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy2(corpus_dir / SMALL, lib / "plan.dwg")
    shutil.copy2(corpus_dir / "files/acadsharp/samples__dynamic-blocks__BLOCKXYPARAMETER.dxf", lib / "plan.dxf")
    out = tmp_path / "out"
    oda_only = tmp_path / "oda.toml"
    oda_only.write_text('[dwg]\nreaders = ["oda"]\n')

    run(lib, out, oda_only)
    first = files(out)
    row = first.loc["plan.dwg"]
    assert row["status"] == "failed" and row["error_permanent"]
    assert "no DWG reader available (oda: the ODA File Converter is not installed" in row["error_message"]

    summary = run(lib, out)  # the default readers: ODA missing, so pycadkit
    second = files(out)
    assert summary["processed"] == 1 and summary["unchanged"] == 1, "only the DWG is redone"
    assert second.loc["plan.dwg", "status"] == "ok" and second.loc["plan.dwg", "dwg_reader"] == "pycadkit"
    assert second.loc["plan.dwg", "work_id"] != first.loc["plan.dwg", "work_id"]
    assert second.loc["plan.dxf", "work_id"] == first.loc["plan.dxf", "work_id"]
    assert run(lib, out)["unchanged"] == 2

    if LibreDwgReader().available():
        config = tmp_path / "libredwg.toml"
        config.write_text('[dwg]\nreaders = ["libredwg", "pycadkit"]\n')
        summary = run(lib, out, config)
        third = files(out)
        assert summary["processed"] == 1 and third.loc["plan.dwg", "dwg_reader"] == "libredwg"
        assert third.loc["plan.dwg", "dwg_reader_version"] == "libredwg-web-0.7.14"
        assert {Path(o).suffix for o in third.loc["plan.dwg", "outputs"]} == {".svg", ".pdf", ".png"}
