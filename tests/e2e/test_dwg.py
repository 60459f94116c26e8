"""DWG through its readers: real corpus DWG files, their DXF twin, damaged and odd inputs.

Real pycadkit (and real LibreDWG in Node.js where `make libredwg` installed it); no mocks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from documents.dwg_readers import LibreDwgReader, choose_reader, make_reader, read_dwg
from documents.dxf_document import open_dxf
from documents.errors import InputError, TransientError
from engine.config import ConfigError, load_config
from extractors.dxf_metadata import extract_metadata
from tests.conftest import REPO
from tests.processes import children

SAMPLE = "files/acadsharp/samples__sample_AC1032.dwg"
TWIN = "files/acadsharp/samples__sample_AC1032_binary.dxf"  # the same drawing saved as DXF
SMALL = "files/acadsharp/samples__dynamic-blocks__BLOCKVISIBILITYPARAMETER.dwg"
R2000 = "files/ezdxf/tests__test_08_addons__807_1.dwg"
needs_libredwg = pytest.mark.skipif(not LibreDwgReader().available(), reason="libredwg not installed (make libredwg)")


def metadata(path: Path, readers=("pycadkit",)):
    loaded = open_dxf(path, dwg_readers=list(readers))
    return loaded, extract_metadata(loaded, path)


def test_every_corpus_dwg_converts_and_says_how(corpus_dir, manifest):
    for row in (r for r in manifest if r["format"] == "dwg"):
        loaded, meta = metadata(corpus_dir / row["path"])
        source = loaded.dwg
        assert (source.reader, source.reader_version) == ("pycadkit", "0.5.1")
        assert meta.summary["dxf_version"] == row["dxf_version"][:6], "the DWG's own version, not the DXF's"
        assert meta.summary["created_at"], "the DWG's creation date survives the conversion"
        assert meta.summary["layout_count"] >= 3 and not meta.summary["recovered"]


def test_a_dwg_and_its_dxf_twin_agree(corpus_dir):
    """The same drawing saved as DWG and as DXF. Tolerance: layers, layouts, texts and attributes
    must be identical; entity counts per layout and type too, except for the types the reader
    reports as not converted, whose shortfall must be exactly the count it reports. (Layer colour
    is compared as true colour: the ACI fallback of a true-colour layer is the writer's guess.)"""
    loaded, dwg = metadata(corpus_dir / SAMPLE)
    twin = extract_metadata(open_dxf(corpus_dir / TWIN), corpus_dir / TWIN)

    assert [r["name"] for r in dwg.layouts] == [r["name"] for r in twin.layouts]
    layer_keys = ("name", "defined", "true_color", "linetype", "is_on", "is_frozen", "is_locked")
    assert sorted(tuple(r[k] for k in layer_keys) for r in dwg.layers) == sorted(
        tuple(r[k] for k in layer_keys) for r in twin.layers
    )
    text_keys = ("layout", "dxftype", "layer", "tag", "text")
    assert Counter(tuple(r[k] for k in text_keys) for r in dwg.texts) == Counter(
        tuple(r[k] for k in text_keys) for r in twin.texts
    )
    attributes = [r for r in dwg.texts if r["dxftype"] == "ATTRIB"]
    assert attributes, "the drawing has attributes: the comparison covers them"
    assert sorted((b["name"], b["entity_count"], b["insert_count"]) for b in dwg.blocks) == sorted(
        (b["name"], b["entity_count"], b["insert_count"]) for b in twin.blocks
    )

    counts = Counter({(r["layout"], r["dxftype"]): r["count"] for r in dwg.entities})
    expected = Counter({(r["layout"], r["dxftype"]): r["count"] for r in twin.entities})
    assert not counts - expected, "the DWG never yields more than the DXF"
    shortfall = Counter()
    for (_layout, dxftype), n in (expected - counts).items():
        shortfall[dxftype] += n
    assert dict(shortfall) == loaded.dwg.lost, "every missing entity is one the reader reported"
    assert twin.summary["entity_count"] - dwg.summary["entity_count"] == loaded.dwg.lost_count == 31


def test_entities_the_reader_cannot_model_are_counted_and_named(corpus_dir):
    loaded, meta = metadata(corpus_dir / SAMPLE)
    source = loaded.dwg
    assert source.summary()["dwg_unsupported_count"] == 31
    assert {"MULTILEADER": 15, "ACAD_TABLE": 2, "3DSOLID": 2}.items() <= source.lost.items()
    assert "XLINE" not in source.lost, "pycadkit warns about XLINE but its DXF keeps it: only real losses count"
    [sentence] = [w for w in meta.warnings if w.startswith("DWG reader pycadkit 0.5.1 could not convert 31 entities")]
    assert "15 MULTILEADER" in sentence and "2 ACAD_TABLE" in sentence
    assert any("MULTILEADER entities mapped to Unknown" in w for w in source.reader_warnings), (
        "the reader's own words are kept"
    )


@pytest.mark.parametrize("fraction", [0.02, 0.5, 0.98])
def test_a_truncated_dwg_is_refused_naming_reader_and_cause(corpus_dir, tmp_path, fraction):
    data = (corpus_dir / SAMPLE).read_bytes()
    cut = tmp_path / "cut.dwg"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(InputError) as info:
        open_dxf(cut)
    message = str(info.value)
    assert message.startswith("cut.dwg: pycadkit 0.5.1 cannot read the DWG (AC1032, R2018): InvalidDataError: ")
    assert info.value.permanent and len(message) < 400


def flipped(source: Path, dest: Path, start: int, step: int, mask: int) -> Path:
    """A copy of `source` with every `step`-th byte from `start` on XORed with `mask`."""
    data = bytearray(source.read_bytes())
    for i in range(start, len(data), step):
        data[i] ^= mask
    dest.write_bytes(bytes(data))
    return dest


def test_a_corrupt_dwg_is_refused(corpus_dir, tmp_path):
    bad = flipped(corpus_dir / SAMPLE, tmp_path / "bad.dwg", 200, 997, 0xFF)  # all through its compressed sections
    with pytest.raises(
        InputError, match=r"bad\.dwg: pycadkit 0\.5\.1 cannot read the DWG \(AC1032, R2018\): InvalidDataError"
    ):
        open_dxf(bad)


def test_a_dwg_whose_objects_do_not_decode_is_refused_as_damaged(corpus_dir, tmp_path):
    """R2000 is not compressed: pycadkit reads through damage and reports it; objects it could not
    decode are missing, so the file is not `ok` with a partial drawing."""
    bad = flipped(corpus_dir / R2000, tmp_path / "damaged.dwg", 100, 501, 0x55)
    with pytest.raises(
        InputError, match=r"damaged\.dwg: pycadkit 0\.5\.1 cannot read the DWG \(AC1015, R2000\): damaged: \d+ problems"
    ):
        open_dxf(bad)


def test_a_checksum_mismatch_alone_is_a_warning(corpus_dir, tmp_path):
    data = bytearray((corpus_dir / R2000).read_bytes())
    # One bit inside the header variables section (after its sentinel and size): its CRC no
    # longer matches, no entity is lost.
    start = data.index(bytes.fromhex("CF7B1F23FDDE38A95F7C68B84E6D335F"))
    data[start + 24] ^= 0x01
    odd = tmp_path / "crc.dwg"
    odd.write_bytes(bytes(data))
    loaded, meta = metadata(odd)
    assert any("CRC" in n for n in loaded.dwg.notices), loaded.dwg.reader_warnings
    assert any(w.startswith("DWG reader pycadkit: ") and "CRC" in w for w in meta.warnings)


def test_a_pre_r13_dwg_names_its_release_and_the_reader_to_try(tmp_path):
    old = tmp_path / "old.dwg"
    old.write_bytes(b"AC1009" + bytes(2000))
    with pytest.raises(InputError) as info:
        open_dxf(old)
    message = str(info.value)
    assert message.startswith("old.dwg: pycadkit 0.5.1 cannot read the DWG (AC1009, R12): UnknownFormatError")
    assert "pycadkit reads R13 and later; the libredwg reader has experimental pre-R13 support" in message


def test_a_dwg_named_dxf_is_converted(corpus_dir, tmp_path):
    disguised = tmp_path / "plan.dxf"
    disguised.write_bytes((corpus_dir / SMALL).read_bytes())
    loaded, meta = metadata(disguised)
    assert loaded.dwg.reader == "pycadkit" and meta.summary["entity_count"] == 4


def test_the_first_available_reader_wins():
    assert choose_reader(("oda", "pycadkit")).name == ("oda" if make_reader("oda").available() else "pycadkit")
    nothing = choose_reader(("oda",)) if not make_reader("oda").available() else None
    if nothing is not None:
        assert nothing.name is None and nothing.unavailable[0].startswith(
            "oda: the ODA File Converter is not installed"
        )
    with pytest.raises(ValueError, match="unknown DWG reader 'teigha'"):
        make_reader("teigha")


def test_the_reader_and_its_version_are_part_of_the_work_identity(tmp_path):
    if make_reader("oda").available():
        pytest.skip("ODA File Converter installed: it wins by default")

    def config(text: str):
        path = tmp_path / f"c{abs(hash(text))}.toml"
        path.write_text(text)
        return load_config(path)

    default = config("")
    assert {k: default.options_for("dwg")["dwg"][k] for k in ("reader", "reader_version")} == {
        "reader": "pycadkit",
        "reader_version": "0.5.1",
    }
    key = default.options_key("dwg")
    assert config('[dwg]\nreaders = ["pycadkit"]\n').options_key("dwg") == key, "the same reader wins: same work"
    assert config("[dwg]\ntimeout_s = 5\n").options_key("dwg") == key, "a reader's time limit shapes no output"
    none = config('[dwg]\nreaders = ["oda"]\n')
    assert none.options_for("dwg")["dwg"]["reader"] is None
    assert none.options_key("dwg") != key, "installing a reader later redoes what failed without one"
    assert none.options_key("dxf") == default.options_key("dxf"), "DXF work does not depend on DWG readers"
    if LibreDwgReader().available():
        assert config('[dwg]\nreaders = ["libredwg", "pycadkit"]\n').options_key("dwg") != key


@pytest.mark.parametrize("readers", [[], ["teigha"], "pycadkit"])
def test_dwg_readers_are_checked(tmp_path, readers):
    path = tmp_path / "c.toml"
    path.write_text(f"[dwg]\nreaders = {readers!r}\n".replace("'", '"'))
    with pytest.raises(ConfigError, match="dwg.readers"):
        load_config(path)


@needs_libredwg
def test_libredwg_converts_the_corpus_dwg_it_can(corpus_dir):
    for rel in (SMALL, R2000, "files/acadsharp/samples__sample_AC1018.dwg"):
        loaded, meta = metadata(corpus_dir / rel, readers=["libredwg"])
        assert loaded.dwg.reader == "libredwg" and loaded.dwg.reader_version == "libredwg-web-0.7.14"
        assert meta.summary["layout_count"] >= 3 and meta.summary["entity_count"] >= 1
    assert meta.summary["dxf_version"] == "AC1018" and meta.summary["text_count"] == 38


@needs_libredwg
def test_libredwg_refuses_junk_naming_itself(tmp_path):
    junk = tmp_path / "junk.dwg"
    junk.write_bytes(b"AC1032" + os.urandom(4000))
    with pytest.raises(
        InputError, match=r"junk\.dwg: libredwg libredwg-web-0\.7\.14 cannot read the DWG \(AC1032, R2018\): "
    ):
        open_dxf(junk, dwg_readers=["libredwg"])


@needs_libredwg
def test_libredwg_has_a_timeout(corpus_dir):
    with pytest.raises(TransientError, match=r"libredwg: no result within 0\.05 s; process stopped"):
        read_dwg(corpus_dir / SMALL, ["libredwg"], timeout_s=0.05)


@needs_libredwg
def test_libredwg_node_dies_with_the_worker_that_started_it(tmp_path):
    """A timed-out worker is killed by the pool: its Node process must not live on. The input is a
    FIFO whose writer stays open, so Node blocks reading it until it is killed."""
    fifo = tmp_path / "slow.dwg"
    os.mkfifo(fifo)
    script = f"from documents.dwg_readers import read_dwg; read_dwg({str(fifo)!r}, ['libredwg'])"
    worker = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    writer = os.open(fifo, os.O_WRONLY)  # the worker reads the version stamp first
    node: list[int] = []
    try:
        os.write(writer, b"AC1032")
        deadline = time.monotonic() + 300
        while not (node := children(worker.pid, b"dwg2dxf.mjs")) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert node, "the reader runs in its own Node process"
        worker.send_signal(signal.SIGKILL)
        worker.wait(120)
        deadline = time.monotonic() + 120
        while _alive(node[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(node[0]), "Node outlived the worker"
    finally:
        os.close(writer)
        worker.kill()
        for pid in node:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


ODA_STAND_IN = """
import json, pathlib, sys
import cadkit
args = sys.argv[1:]  # in_folder out_folder version type recurse audit filter, as ODA takes them
pathlib.Path(__file__).with_name("args.json").write_text(json.dumps(args))
src = pathlib.Path(args[0]) / args[6]
(pathlib.Path(args[1]) / (src.stem + ".dxf")).write_bytes(cadkit.read(src).to_dxf_bytes("r2018"))
"""


def test_the_oda_reader_drives_the_converter_through_ezdxf_odafc(corpus_dir, tmp_path, monkeypatch):
    """The ODA File Converter is proprietary and not installable here: a stand-in executable (it
    converts with pycadkit) takes its place on PATH, so what is tested is our side of ezdxf's odafc
    add-on: the command line, a DWG named .dxf, reading the DXF left behind, the version."""
    if make_reader("oda").available():
        pytest.skip("a real ODA File Converter is installed")
    folder = tmp_path / "ODAFileConverter_QT6_lnxX64_8.3dll_25.4"  # as ODA's Linux package names it
    folder.mkdir()
    exe = folder / "ODAFileConverter"
    exe.write_text(f"#!{sys.executable}\n{ODA_STAND_IN}")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DISPLAY", ":0")  # ezdxf's add-on wants Xvfb or a display; the stand-in needs neither
    choose_reader.cache_clear()
    try:
        choice = choose_reader(("oda", "pycadkit"))
        assert (choice.name, choice.version) == ("oda", "25.4"), "the first available reader wins"
        disguised = tmp_path / "plan.dxf"
        disguised.write_bytes((corpus_dir / SMALL).read_bytes())
        loaded, meta = metadata(disguised, readers=["oda", "pycadkit"])
        assert (loaded.dwg.reader, loaded.dwg.reader_version) == ("oda", "25.4")
        assert meta.summary["entity_count"] == 4 and meta.summary["dxf_version"] == "AC1032"
        args = json.loads((folder / "args.json").read_text())
        assert args[2:] == ["ACAD2018", "DXF", "0", "1", "drawing.dwg"], "ODA picks inputs by extension"
    finally:
        choose_reader.cache_clear()


@needs_libredwg
def test_libredwg_under_too_small_a_memory_cap_is_a_passing_fault_with_advice(corpus_dir):
    """The cap of a worker is inherited by its Node process: under 2 GiB of address space the
    WebAssembly module cannot be instantiated. That is the configuration's fault, not the file's."""
    script = (
        "import resource; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
        "from documents.errors import TransientError\n"
        "from documents.dwg_readers import read_dwg\n"
        f"try:\n    read_dwg({str(corpus_dir / SMALL)!r}, ['libredwg'])\n"
        "except TransientError as exc:\n    print(exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "limits.memory_mb must be at least 3072" in proc.stdout, proc.stdout + proc.stderr[-2000:]
