"""The declarative config: defaults, overrides, and loud errors for mistakes."""

from pathlib import Path

import pytest

from engine.config import REPO_CONFIG, ConfigError, load_config


def test_repository_config_matches_the_documented_defaults():
    cfg = load_config(REPO_CONFIG)
    assert cfg.sources == (REPO_CONFIG.parent / "data" / "samples",)
    assert cfg.out == REPO_CONFIG.parent / "out"
    assert cfg.raw["dxf"]["page_size"] == "A3" and cfg.raw["dxf"]["orientation"] == "landscape"


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path):
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "c.toml"
    path.write_text('[inputs]\nsources = ["lib"]\n[output]\nroot = "results"\n')
    cfg = load_config(path)
    assert cfg.sources == (tmp_path / "conf" / "lib",)
    assert cfg.out == tmp_path / "conf" / "results"


@pytest.mark.parametrize(
    "text, words",
    [
        ("[dxf]\npng_dpy = 100\n", ["dxf.png_dpy", "png_dpi"]),
        ("[renders]\nx = 1\n", ["[renders]"]),
        ("[dxf]\noutputs = ['svg', 'jpg']\n", ["dxf.outputs", "jpg"]),
        ("[limits]\ntimeout_s = 'long'\n", ["limits.timeout_s", "number"]),
        ("[dxf\n", ["invalid TOML"]),
        # Every number finite and in range:
        ("[limits]\ntimeout_s = nan\n", ["limits.timeout_s", "finite"]),
        ("[limits]\ntimeout_s = inf\n", ["limits.timeout_s", "finite"]),
        ("[limits]\ntimeout_s = -inf\n", ["limits.timeout_s", "finite"]),
        ("[limits]\ntimeout_s = 0\n", ["limits.timeout_s", "> 0"]),
        ("[limits]\nmemory_mb = nan\n", ["limits.memory_mb", "finite"]),
        ("[limits]\nmemory_mb = 1\n", ["limits.memory_mb", "at least 1024"]),
        ("[retries]\nbackoff_s = -1\n", ["retries.backoff_s", ">= 0"]),
        ("[retries]\njitter = 2.0\n", ["retries.jitter", "<= 1"]),
        ("[retries]\nattempts = 0\n", ["retries.attempts", ">= 1"]),
        ("[run]\nworkers = 100000\n", ["run.workers", "per core"]),
        ("[run]\nworkers = -2\n", ["run.workers"]),
        ("[run]\nworkers = 2.5\n", ["run.workers", "whole number"]),
        ("[run]\nchunk_size = -1\n", ["run.chunk_size", ">= 0"]),
        ("[dxf]\npng_dpi = 0\n", ["dxf.png_dpi", ">= 1"]),
        ("[step]\nstl_linear_tolerance = 0.0\n", ["step.stl_linear_tolerance", "> 0"]),
        ("[step.densities]\nsteel = nan\n", ["step.densities.steel", "positive"]),
        ("[webhooks]\ntimeout_s = nan\n", ["webhooks.timeout_s", "finite"]),
        ("[watch]\nsettle_s = inf\n", ["watch.settle_s", "finite"]),
        ("[watch]\nretry_s = 0\n", ["watch.retry_s", "> 0"]),
    ],
)
def test_mistakes_name_the_option(tmp_path: Path, text: str, words: list[str]):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    for word in words:
        assert word in str(info.value)


def test_output_options_change_the_work_identity_of_their_family_only(tmp_path: Path):
    base = load_config(REPO_CONFIG)
    path = tmp_path / "c.toml"
    path.write_text("[dxf]\npng_dpi = 300\n")
    changed = load_config(path)
    assert base.options_key("dxf") != changed.options_key("dxf")
    assert base.options_key("dxf-binary") == base.options_key("dxf")
    assert base.options_key("step") == changed.options_key("step")


def test_the_png_compressions_checked_are_those_the_writer_knows():
    from converters.png_writer import COMPRESSIONS
    from engine.config import PNG_COMPRESSIONS

    assert PNG_COMPRESSIONS == COMPRESSIONS


def test_how_pngs_are_compressed_is_outside_the_work_identity(tmp_path: Path):
    base = load_config(REPO_CONFIG)
    path = tmp_path / "c.toml"
    path.write_text('[dxf]\npng_compression = "small"\n')
    small = load_config(path)
    assert small.options_for("dxf")["png_compression"] == "small", "the workers are told"
    assert small.options_key("dxf") == base.options_key("dxf"), "the same pixels: nothing to redo"


def test_command_line_numbers_are_checked_as_such(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"command line: run.chunk_size must be >= 0"):
        load_config(REPO_CONFIG, overrides={"run": {"chunk_size": -1}})
    with pytest.raises(ConfigError, match=r"command line: run.workers"):
        load_config(REPO_CONFIG, overrides={"run": {"workers": 10**5}})


def test_the_page_sizes_checked_are_those_the_renderer_knows():
    from converters.dxf_render import _PAGE_SIZES_MM
    from engine.config import PAGE_SIZES

    assert [size.lower() for size in PAGE_SIZES] == list(_PAGE_SIZES_MM)
    for size in PAGE_SIZES:  # any case, as the renderer takes it
        assert load_config(REPO_CONFIG, overrides={"dxf": {"page_size": size.lower()}})


def test_a_png_compression_in_any_case_reaches_the_renderer(tmp_path: Path):
    from tests.unit.engine_runs import Library, outcomes_of, plan_for

    lib = Library(tmp_path)
    lib.add("part.dxf")
    cfg = lib.config('[dxf]\noutputs = ["png"]\npng_compression = " Small "\n')  # the config takes it
    _, plan = plan_for(cfg)
    [outcome] = outcomes_of(cfg, plan)
    assert outcome.state == "processed" and outcome.result["status"] == "ok", outcome.result
