"""The drop-folder watcher with real watchdog observers on temporary folders, running the real batch
flow in process under Prefect's test harness. Settle times and windows are small through the config."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import threading
import time
from pathlib import Path

import ezdxf
import pandas as pd
import pytest

from engine.config import ConfigError, load_config
from flows.cli import build_parser
from flows.watch import PROCESSED_DIR, Watcher, WatchSettings, is_input
from tests.conftest import catalog_table
from tests.hostile_inputs import endless_drawing

pytestmark = pytest.mark.usefixtures("prefect_harness")


def dxf_text(seed: int, lines: int = 0) -> str:
    """A small drawing whose content differs by seed (so each is its own piece of work); ezdxf
    stamps the time into the header, so two calls with one seed differ too."""
    doc = ezdxf.new("R2010")
    msp = doc.modelspace()
    msp.add_line((0, 0), (100 + seed, 50))
    msp.add_circle((seed, seed), radius=5 + seed % 7)
    msp.add_text(f"PART {seed}", dxfattribs={"height": 2.5}).set_placement((10, 10))
    for i in range(lines):
        msp.add_line((i, 0), (i, 10 + i % 17))
    stream = io.StringIO()
    doc.write(stream)
    return stream.getvalue()


def write_config(tmp_path: Path, **watch) -> Path:
    options = {
        "settle_s": 0.6,
        "batch_window_s": 1.0,
        "max_wait_s": 20.0,
        "poll_interval_s": 0.2,
        "trigger": "local",
        "retry_s": 0.5,
        **watch,
    }
    lines = ["[output]", 'root = "out"', "[dxf]", 'outputs = ["svg"]', "[retries]", "attempts = 1", "[watch]"]
    for key, value in options.items():
        lines.append(f"{key} = {str(value).lower() if isinstance(value, bool) else repr(value)}".replace("'", '"'))
    path = tmp_path / "cadpipe.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


def make_watcher(tmp_path: Path, drop: Path, poll: bool = False, **watch) -> Watcher:
    cfg = load_config(write_config(tmp_path, **watch))
    return Watcher(cfg, WatchSettings.from_config(cfg, [str(drop)], poll=poll))


def files_table(out: Path) -> pd.DataFrame:
    if not (out / "catalog" / "files" / "_delta_log").is_dir():
        return pd.DataFrame(columns=["path", "status", "sha256"])
    return catalog_table(out, "files")


def wait_for(predicate, timeout: float = 120.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def settled(watcher: Watcher, out: Path, names: set[str]) -> bool:
    return names <= set(files_table(out)["path"]) and not watcher.busy


def runs_with(watcher: Watcher, name: str) -> list:
    return [r for r in watcher.runs if any(p.name == name for p in r.paths)]


def after_all_earlier_events(watcher: Watcher, drop: Path, out: Path) -> None:
    """Drop a marker file and wait until it is recorded: the watcher sees changes in order, so
    whatever it would still do about the earlier ones (a wrong second run) has been done by then.
    An event to wait for, not a guessed number of seconds."""
    (drop / "marker.dxf").write_text(dxf_text(99), encoding="utf-8")
    wait_for(lambda: settled(watcher, out, {"marker.dxf"}), what="the marker recorded")


@pytest.mark.parametrize("poll", [False, True], ids=["events", "polling"])
def test_a_file_written_slowly_is_processed_once_after_it_is_complete(tmp_path, drop, poll):
    text = dxf_text(1).encode()
    chunks = [text[i : i + len(text) // 5 + 1] for i in range(0, len(text), len(text) // 5 + 1)]
    target = drop / "slow.dxf"
    with make_watcher(tmp_path, drop, poll=poll, settle_s=1.5) as watcher:
        with open(target, "wb") as fh:  # one writer, pausing longer than the batch window
            for chunk in chunks:
                fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
                time.sleep(0.5 if not poll else 0.4)
        completed = time.monotonic()
        out = tmp_path / "out"
        wait_for(lambda: settled(watcher, out, {"slow.dxf"}), what="slow.dxf recorded")
        after_all_earlier_events(watcher, drop, out)  # room for a wrong second run
        runs = runs_with(watcher, "slow.dxf")
    assert len(runs) == 1, "exactly one run took the file"
    assert runs[0].started_at >= completed, "the run started only after the writer finished"
    files = files_table(out).set_index("path")
    assert sorted(files.index) == ["marker.dxf", "slow.dxf"]
    row = files.loc["slow.dxf"]
    assert row["status"] == "ok"
    assert row["sha256"] == hashlib.sha256(text).hexdigest(), "the complete content was processed"


def test_a_writer_that_closes_after_each_chunk_never_has_a_partial_version_taken(tmp_path, drop):
    text = dxf_text(20, lines=300).encode()
    size = len(text) // 6 + 1
    chunks = [text[i : i + size] for i in range(0, len(text), size)]
    target = drop / "chunked.dxf"
    settle_s, window_s = 2.0, 0.5
    out = tmp_path / "out"
    with make_watcher(tmp_path, drop, settle_s=settle_s, batch_window_s=window_s) as watcher:
        gaps, last = [], time.monotonic()
        for chunk in chunks:
            with open(target, "ab") as fh:  # open, append, close: inotify reports a close each time
                fh.write(chunk)
            now = time.monotonic()
            gaps.append(now - last)
            last = now
            time.sleep(0.8)  # longer than the batch window: a run may start between two chunks
        completed = time.monotonic()
        wait_for(lambda: settled(watcher, out, {"chunked.dxf"}), what="chunked.dxf recorded")
        runs = runs_with(watcher, "chunked.dxf")
    if max(gaps) < settle_s:  # this writer never paused as long as settle_s (measured, not assumed)
        assert len(runs) == 1 and runs[0].started_at >= completed, "only the complete file was taken"
    [row] = files_table(out).to_dict("records")
    assert row["status"] == "ok" and row["sha256"] == hashlib.sha256(text).hexdigest()
    assert len(catalog_table(out, "runs")) == len(runs)


def test_a_file_held_open_for_writing_is_not_taken_however_long_the_writer_pauses(tmp_path, drop):
    text = dxf_text(21).encode()
    target = drop / "paused.dxf"
    out = tmp_path / "out"
    with make_watcher(tmp_path, drop, poll=True, settle_s=0.6) as watcher:
        with open(target, "wb") as fh:
            fh.write(text[: len(text) // 2])
            fh.flush()
            wrote_at = time.monotonic()
            # Pause until the watcher found it unchanged for settle_s and still held open: it then
            # looks again later, so its last change moves past our last write.
            wait_for(
                lambda: (watcher.last_change(target) or 0) > wrote_at + 0.6, what="the watcher to find it held open"
            )
            assert runs_with(watcher, "paused.dxf") == [], "taken while its writer still held it open"
            fh.write(text[len(text) // 2 :])
        wait_for(lambda: settled(watcher, out, {"paused.dxf"}), what="paused.dxf recorded")
        runs = runs_with(watcher, "paused.dxf")
    assert len(runs) == 1
    [row] = files_table(out).to_dict("records")
    assert row["status"] == "ok" and row["sha256"] == hashlib.sha256(text).hexdigest()


def test_a_link_out_of_a_drop_folder_is_recorded_and_never_read(tmp_path, drop):
    secret = tmp_path / "shadow"
    secret.write_bytes(b"root:$6$secret:19000::::::\n")
    os.chmod(secret, 0o640)
    out = tmp_path / "out"
    with make_watcher(tmp_path, drop) as watcher:
        (drop / "sub").mkdir()
        os.symlink(secret, drop / "sub" / "shadow.dxf")
        (drop / "sub" / "part.dxf").write_text(dxf_text(22), encoding="utf-8")
        wait_for(lambda: settled(watcher, out, {"sub/shadow.dxf", "sub/part.dxf"}), what="both recorded")
        after_all_earlier_events(watcher, drop, out)  # room for a wrong retry run
        taken = [p.name for r in watcher.runs for p in r.paths if p.name != "marker.dxf"]
    files = files_table(out).set_index("path").drop("marker.dxf")
    assert set(files.index) == {"sub/shadow.dxf", "sub/part.dxf"} and set(files["source_root"]) == {str(drop)}
    assert files.loc["sub/shadow.dxf", "error_class"] == "OutsideSource"
    assert pd.isna(files.loc["sub/shadow.dxf", "quarantine"])
    assert not any(b"secret" in p.read_bytes() for p in out.rglob("*") if p.is_file())
    assert sorted(taken) == ["part.dxf", "shadow.dxf"], "each file in one run, none retried"


def test_a_burst_of_50_files_gives_few_runs_and_every_file_is_processed(tmp_path, drop):
    texts = {f"part-{i:02d}.dxf": dxf_text(i) for i in range(50)}
    window_s = 1.5
    with make_watcher(tmp_path, drop, batch_window_s=window_s) as watcher:
        started = time.monotonic()
        for name, text in texts.items():
            (drop / name).write_text(text, encoding="utf-8")
        burst_s = time.monotonic() - started
        out = tmp_path / "out"
        wait_for(lambda: settled(watcher, out, set(texts)), timeout=300, what="50 files recorded")
        runs = list(watcher.runs)
    files = files_table(out)
    assert sorted(files["path"]) == sorted(texts)
    assert (files["status"] == "ok").all()
    if burst_s < window_s:  # one burst, as this writer measured it (a loaded machine may stretch it)
        assert 1 <= len(runs) <= 3, f"{len(runs)} runs for one burst"
    taken = [p.name for r in runs for p in r.paths]
    assert sorted(taken) == sorted(texts), "each file went into exactly one run"


def test_files_dropped_while_the_watcher_was_stopped_are_processed_at_its_next_start(tmp_path, drop):
    (drop / "before.dxf").write_text(dxf_text(3), encoding="utf-8")
    out = tmp_path / "out"
    with make_watcher(tmp_path, drop) as first:
        wait_for(lambda: settled(first, out, {"before.dxf"}), what="before.dxf recorded")
    # Stopped: these arrive with nobody watching, one of them in a subfolder.
    (drop / "while-down.dxf").write_text(dxf_text(4), encoding="utf-8")
    (drop / "sub").mkdir()
    (drop / "sub" / "nested.dxf").write_text(dxf_text(5), encoding="utf-8")
    with make_watcher(tmp_path, drop) as second:
        wait_for(lambda: settled(second, out, {"while-down.dxf", "sub/nested.dxf"}), what="the sweep's files recorded")
        runs = list(second.runs)
    assert sorted(p.name for r in runs for p in r.paths) == ["nested.dxf", "while-down.dxf"], (
        "the sweep takes only what the catalog does not record yet"
    )
    files = files_table(out)
    assert sorted(files["path"]) == ["before.dxf", "sub/nested.dxf", "while-down.dxf"], "known below the drop folder"
    assert set(files["source_root"]) == {str(drop)}
    assert (files["status"] == "ok").all()


def test_temporary_and_partial_names_are_ignored_until_renamed_into_place(tmp_path, drop):
    text = dxf_text(6)
    ignored = ["upload.dxf.part", "export.tmp", "~$locked.dxf", ".hidden.dxf"]
    with make_watcher(tmp_path, drop) as watcher:
        for name in ignored:
            (drop / name).write_text(text, encoding="utf-8")
        (drop / ".cache").mkdir()
        (drop / ".cache" / "inside.dxf").write_text(text, encoding="utf-8")
        time.sleep(2.5)  # several settle times and windows: nothing may start
        assert watcher.runs == [] and not watcher.busy
        os.rename(drop / "upload.dxf.part", drop / "upload.dxf")  # the usual "write, then rename" upload
        out = tmp_path / "out"
        wait_for(lambda: settled(watcher, out, {"upload.dxf"}), what="upload.dxf recorded")
        runs = list(watcher.runs)
    assert [p.name for r in runs for p in r.paths] == ["upload.dxf"]
    assert list(files_table(out)["path"]) == ["upload.dxf"]
    assert all((drop / name).exists() for name in ignored[1:]), "ignored files are left alone"


def test_a_failing_run_never_stops_the_watcher_and_its_files_are_tried_again(tmp_path, drop):
    out = tmp_path / "out"
    out.write_text("not a folder")  # every run fails: the output root cannot be created
    with make_watcher(tmp_path, drop) as watcher:
        (drop / "first.dxf").write_text(dxf_text(7), encoding="utf-8")
        wait_for(lambda: any(r.error or r.retried for r in watcher.runs), what="a failed run")
        failed = watcher.runs[0]
        assert failed.retried == [drop / "first.dxf"] and failed.recorded == {}
        out.unlink()  # the fault goes away; the watcher is still there and retries
        (drop / "second.dxf").write_text(dxf_text(8), encoding="utf-8")
        wait_for(lambda: settled(watcher, out, {"first.dxf", "second.dxf"}), what="both files recorded")
    files = files_table(out)
    assert sorted(files["path"]) == ["first.dxf", "second.dxf"] and (files["status"] == "ok").all()


def test_a_file_that_failed_for_a_passing_reason_is_tried_again(tmp_path, drop):
    cfg = load_config(write_config(tmp_path))
    config = Path(cfg.path)
    config.write_text(config.read_text() + "[limits]\ntimeout_s = 0.3\n", encoding="utf-8")
    (drop / "slowpoke.dxf").write_bytes(endless_drawing())  # never finishes: it times out, however fast the machine
    cfg = load_config(config)
    with Watcher(cfg, WatchSettings.from_config(cfg, [str(drop)])) as watcher:
        wait_for(lambda: len(runs_with(watcher, "slowpoke.dxf")) >= 2, what="a second run of the file")
    first = runs_with(watcher, "slowpoke.dxf")[0]
    assert first.recorded == {str(drop / "slowpoke.dxf"): "failed"} and first.retried == [drop / "slowpoke.dxf"]
    row = files_table(tmp_path / "out").iloc[0]
    assert row["error_class"] == "Timeout" and not row["error_permanent"]


def test_originals_move_to_processed_only_when_asked_and_nothing_is_deleted(tmp_path, drop, corpus_dir, manifest):
    broken = min(
        (r for r in manifest if r["format"] == "dxf" and r["ezdxf_load"] == "fail"), key=lambda r: int(r["bytes"])
    )
    shutil.copy(corpus_dir / broken["path"], drop / "broken.dxf")
    good = dxf_text(9)
    (drop / "good.dxf").write_text(good, encoding="utf-8")
    (drop / PROCESSED_DIR).mkdir()
    (drop / PROCESSED_DIR / "good.dxf").write_text("an earlier file of the same name", encoding="utf-8")
    out = tmp_path / "out"
    with make_watcher(tmp_path, drop, move_processed=True) as watcher:
        wait_for(lambda: settled(watcher, out, {"good.dxf", "broken.dxf"}), what="both recorded")
        moved = [p for r in watcher.runs for p in r.moved]
    files = files_table(out).set_index("path")
    assert files.loc["good.dxf", "status"] == "ok" and files.loc["broken.dxf", "status"] == "failed"
    assert moved == [drop / PROCESSED_DIR / "good-1.dxf"], "moved beside the earlier one, never over it"
    assert not (drop / "good.dxf").exists() and (drop / "broken.dxf").exists(), "the failed original stays"
    assert (drop / PROCESSED_DIR / "good.dxf").read_text() == "an earlier file of the same name"
    assert (drop / PROCESSED_DIR / "good-1.dxf").read_text() == good


def test_originals_stay_in_place_by_default(tmp_path, drop):
    text = dxf_text(10)
    (drop / "stays.dxf").write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    with make_watcher(tmp_path, drop) as watcher:
        wait_for(lambda: settled(watcher, out, {"stays.dxf"}), what="stays.dxf recorded")
    assert (drop / "stays.dxf").read_text() == text
    assert not (drop / PROCESSED_DIR).exists()


def test_settings_and_command_line(tmp_path, drop):
    cfg = load_config(write_config(tmp_path))
    with pytest.raises(ConfigError, match="no folder to watch"):
        WatchSettings.from_config(cfg)
    with pytest.raises(ConfigError, match="watch.trigger must be one of auto, deployment, local"):
        load_config(write_config(tmp_path, trigger="sometimes"))  # the whole config is checked up front
    settings = WatchSettings.from_config(cfg, [str(drop), str(drop)], poll=True)
    assert settings.folders == (drop.resolve(),) and settings.poll
    missing = WatchSettings.from_config(cfg, [str(tmp_path / "nope")])
    with pytest.raises(FileNotFoundError, match="drop folder does not exist"):
        Watcher(cfg, missing).start()

    args = build_parser().parse_args(["watch", str(drop), "--out", "/tmp/x", "--config", "c.toml", "--poll"])
    assert (args.command, args.folders, args.out, args.config, args.poll) == (
        "watch",
        [str(drop)],
        "/tmp/x",
        "c.toml",
        True,
    )


def test_only_cad_inputs_of_enabled_formats_are_taken(tmp_path):
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    (tmp_path / "drawing.txt").write_text(dxf_text(11), encoding="utf-8")  # DXF content, wrong name
    (tmp_path / "empty.dxf").write_bytes(b"")  # a CAD name, no content: the batch records it failed
    assert not is_input(tmp_path / "notes.txt", ["dxf"])
    assert is_input(tmp_path / "drawing.txt", ["dxf"])
    assert not is_input(tmp_path / "drawing.txt", ["step"])
    assert is_input(tmp_path / "empty.dxf", ["dxf"])


def test_the_watcher_thread_ends_with_stop(tmp_path, drop):
    watcher = make_watcher(tmp_path, drop)
    watcher.start()
    watcher.stop(timeout=30)
    assert not any(t.name == "cadpipe-watch" and t.is_alive() for t in threading.enumerate())


def test_every_file_written_into_a_folder_just_made_is_taken(tmp_path, drop):
    # A file written right after its folder is made can be closed before the observer watches the
    # folder: its creation is then reported (simulated from a listing) but its close never is.
    # Repeated, because which side of the race a write lands on depends on the machine's timing.
    names = {f"sub{i}/part.dxf" for i in range(12)} | {f"sub{i}/deep/part.dxf" for i in range(12)}
    out = tmp_path / "out"
    with make_watcher(tmp_path, drop) as watcher:
        for i in range(12):
            (drop / f"sub{i}" / "deep").mkdir(parents=True)
            (drop / f"sub{i}" / "part.dxf").write_text(dxf_text(100 + i), encoding="utf-8")
            (drop / f"sub{i}" / "deep" / "part.dxf").write_text(dxf_text(200 + i), encoding="utf-8")
        wait_for(lambda: settled(watcher, out, names), what="every file recorded")
        taken = sorted(str(p.relative_to(drop)) for r in watcher.runs for p in r.paths)
    assert taken == sorted(names), "each file taken once"
    assert set(files_table(out)["status"]) == {"ok"}


def test_a_file_hard_linked_into_a_drop_folder_is_taken_though_no_close_is_reported(tmp_path, drop):
    # `ln`, `cp -l` and rsync's --link-dest make a complete file appear with a creation and no
    # write, so inotify never reports a close for it.
    made = tmp_path / "made.dxf"
    made.write_text(dxf_text(31), encoding="utf-8")
    out = tmp_path / "out"
    with make_watcher(tmp_path, drop) as watcher:
        os.link(made, drop / "linked.dxf")
        wait_for(lambda: settled(watcher, out, {"linked.dxf"}), what="linked.dxf recorded")
    [row] = files_table(out).to_dict("records")
    assert row["status"] == "ok" and row["sha256"] == hashlib.sha256(made.read_bytes()).hexdigest()
