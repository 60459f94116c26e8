"""The plan (engine/plan.py): what is missing or stale is planned, what is complete is not, and the
work identity is the content, the options that shape the outputs and the pipeline version.

Real drawings in a temporary library, a real catalog and real output folders (tests/unit/engine_runs.py
runs the engine's steps in this process); the plan is read from them as the batch reads it."""

from __future__ import annotations

import shutil

import pytest

from engine.plan import work_id
from engine.version import pipeline_version
from engine.work import work_dir
from tests.unit.engine_runs import Library, engine_run, names, outcomes_of, plan_for, publish


@pytest.fixture
def library(tmp_path) -> Library:
    lib = Library(tmp_path)
    for seed, name in enumerate(["a.dxf", "b.dxf", "sub/c.dxf"]):
        lib.add(name, seed)
    return lib


def test_a_new_library_is_planned_whole(library):
    cfg = library.config()
    inputs, plan = plan_for(cfg)
    assert names(plan.todo) == ["a.dxf", "b.dxf", "sub/c.dxf"]
    assert plan.unchanged == plan.reuse == plan.still_failed == [] and plan.total == 3
    assert len({item.work_id for item in plan.todo}) == 3, "three contents, three pieces of work"
    for item in plan.todo:
        assert item.work_id == work_id(item.input.sha256, cfg.options_key("dxf"), pipeline_version())
        assert item.options == cfg.options_for("dxf")


def test_a_complete_run_leaves_nothing_to_do(library):
    cfg = library.config()
    first, row = engine_run(cfg)
    assert len(first.todo) == 3 and row["processed"] == 3
    _, again = plan_for(cfg)
    assert names(again.unchanged) == ["a.dxf", "b.dxf", "sub/c.dxf"]
    assert again.todo == again.reuse == again.still_failed == []
    assert [i.work_id for i in again.unchanged] == [i.work_id for i in first.todo]


def test_what_changed_is_new_or_lost_its_outputs_is_planned_and_only_that(library):
    cfg = library.config()
    first, _ = engine_run(cfg)
    library.add("a.dxf", seed=10)  # rewritten: stale
    library.add("new.dxf", seed=11)  # missing
    lost = next(i for i in first.todo if i.input.path == "b.dxf")
    shutil.rmtree(work_dir(cfg.out, lost.work_id))  # recorded ok, but its outputs are gone
    _, plan = plan_for(cfg)
    assert names(plan.todo) == ["a.dxf", "b.dxf", "new.dxf"]
    assert names(plan.unchanged) == ["sub/c.dxf"]
    assert next(i for i in plan.todo if i.input.path == "b.dxf").work_id == lost.work_id, "same content, same work"


def test_work_done_but_not_recorded_for_a_path_is_reused(library):
    cfg = library.config()
    _, plan = plan_for(cfg)
    outcomes_of(cfg, plan)  # the work is done, the run crashed before it published
    shutil.copy2(library.src / "a.dxf", library.src / "copy-of-a.dxf")  # and a copy appeared
    _, after = plan_for(cfg)
    assert names(after.reuse) == ["a.dxf", "b.dxf", "copy-of-a.dxf", "sub/c.dxf"]
    assert after.todo == [] and after.unchanged == []


def test_a_permanent_failure_is_not_retried_and_a_passing_one_is(library):
    (library.src / "broken.dxf").write_text("0\nSECTION\n2\nENTITIES\n0\nLINE\n8\n0\n10\nnot a number\n")
    cfg = library.config()
    _, plan = plan_for(cfg)
    (library.src / "b.dxf").rename(library.root / "b.dxf")  # gone before its turn: a passing failure
    outcomes = outcomes_of(cfg, plan)
    failed = {o.input.path: o.result for o in outcomes if o.state == "failed"}
    assert failed["broken.dxf"]["permanent"] and not failed["b.dxf"]["permanent"]
    publish(cfg, outcomes)
    (library.root / "b.dxf").rename(library.src / "b.dxf")  # back again
    _, again = plan_for(cfg)
    assert names(again.still_failed) == ["broken.dxf"], "the same input would fail the same way"
    assert names(again.todo) == ["b.dxf"]
    assert names(again.unchanged) == ["a.dxf", "sub/c.dxf"]


def test_options_that_shape_the_outputs_are_part_of_the_identity(library):
    svg = library.config()
    engine_run(svg)
    svg_and_png = library.config('[dxf]\noutputs = ["svg", "png"]\n')
    _, plan = plan_for(svg_and_png)
    assert names(plan.todo) == ["a.dxf", "b.dxf", "sub/c.dxf"], "other outputs wanted: all work again"
    assert svg.options_key("dxf") != svg_and_png.options_key("dxf")
    # Limits and the number of workers change how the work runs, not what it yields.
    limits = library.config('[dxf]\noutputs = ["svg"]\n[limits]\ntimeout_s = 77\n[run]\nworkers = 1\n')
    _, same = plan_for(limits)
    assert names(same.unchanged) == ["a.dxf", "b.dxf", "sub/c.dxf"] and same.todo == []


def test_the_pipeline_version_is_part_of_the_identity(library):
    cfg = library.config()
    engine_run(cfg, version="cadpipe-1")
    _, same = plan_for(cfg, version="cadpipe-1")
    assert len(same.unchanged) == 3
    _, upgraded = plan_for(cfg, version="cadpipe-2")
    assert names(upgraded.todo) == ["a.dxf", "b.dxf", "sub/c.dxf"], "an upgrade that changes outputs redoes them"
    assert {i.work_id for i in upgraded.todo}.isdisjoint(i.work_id for i in same.unchanged)


def test_one_content_at_two_paths_is_one_piece_of_work(library):
    shutil.copy2(library.src / "a.dxf", library.src / "sub" / "a-again.dxf")
    _, plan = plan_for(library.config())
    by_path = {i.input.path: i.work_id for i in plan.todo}
    assert by_path["a.dxf"] == by_path["sub/a-again.dxf"] != by_path["b.dxf"]
