"""The code keeps the shape docs/ARCHITECTURE.md describes: stages that import one way, no
import cycle anywhere, and functions short enough to read at once."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = "partyhelp_pipeline"
# The package's modules in the order data flows through them (MySQL -> spec -> Arrow ->
# Avro -> GCS -> BigQuery), after the foundations every stage shares. A module may import
# only modules listed before it.
STAGES = [
    "errors",
    "clock",
    "logs",
    "settings.rules",
    "settings.declaration",
    "settings.sources",
    "settings.loading",
    "settings.deploy",
    "settings.docs",
    "settings",
    "spec.types",
    "spec.tables",
    "spec.sql",
    "spec",
    "source",
    "drift",
    "batches",
    "lookups",
    "avro_encoding",
    "clients",
    "manifest",
    "parts",
    "pipelining",
    "progress",
    "freshness",
    "health",
    "anomalies",
    "export_target",
    "export",
    "bq_jobs",
    "warehouse",
    "warehouse.labels",
    "warehouse.target",
    "warehouse.load",
    "warehouse.history",
    "warehouse.audit",
    "warehouse.metrics",
    "warehouse.publish",
    "warehouse.replace",
    "warehouse.views",
    "preflight",
    "health_report",
    "report",
]
FIRST_PARTY = ("partyhelp_pipeline", "flows", "tasks", "scripts", "benchmarks", "tests")
MAX_FUNCTION_LINES = 60
# The synthetic data generator and the tests are allowed longer functions (issue 9).
LONG_FUNCTIONS_ALLOWED = ("tests/", "scripts/synthetic/")


def python_files() -> Iterator[Path]:
    for top in FIRST_PARTY:
        # benchmarks/.work holds the benchmarks' scratch (a dlt venv): not ours, not in git
        yield from sorted(
            p for p in (ROOT / top).rglob("*.py") if ".work" not in p.relative_to(ROOT).parts
        )


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The project modules ``path`` imports, wherever the import statement stands (inside a
    function or under ``TYPE_CHECKING`` too: a cycle there is still a cycle to a reader).
    ``from package import module`` imports that module; ``from module import name``, the
    module."""
    found: set[str] = set()
    package = (
        module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    )
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1 packages
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            found |= {
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            }
    return found & known


def import_graph() -> dict[str, set[str]]:
    files = {module_name(path): path for path in python_files()}
    known = set(files)
    return {name: imports_of(path, known) - {name} for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the list of modules around it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node], _ = 1, path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node], _ = 2, path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_no_import_cycle_among_the_projects_modules() -> None:
    graph = import_graph()
    assert "partyhelp_pipeline.export" in graph and graph["flows.partyhelp_sync"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_package_imports_only_earlier_stages() -> None:
    graph = import_graph()
    modules = {name.removeprefix(PACKAGE + ".") for name in graph if name.startswith(PACKAGE + ".")}
    assert modules == set(STAGES), "list each package module in STAGES, in data-flow order"
    backwards = []
    for module in STAGES:
        for target in graph[f"{PACKAGE}.{module}"]:
            if not target.startswith(PACKAGE + "."):
                assert target.split(".")[0] not in ("flows", "tasks", "scripts", "tests"), (
                    f"{module} imports {target}: the package stands on its own"
                )
                continue
            if STAGES.index(target.removeprefix(PACKAGE + ".")) >= STAGES.index(module):
                backwards.append(f"{module} -> {target}")
    assert backwards == []


def long_functions() -> list[str]:
    found = []
    for path in python_files():
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith(LONG_FUNCTIONS_ALLOWED):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{relative}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_is_longer_than_60_lines() -> None:
    assert long_functions() == []


# The code folders the tests mirror; scenario tests (a whole run, a fault, a deployment)
# live in tests/scenarios/.
MIRRORED = ("partyhelp_pipeline", "flows", "tasks", "scripts")


def _tested_module(test: Path) -> list[Path]:
    """Where the code that ``tests/a/b/test_c.py`` tests may be: ``a/b/c.py``, the package
    ``a/b/c/`` or the script ``a/b/c.sh``."""
    relative = test.relative_to(ROOT / "tests")
    code = ROOT / relative.parent / relative.name.removeprefix("test_").removesuffix(".py")
    return [code.with_suffix(".py"), code, code.with_suffix(".sh")]


def test_the_tests_mirror_the_code() -> None:
    """The test of ``partyhelp_pipeline/warehouse/history.py`` is
    ``tests/partyhelp_pipeline/warehouse/test_history.py``: every test file outside
    tests/scenarios/ sits at its module's path, and names a module that exists."""
    stray = []
    for test in sorted((ROOT / "tests").rglob("test_*.py")):
        relative = test.relative_to(ROOT / "tests")
        if relative.parts[0] == "scenarios" or relative == Path("test_architecture.py"):
            continue
        if relative.parts[0] not in MIRRORED or not any(p.exists() for p in _tested_module(test)):
            stray.append(str(relative))
    assert stray == [], "test files that name no module (move them, or to tests/scenarios/)"
