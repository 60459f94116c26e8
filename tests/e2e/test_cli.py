"""The command line as people and cron see it: exit codes exactly as documented (0, 1, 2, 3), one
clear line for each configuration mistake, an unreachable server, a refused run; what `--quiet`
and `--json` print; `cadpipe failures`; a warning for a source with nothing to process.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, catalog_table

SAMPLES = REPO / "data" / "samples"
BROKEN = "0\nSECTION\n2\nENTITIES\n0\nLINE\n8\n0\n10\nnot a number\n"
PAGE_SIZES = "A0, A1, A2, A3, A4, letter, legal, tabloid"


def cadpipe(*args: str, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once it is closed


# Each mistake, and what its one line must name besides the file: the option and what is allowed.
CONFIG_MISTAKES = [
    ('[dxf]\npage_size = "A5"\n', ["dxf.page_size", PAGE_SIZES, "'A5'"]),
    ("[dxff]\npage_size = 'A3'\n", ["unknown section [dxff]", "did you mean dxf?"]),
    ("[dxf]\npng_dpy = 100\n", ["unknown option dxf.png_dpy", "did you mean png_dpi?"]),
    ('[dxf]\norientation = "sideways"\n', ["dxf.orientation", "landscape, portrait", "'sideways'"]),
    ('[dxf]\noutputs = ["svg", "jpg"]\n', ["dxf.outputs", "'jpg'", "svg, pdf, png"]),
    ("[dxf]\npng_dpi = 0\n", ["dxf.png_dpi", ">= 1 and <= 2400", "0"]),
    ('[dxf]\npng_compression = "zip"\n', ["dxf.png_compression", "fast, small", "'zip'"]),
    ("[dxf]\nmargin_mm = -5\n", ["dxf.margin_mm", ">= 0 and <= 500"]),
    ("[limits]\ntimeout_s = 0\n", ["limits.timeout_s", "> 0"]),
    ("[limits]\ntimeout_s = nan\n", ["limits.timeout_s", "finite"]),
    ("[limits]\nmemory_mb = 512\n", ["limits.memory_mb", "at least 1024", "512"]),
    ("[run]\nworkers = 100000\n", ["run.workers", "per core", "100000"]),
    ('[run]\nrunner = "threads"\n', ["run.runner", "processes, dask", "'threads'"]),
    ('[run]\nfail_on = "never"\n', ["run.fail_on", "new, any", "'never'"]),
    ("[retries]\njitter = 2.0\n", ["retries.jitter", "<= 1"]),
    ('[retries]\nattempts = "three"\n', ["retries.attempts", "number", "'three'"]),
    ('[inputs]\nformats = ["dxf", "pdf"]\n', ["inputs.formats", "'pdf'", "dxf, dwg, step, iges, stl"]),
    ("[inputs]\nformats = []\n", ["inputs.formats", "at least one of dxf, dwg, step, iges, stl"]),
    ('[inputs]\nsources = [""]\n', ["inputs.sources", "empty path"]),
    ('[output]\nroot = ""\n', ["output.root", "empty path"]),
    ('[dwg]\nreaders = ["autocad"]\n', ["dwg.readers", "'autocad'", "oda, pycadkit, libredwg"]),
    ('[webhooks]\nbatch_failed = ["ftp://example.com/x"]\n', ["webhooks.batch_failed", "http:// or https://"]),
    ('[watch]\ntrigger = "cron"\n', ["watch.trigger", "auto, deployment, local", "'cron'"]),
    ('[watch]\ndeployment = "drop-folder"\n', ["watch.deployment", "flow-name/deployment-name"]),
    ('[step]\ndefault_material = "unobtainium"\n', ["step.default_material", "[step.densities]", "steel"]),
    ("[step]\nstl_angular_tolerance = 4.0\n", ["step.stl_angular_tolerance", "<= 3.14159"]),
    ("[dxf\npage_size = 'A3'\n", ["invalid TOML"]),
]


@pytest.mark.parametrize("text, words", CONFIG_MISTAKES, ids=[t.splitlines()[-1][:40] for t, _ in CONFIG_MISTAKES])
def test_each_config_mistake_is_one_line_naming_file_option_and_allowed_values_and_exits_2(tmp_path, text, words):
    config = tmp_path / "bad.toml"
    config.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    proc = cadpipe("run", str(SAMPLES), "--config", str(config), "--out", str(out), timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    [line] = proc.stderr.splitlines()  # one line, no traceback
    assert line.startswith("cadpipe: configuration error: ") and str(config) in line
    for word in words:
        assert word in line, f"{word!r} not in {line!r}"
    assert not out.exists(), "found before anything starts"


def test_a_usage_mistake_exits_2():
    proc = cadpipe("run", "--workers", "0", timeout=120)
    assert proc.returncode == 2 and "--workers: must be at least 1" in proc.stderr


def test_an_unreachable_prefect_server_is_one_line_naming_it_and_exits_3(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/api"
    out = tmp_path / "out"
    proc = cadpipe("run", str(SAMPLES), "--out", str(out), env={"PREFECT_API_URL": url}, timeout=300)
    assert proc.returncode == 3, proc.stderr
    [line] = proc.stderr.splitlines()
    assert url in line and "does not answer" in line and "prefect server start" in line
    assert proc.stdout == "" and not out.exists(), "nothing ran"
    recipe = REPO / "editors" / "recipe-example.yaml"
    args = ["apply", str(recipe), "--library", str(REPO / "data" / "example-library"), "--dry-run", "--out", str(out)]
    proc = cadpipe(*args, env={"PREFECT_API_URL": url}, timeout=300)
    assert proc.returncode == 3 and url in proc.stderr and "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def quiet_runs(tmp_path_factory):
    """`cadpipe run --quiet` over a library with a corrupt drawing, twice; then --json."""
    lib = tmp_path_factory.mktemp("lib")
    for name in ("gear.dxf", "text_alignments.dxf"):
        shutil.copy(SAMPLES / name, lib / name)
    (lib / "broken.dxf").write_text(BROKEN)
    share = tmp_path_factory.mktemp("unmounted-share")  # a source with nothing in it
    out = tmp_path_factory.mktemp("out")
    args = ("run", str(lib), str(share), "--out", str(out), "--workers", "1")
    first = cadpipe(*args, "--quiet")
    second = cadpipe(*args, "--quiet")
    as_json = cadpipe(*args, "--json")
    return {"lib": lib, "out": out, "runs": [first, second, as_json]}


def test_quiet_prints_only_the_summary_and_the_failures(quiet_runs):
    first, second, _ = quiet_runs["runs"]
    assert first.returncode == 1, first.stderr[-2000:]
    assert first.stderr == "", "no bar, no log lines"
    lines = first.stdout.splitlines()
    failed = [line for line in lines if line.strip().startswith("failed ")]
    assert len(failed) == 1 and "broken.dxf: load: " in failed[0], "each failure once, with its reason"
    assert sum("broken.dxf" in line for line in lines) == 1
    assert not any("gear.dxf" in line or "Task run" in line or "Flow run" in line for line in lines)
    assert any("files seen" in line for line in lines) and any(line.startswith("catalog: ") for line in lines)
    [warning] = [line for line in lines if line.startswith("warning:")]
    assert "unmounted-share" in warning and "is empty: nothing to process there" in warning
    # The second, unchanged: the corrupt file is a known failure, not news (exit 0).
    assert second.returncode == 0 and second.stderr == ""
    assert "1 known failure" in second.stdout and not any(
        line.strip().startswith("failed ") for line in second.stdout.splitlines()
    )


def test_json_prints_the_summary_as_one_object(quiet_runs):
    as_json = quiet_runs["runs"][2]
    assert as_json.returncode == 0 and as_json.stderr == ""
    [line] = as_json.stdout.splitlines()
    summary = json.loads(line)
    assert (summary["failed"], summary["known_failures"], summary["new_failures"]) == (1, 1, 0)
    assert summary["exit_code"] == 0 and summary["fail_on"] == "new"
    [failure] = summary["failed_files"]
    assert failure["known"] and failure["path"] == "broken.dxf" and failure["since"]
    runs = catalog_table(quiet_runs["out"], "runs").sort_values("started_at", ignore_index=True)
    assert list(runs["new_failures"]) == [1, 0, 0] and list(runs["known_failures"]) == [0, 1, 1]
    # The two unchanged reruns had nothing for the workers: no flow run on the embedded default.
    assert runs["flow_run_id"].notna().tolist() == [True, False, False]


# What `--quiet` may print: the summary table, this run's failures, where the results are.
SUMMARY_LINE = re.compile(r"(cadpipe run \S+|[┏┃┡│└].*|  failed .+|(catalog|report|gallery|register): +\S+)$")


@contextlib.contextmanager
def _port_taken(port: int):
    """Port `port` of the loopback interface in use while the block runs (by us, or already)."""
    with socket.socket() as sock:
        with contextlib.suppress(OSError):  # already in use: the same for the test
            sock.bind(("127.0.0.1", port))
            sock.listen(1)
        yield


@pytest.mark.parametrize("runner", ["processes", "dask"])
def test_quiet_over_corpus_files_prints_only_the_summary_and_the_failures(
    tmp_path, corpus_dir, manifest, cli_env, runner
):
    """A few corpus drawings, one of them one ezdxf cannot load, under the session's Prefect
    server; with `--runner dask` on the local cluster it starts, whose worker processes share this
    terminal (their Prefect log lines were printed there, INFO per file)."""
    dxf = sorted((r for r in manifest if r["format"] == "dxf"), key=lambda r: int(r["bytes"]))
    broken = next(r for r in dxf if r["ezdxf_load"] == "fail")
    good = [r for r in dxf if r["ezdxf_load"] == "ok"][:3]
    lib = tmp_path / "lib"
    lib.mkdir()
    for row in [broken, *good]:
        shutil.copy(corpus_dir / row["path"], lib / Path(row["path"]).name)
    args = ["run", str(lib), "--out", str(tmp_path / "out"), "--workers", "1", "--runner", runner, "--quiet"]
    with contextlib.ExitStack() as stack:
        if runner == "dask":  # Dask's default HTTP port taken, as by another cluster: still no warning here
            stack.enter_context(_port_taken(8787))
        proc = cadpipe(*args, env=cli_env)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert proc.stderr == "", "nothing on stderr: no bar, no log line of this process or of a Dask worker"
    lines = proc.stdout.splitlines()
    assert [line for line in lines if not SUMMARY_LINE.match(line)] == [], proc.stdout
    [failed] = [line for line in lines if line.startswith("  failed ")]
    assert f"failed {Path(broken['path']).name}: load: " in failed
    assert not any(Path(r["path"]).name in proc.stdout for r in good), "no line per file that went well"
    assert any("files seen" in line for line in lines) and any(line.startswith("catalog: ") for line in lines)


def test_fail_on_any_counts_known_failures(quiet_runs):
    proc = cadpipe("run", str(quiet_runs["lib"]), "--out", str(quiet_runs["out"]), "--quiet", "--fail-on", "any")
    assert proc.returncode == 1, proc.stderr
    assert any(line.strip().startswith("known failure ") for line in proc.stdout.splitlines())


def test_failures_lists_the_current_failures_with_age_and_reason(quiet_runs):
    proc = cadpipe("failures", "--out", str(quiet_runs["out"]), timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("1 failed file in ") and "1 permanent" in lines[0]
    assert "InputError" in lines[1] and "permanent" in lines[1]
    assert f"{quiet_runs['lib']}/broken.dxf: load: " in lines[1]
    assert lines[1].split()[1] in ("s", "min", "h", "day", "days")  # an age: "40 s", "3 min"
    listed = json.loads(cadpipe("failures", "--out", str(quiet_runs["out"]), "--json", timeout=120).stdout)
    assert [(f["path"], f["stage"], f["permanent"]) for f in listed] == [("broken.dxf", "load", True)]
    missing = cadpipe("failures", "--out", str(quiet_runs["out"] / "nope"), timeout=120)
    assert missing.returncode == 2 and "no catalog" in missing.stderr


def test_replacing_the_corrupt_file_leaves_no_failure(quiet_runs):
    """Last of the module: it changes the shared library."""
    lib, out = quiet_runs["lib"], quiet_runs["out"]
    shutil.copy(SAMPLES / "hatch_pattern.dxf", lib / "broken.dxf")
    proc = cadpipe("run", str(lib), "--out", str(out), "--json")
    summary = json.loads(proc.stdout)
    assert proc.returncode == 0 and summary["failed"] == 0 and summary["processed"] == 1
    assert "no failures recorded" in cadpipe("failures", "--out", str(out), timeout=120).stdout


UNRESOLVED_STEP = """ISO-10303-21;
HEADER;
FILE_DESCRIPTION((''),'2;1');
FILE_NAME('part.step','2024-01-01T00:00:00',(''),(''),'','','');
FILE_SCHEMA(('AUTOMOTIVE_DESIGN'));
ENDSEC;
DATA;
#1=CARTESIAN_POINT('',(0.,0.,0.));
#2=DIRECTION('',(0.,0.,1.));
#3=DIRECTION('',(1.,0.,0.));
#4=AXIS2_PLACEMENT_3D('',#1,#2,#3);
#6=SPHERICAL_SURFACE('',#4,10.);
#7=MANIFOLD_SOLID_BREP('',#8);
ENDSEC;
END-ISO-10303-21;
"""


def test_what_a_library_prints_is_kept_with_its_file_never_on_the_terminal(tmp_path):
    """OpenCASCADE writes "*** ERR StepReaderData ***" straight to the process's stderr."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "part.step").write_text(UNRESOLVED_STEP)
    shutil.copy(SAMPLES / "gear.dxf", lib / "gear.dxf")
    proc = cadpipe("run", str(lib), "--out", str(tmp_path / "out"), "--workers", "1")
    assert "StepReaderData" not in proc.stdout + proc.stderr
    files = catalog_table(tmp_path / "out", "files").set_index("path")
    [said] = [w for w in files.loc["part.step", "warnings"] if "StepReaderData" in w]
    assert said.startswith("library output while processing") and "Unresolved Reference" in said
    assert "\x1b" not in said and "\\x1b" not in said, "without the terminal's colour codes"
    assert not any("library output" in w for w in files.loc["gear.dxf", "warnings"]), "only its own file's"


TEARDOWN_ABORTS = """
import atexit, os, sys
import flows.cli

class AbortsAtTeardown:  # as Arrow's thread pools may, once main is done (flows.cli.entry)
    def __del__(self):
        os.abort()

flows.cli.held_until_teardown = AbortsAtTeardown()
atexit.register(lambda: open(os.environ["MARKER"], "w").write("atexit ran"))
sys.argv[1:] = ["failures", "--out", sys.argv[1]]
"""


@pytest.mark.parametrize("ending", ["entry()", "sys.exit(main())"])
def test_nothing_in_the_interpreter_teardown_changes_the_exit_code(tmp_path, ending):
    marker = tmp_path / "marker"
    script = TEARDOWN_ABORTS + ("flows.cli.entry()" if ending == "entry()" else "sys.exit(flows.cli.main())")
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MARKER": str(marker)},
    )
    assert marker.read_text() == "atexit ran", "the atexit handlers (Prefect's drains, logging) still run"
    if ending == "entry()":
        assert proc.returncode == 2, proc.stderr  # main's code: no catalog at that --out
        assert "no catalog at" in proc.stdout + proc.stderr
    else:  # what `cadpipe` did before: the teardown's abort became the exit code
        assert proc.returncode == -6, proc.stderr
