"""The experiments' modules import one another without a cycle (the registry is data; the
cache that loads and saves experiment data sits above it)."""

from __future__ import annotations

import ast
from pathlib import Path

from cpi.experiments.registry import NAMES

ROOT = Path(__file__).resolve().parents[1]


def imports_of(path: Path, package: str) -> set[str]:
    """What a file of `package` imports anywhere in it (at the top or inside a function), as
    full names: `import a.b` gives a.b; `from .x import y` (or `from package.x import y`) gives
    package.x and package.x.y, which is a module's name when y is a module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


LAYERS = {"theory": "cpi.theory", "core": "cpi.core", "sims": "cpi.sims", "bridge": "cpi.bridge",
          "experiments": "cpi.experiments", "figures": "cpi.figures", "cpi": "cpi", "cpi/commands": "cpi.commands"}
"""Each folder of library code and the package it installs as."""


def import_graph(folders: dict[str, str]) -> dict[str, set[str]]:
    """module -> the modules among those of `folders` ({folder: package}) that it imports (a
    package's __init__.py is the module named by the package)."""
    graph = {}
    for folder, package in folders.items():
        for path in sorted((ROOT / folder).glob("*.py")):
            graph[package if path.stem == "__init__" else f"{package}.{path.stem}"] = imports_of(path, package)
    return {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` (its modules in order, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m):
        state[m] = 1
        path.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                return path[path.index(d):] + [d]
            if d not in state and (found := visit(d)):
                return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def with_the_registry(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """`graph` with the imports the registry makes by name (importlib): each experiment's module."""
    assert "import_module" in (ROOT / "experiments" / "registry.py").read_text()
    graph["cpi.experiments.registry"] |= {f"cpi.experiments.{name}" for name in NAMES}
    return graph


def test_the_experiments_modules_import_one_another_without_a_cycle():
    graph = with_the_registry(import_graph({"experiments": "cpi.experiments"}))
    assert cycle(graph) is None, " -> ".join(cycle(graph))
    # the layering the package docstring states: the cache loads experiments through the registry,
    # and no experiment (nor the registry) imports the cache
    assert "cpi.experiments.registry" in graph["cpi.experiments.cache"]
    assert not any("cpi.experiments.cache" in deps for deps in graph.values())


def test_the_library_has_no_import_cycle():
    graph = with_the_registry(import_graph(LAYERS))
    assert {"cpi.sims.engine", "cpi.experiments.cache", "cpi.commands.run"} <= set(graph)
    assert "cpi.sims.config" in graph["cpi.experiments.inversion"]
    assert cycle(graph) is None, " -> ".join(cycle(graph))


def test_the_cycle_finder_finds_a_cycle_through_a_lazy_import(tmp_path):
    (tmp_path / "a.py").write_text("from .b import f\n")
    (tmp_path / "b.py").write_text("def f():\n    from . import a\n")
    (tmp_path / "c.py").write_text("import p.a\n")
    modules = {"p.a", "p.b", "p.c"}
    graph = {f"p.{m}": (imports_of(tmp_path / f"{m}.py", "p") & modules) - {f"p.{m}"} for m in "abc"}
    assert graph == {"p.a": {"p.b"}, "p.b": {"p.a"}, "p.c": {"p.a"}}
    assert cycle(graph) == ["p.a", "p.b", "p.a"]
    assert cycle({"p.a": {"p.b"}, "p.b": set()}) is None
