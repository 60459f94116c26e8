"""The folders are layers that import one way: a lower layer never imports a higher one, the two
sides of one floor never import each other, and no files import each other in a circle.

    flows/       Prefect flows, deployments' entry points and the CLI
    engine/      plan, work, executor, catalog, documents and rollups (no Prefect)
    editors/     library-wide edits from recipes
    extractors/  converters/   (side by side: neither imports the other)
    documents/   loading DXF, DWG and STEP, file kinds, names, errors (the parse-once layer)

Every import counts, at module level or inside a function: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FLOOR = {"documents": 0, "extractors": 1, "converters": 1, "editors": 2, "engine": 3, "flows": 4}
PREFECT_FREE = ("documents", "extractors", "converters", "editors", "engine")


def _modules() -> dict[str, Path]:
    found = {}
    for package in FLOOR:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "node_modules" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `path` imports (`from flows import watch` is the module flows.watch)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name in modules and "." in name}


def _all_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def test_every_import_runs_down_the_layers():
    wrong = []
    for name, imported in _graph().items():
        here = name.split(".")[0]
        for other in sorted(imported):
            there = other.split(".")[0]
            if there != here and FLOOR[there] >= FLOOR[here]:
                wrong.append(f"{name} imports {other} ({there}/ is not below {here}/)")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_no_files_import_each_other_in_a_circle():
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done
    circles = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for other in sorted(graph[name]):
            if state.get(other) == 1:
                circles.append(
                    " -> ".join(path[path.index(other) :] + [name, other]) if other in path else f"{name} -> {other}"
                )
            elif other not in state:
                visit(other, path + [name])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_only_the_flows_layer_imports_prefect():
    modules = _modules()
    wrong = [
        name for name, path in modules.items() if name.startswith(PREFECT_FREE) and "prefect" in _all_imports(path)
    ]
    assert not wrong, f"Prefect imported below flows/: {wrong}"


def test_the_checker_sees_a_wrong_import(tmp_path):
    """The graph is read from real imports: a sample file importing upwards is found."""
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nfrom engine.work import process_job\n\ndef f():\n    from flows import watch\n")
    modules = _modules()
    assert _imports(sample, modules) >= {"engine.work", "flows.watch"}
