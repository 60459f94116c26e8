"""What a run hands on, built from the catalog after it is published: the drawing register
(engine/register.py), BOM exports (engine/bom_export.py) and PDF sets (engine/pdf_sets.py).

Declarative and idempotent like the rest: `[deliverables]` states which exist; each output file
is made from a known input (its *key*: the work ids, paths and title-block values it shows, and
the builder's version) and is written again only when that key changed or the file is gone.
Files of deliverables no longer wanted (a set whose drawings left, a kind switched off) are
removed. Sets and what makes one: engine/library.py.
"""

from __future__ import annotations

from pathlib import Path

from engine import bom_export, pdf_sets, register
from engine.library import Built, State, exclusive, group_sets, load_library, sweep_temporaries


def publish_deliverables(cfg) -> Built:
    """Build what `[deliverables]` asks for from the catalog of `cfg.out`; see module doc."""
    wanted = cfg.raw["deliverables"]
    out = Path(cfg.out)
    built = Built()
    with exclusive(out):
        sweep_temporaries(out)
        state = State(out)
        library = load_library(out, cfg, state)
        sets = group_sets(library.drawings, wanted["group_by"])
        set_of = {m.location: s for s in sets for m in (*s.members, *s.left_out)}
        links: dict[str, dict[str, str]] = {}  # drawing location -> kind -> file relative to OUT
        for drawing_set in sets:
            # One set that cannot be written (a full disk, a name the file system refuses) is
            # said and kept as it was; the other sets and the register still go out.
            try:
                pdf = pdf_sets.build_set(library, drawing_set, state, built) if wanted["pdf_sets"] else None
                bom_files = (
                    bom_export.build_exports(library, drawing_set, state, built) if wanted["bom_exports"] else {}
                )
            except Exception as exc:
                built.problems.append(f"set {drawing_set.label}: not written: {type(exc).__name__}: {exc}")
                state.keep_stale(drawing_set.folder)
                continue
            if pdf is not None:
                for member in drawing_set.members:
                    links.setdefault(member.location, {})["set"] = pdf
            for location, file in bom_files.items():
                links.setdefault(location, {})["bom"] = file
        if wanted["register"]:
            register.build_register(library, set_of, links, state, built)
        state.finish(built, {d.work_id for d in library.drawings if d.work_id})
    return built
