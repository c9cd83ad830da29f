"""The layering of ``src/deploy_gate`` holds: no import circles, and the runtime library never
reaches the pytest layer. Imports are read from the source (inside functions and under
``TYPE_CHECKING`` too), so a lazy import that closes a circle fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# The pytest layer: wiring, collection, options, checks and the run's reporters.
PYTEST_LAYER = (
    "deploy_gate.plugin",
    "deploy_gate.session",
    "deploy_gate.collect",
    "deploy_gate.gate",
    "deploy_gate.reporter",
    "deploy_gate.pytest_compat",
    "deploy_gate.hookspecs",
    "deploy_gate.options",
    "deploy_gate.checks",
)
# What a serving process or a notebook uses without pytest.
LIBRARY = (
    "deploy_gate.deployment",
    "deploy_gate.monitor",
    "deploy_gate.rollout",
    "deploy_gate.latency",
    "deploy_gate.compare",
    "deploy_gate.drift",
    "deploy_gate.profiles",
    "deploy_gate.sources",
    "deploy_gate.sketch",
    "deploy_gate.cluster",
    "deploy_gate.stats",
    "deploy_gate.ledger",
    "deploy_gate.identity",
    "deploy_gate.files",
    "deploy_gate.safeload",
    "deploy_gate.internals",
    "deploy_gate.adapters",
    "deploy_gate.artifact",
    "deploy_gate.capabilities",
    "deploy_gate.validation",
    "deploy_gate.errors",
    "deploy_gate.parsers",
    "deploy_gate.data",
    "deploy_gate.timeouts",
    "deploy_gate.worker",
)


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "deploy_gate").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    """The module of ours that ``name`` (a module, or a name inside one) belongs to."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            # ``from pkg import mod`` imports the submodule; ``from mod import name`` the module
            targets.update(f"{base}.{alias.name}" for alias in node.names)
    owners = {_owner(t, modules) for t in targets if t.startswith("deploy_gate")}
    # A module's own package and its ancestors are imported by Python first anyway.
    return {o for o in owners if o and o != name and not name.startswith(o + ".")}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_the_import_graph_reads_real_edges(graph: dict[str, set[str]]) -> None:
    # The reader finds what is there: a plain, a lazy and a relative-free ``from`` import.
    assert "deploy_gate.safeload" in graph["deploy_gate.artifact"]
    assert "deploy_gate.adapters" in graph["deploy_gate.safeload"]  # lazy, inside a function
    assert "deploy_gate.cluster" in graph["deploy_gate.profiles"]  # lazy, for engine="dask"


def test_no_module_imports_itself_through_others(graph: dict[str, set[str]]) -> None:
    circles = []
    for start in sorted(graph):
        stack = [(start, (start,))]
        seen: set[str] = set()
        while stack:
            here, trail = stack.pop()
            for nxt in sorted(graph[here]):
                if nxt == start:
                    circles.append(" -> ".join((*trail, start)))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, (*trail, nxt)))
    assert circles == []


@pytest.mark.parametrize("module", LIBRARY)
def test_the_library_never_imports_the_pytest_layer(
    graph: dict[str, set[str]], module: str
) -> None:
    reached: set[str] = set()
    todo = [m for m in graph if m == module or m.startswith(module + ".")]
    while todo:
        here = todo.pop()
        if here not in reached:
            reached.add(here)
            todo.extend(graph[here])
    assert sorted(m for m in reached if m.startswith(PYTEST_LAYER)) == []
