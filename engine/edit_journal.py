"""Audit before action: the intent to edit a drawing is written down before the drawing is replaced.

`cadpipe apply` records its changes in the catalog's `edits` table when the run ends. A run killed
before that (SIGKILL, power cut) has already replaced some drawings, and a rerun finds them edited
and changes nothing, so without this journal those edits would never be recorded.

So each worker writes, just before it renames an edited drawing into place, the full record of
that edit (its changes, the hash the new file will have) into the run's journal folder
`OUT/catalog/.pending-edits/<run_id>/`. The run records its edits and removes its journal when it
ends. The next apply first completes the record of every journal left behind by a run that is no
longer alive (its lock is free): an intent whose file now has the announced hash is recorded, with
the crashed run's id; one whose file does not (the rename never happened, or the file changed
since) is dropped; and the temporary files its workers may have left beside the drawings and
backups (named by its run id) are removed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from pathlib import Path

from documents import atomic
from documents.names import native_path, to_text

JOURNAL_DIR = ".pending-edits"


def edit_rows(result: dict, run: dict, edited_at: str) -> list[dict]:
    """The `edits` rows of one changed drawing; `run` holds run_id, recipe_name, recipe_hash, mode."""
    return [
        {
            "run_id": run["run_id"],
            "recipe_name": run["recipe_name"],
            "recipe_hash": run["recipe_hash"],
            "mode": run["mode"],
            "source_root": result["source_root"],
            "path": result["path"],
            "output": result["output"],
            "backup": result["backup"],
            "sha256_before": result["sha256_before"],
            "sha256_after": result["sha256_after"],
            **change,
            "edited_at": edited_at,
        }
        for change in result["changes"]
    ]


def _root(out: Path) -> Path:
    return Path(out) / "catalog" / JOURNAL_DIR


class RunJournal:
    """The journal of one live run: its folder, and the lock that says the run is alive."""

    def __init__(self, out: Path, run: dict) -> None:
        self.folder = _root(out) / run["run_id"]
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock: int | None = os.open(_root(out) / f"{run['run_id']}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        self.header = {key: run[key] for key in ("run_id", "recipe_name", "recipe_hash", "mode")}
        write_json(self.folder / "run.json", self.header)

    def plan(self, temporaries: list[str]) -> None:
        """The temporary files (text form) the run's workers may write beside the drawings and
        backups: a killed run's are removed by the next apply."""
        self.header["temporaries"] = temporaries
        write_json(self.folder / "run.json", self.header)

    def intent_file(self, path: str) -> str:
        """Where the worker editing `path` (text form) announces its edit (text form)."""
        return to_text(self.folder / f"{hashlib.sha256(path.encode()).hexdigest()[:32]}.json")

    def close(self) -> None:
        """The run's edits are recorded: its journal is no longer needed."""
        shutil.rmtree(self.folder, ignore_errors=True)
        Path(self.folder.parent / f"{self.folder.name}.lock").unlink(missing_ok=True)
        self.release()

    def release(self) -> None:
        """The run is over: its lock is free (a journal left behind is completed by the next apply)."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def write_json(path: Path, value: dict) -> None:
    atomic.write_json(path, value)


def _sha256(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def recover(out: Path, recorded: set[tuple[str, str]]) -> tuple[list[dict], int]:
    """(edits rows of the edits that crashed runs made, intents dropped). Journals of live runs
    are left alone; `recorded` holds the (run_id, path) pairs the edits table has already (a run
    killed after recording, before removing its journal)."""
    root = _root(out)
    rows: list[dict] = []
    dropped = 0
    if not root.is_dir():
        return rows, dropped
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        lock = os.open(root / f"{folder.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # that run is alive: its intents are its own
            try:
                run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                run = None
            for temporary in run.get("temporaries", []) if run else []:  # what its workers left
                native_path(temporary).unlink(missing_ok=True)
            for intent in sorted(folder.glob("*.json")) if run else []:
                if intent.name == "run.json":
                    continue
                try:
                    record = json.loads(intent.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    dropped += 1
                    continue
                landed = _sha256(native_path(record["output"])) == record["sha256_after"]
                if landed and (run["run_id"], record["path"]) not in recorded:
                    rows += edit_rows(record, run, record["edited_at"])
                elif not landed:
                    dropped += 1
            shutil.rmtree(folder, ignore_errors=True)
            (root / f"{folder.name}.lock").unlink(missing_ok=True)
        finally:
            os.close(lock)
    return rows, dropped
