"""DWG readers compared: every DWG of a folder through every available reader.

For each file and reader: the DWG version, whether the conversion loaded, the entities of the
modelspace and of the paperspace layouts, layouts, layers, texts (TEXT, MTEXT, ATTRIB), the
entities the reader reported as not converted, the times (the reader's conversion to DXF bytes;
conversion, ezdxf load, audit and metadata; medians of --repeat), and, when the folder holds the same drawing as DXF (a twin: ``plan.dxf`` beside
``plan.dwg``, or ``plan_<anything>.dxf``), the modelspace entities against the twin's and the text
recall (texts of the twin found with the same layout and content, duplicates counted).
Usage:
    .venv/bin/python bench/dwg_readers.py [FOLDER] [--readers pycadkit,libredwg,oda] [--repeat 3]
FOLDER defaults to the corpus (`../shared/corpus`, or CADPIPE_CORPUS), searched recursively.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from documents.dwg_readers import READERS, dwg_version_of, make_reader, read_dwg
from documents.dxf_document import open_dxf
from documents.errors import CadpipeError
from documents.file_kind import sniff_format
from extractors.dxf_metadata import DxfMetadata, extract_metadata


def twin_of(dwg: Path) -> Path | None:
    for candidate in sorted(dwg.parent.iterdir()):
        stem = candidate.stem.lower()
        if candidate.suffix.lower() == ".dxf" and (stem == dwg.stem.lower() or stem.startswith(dwg.stem.lower() + "_")):
            if sniff_format(candidate) in ("dxf", "dxf-binary"):
                return candidate
    return None


def texts(meta: DxfMetadata) -> Counter[tuple[str, str]]:
    return Counter((row["layout"], row["text"]) for row in meta.texts)


def measure(path: Path, reader: str, repeat: int) -> tuple[DxfMetadata | None, dict, str | None]:
    times, reads = [], []
    meta = loaded = None
    for _ in range(repeat):
        started = time.perf_counter()
        try:
            read_dwg(path, [reader])
            reads.append(time.perf_counter() - started)
            started = time.perf_counter()
            loaded = open_dxf(path, dwg_readers=[reader])
            meta = extract_metadata(loaded, path)
        except (CadpipeError, MemoryError) as exc:
            return None, {}, str(exc).removeprefix(f"{path.name}: ")
        times.append(time.perf_counter() - started)
    model = next(row["entity_count"] for row in meta.layouts if row["is_model"])
    stats = {
        "model": model,
        "paper": sum(row["entity_count"] for row in meta.layouts if not row["is_model"]),
        "layouts": meta.summary["layout_count"],
        "layers": meta.summary["layer_count"],
        "texts": meta.summary["text_count"],
        "lost": loaded.dwg.lost_count,
        "read_ms": statistics.median(reads) * 1000,
        "ms": statistics.median(times) * 1000,
    }
    return meta, stats, None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(os.environ.get("CADPIPE_CORPUS", REPO.parent / "shared" / "corpus"))
    parser.add_argument("folder", nargs="?", type=Path, default=default)
    parser.add_argument("--readers", default=",".join(READERS), help="comma-separated, of: " + ", ".join(READERS))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    readers = []
    for name in args.readers.split(","):
        reader = make_reader(name.strip())
        if reader.available():
            readers.append(reader)
            print(f"reader {reader.name} {reader.version()} ({reader.licence})")
        else:
            print(f"reader {reader.name}: not available: {reader.why_unavailable()}")
    dwgs = sorted(p for p in args.folder.rglob("*") if p.is_file() and sniff_format(p) == "dwg")
    print(f"{len(dwgs)} DWG files under {args.folder}\n")
    header = f"{'file':<44} {'version':<8} {'reader':<9} {'model':>5} {'paper':>5} {'lay':>3} {'lyr':>3} {'text':>4} {'lost':>4} {'read ms':>8} {'all ms':>7}  twin"
    print(header)
    summary: dict[str, dict] = {r.name: {"ok": 0, "read_ms": [], "ms": [], "recall": []} for r in readers}
    for path in dwgs:
        twin = twin_of(path)
        twin_meta = extract_metadata(open_dxf(twin), twin) if twin else None
        for reader in readers:
            meta, stats, error = measure(path, reader.name, args.repeat)
            name = path.name if len(path.name) <= 44 else path.name[:41] + "..."
            prefix = f"{name:<44} {dwg_version_of(path) or '?':<8} {reader.name:<9}"
            if error:
                print(f"{prefix} failed: {error[:160]}")
                continue
            summary[reader.name]["ok"] += 1
            summary[reader.name]["ms"].append(stats["ms"])
            summary[reader.name]["read_ms"].append(stats["read_ms"])
            versus = ""
            if twin_meta:
                expected = texts(twin_meta)
                recall = sum((texts(meta) & expected).values()) / max(1, sum(expected.values()))
                twin_model = next(row["entity_count"] for row in twin_meta.layouts if row["is_model"])
                summary[reader.name]["recall"].append(recall)
                versus = f"model {stats['model']}/{twin_model}, text recall {recall:.2f} ({twin.name})"
            print(
                f"{prefix} {stats['model']:>5} {stats['paper']:>5} {stats['layouts']:>3} {stats['layers']:>3} "
                f"{stats['texts']:>4} {stats['lost']:>4} {stats['read_ms']:>8.1f} {stats['ms']:>7.1f}  {versus}"
            )
    print()
    for reader in readers:
        s = summary[reader.name]
        median = (
            f"median {statistics.median(s['read_ms']):.1f} ms to DXF, {statistics.median(s['ms']):.1f} ms with load and metadata"
            if s["ms"]
            else "no time"
        )
        recall = (
            f", text recall vs twins {statistics.mean(s['recall']):.2f} over {len(s['recall'])}" if s["recall"] else ""
        )
        print(f"{reader.name} {reader.version()}: {s['ok']}/{len(dwgs)} converted and loaded, {median}{recall}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
