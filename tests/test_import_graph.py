"""No import cycles: every module of harness/ and backends/, parsed, never imported.

Each module's imports are read from its syntax tree: module-level and function-level ones,
those under ``if TYPE_CHECKING:`` too (a cycle hidden there is still two modules that each
need the other to be understood). ``from package import name`` counts as an import of the
submodule ``package.name`` when there is one, else of ``package``. Relative imports are
resolved against the importing module. Only the project's own modules are nodes; an edge
goes to the module named, not to the packages above it (their ``__init__`` files import
nothing).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

from support import ROOT

PACKAGES = ("harness", "backends")
Graph = dict[str, set[str]]


def module_files(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under the packages."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute module an ``ImportFrom`` names (``level`` dots, then ``name``)."""
    if level == 0:
        return name or ""
    base = module.split(".")
    if not is_package:
        base.pop()
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def imports_of(module: str, path: Path, modules: set[str]) -> set[str]:
    """The project modules ``module`` imports anywhere in its file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, is_package, node.level, node.module)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                targets.add(submodule if submodule in modules else source)
    return {_known(target, modules) for target in targets} - {"", module}


def _known(name: str, modules: set[str]) -> str:
    """``name`` or the nearest package above it that is a project module ("" if none)."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in modules:
            return ".".join(parts)
        parts.pop()
    return ""


def import_graph(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> Graph:
    files = module_files(root, packages)
    names = set(files)
    return {module: imports_of(module, path, names) for module, path in files.items()}


def tangles(graph: Graph) -> list[set[str]]:
    """The strongly connected components of more than one module: each holds a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(start: str) -> None:  # Tarjan's algorithm, iterative
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(component)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(components, key=min)


def cycles(graph: Graph) -> list[list[str]]:
    """One cycle (first module repeated at the end) per tangle, a shortest one."""
    return [_one_cycle(graph, component) for component in tangles(graph)]


def _one_cycle(graph: Graph, component: set[str]) -> list[str]:
    """A shortest cycle through the component's first module, by breadth-first search."""
    start = min(component)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & component):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if child not in came_from:
                    came_from[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle in a strongly connected component: {component}")


def describe(graph: Graph, found: list[set[str]]) -> str:
    """Each tangle as one of its cycles, and all its modules when the cycle leaves some out."""
    lines = ["import cycles:"]
    for component in found:
        cycle = _one_cycle(graph, component)
        lines.append("  " + " -> ".join(cycle))
        if len(component) > len(cycle) - 1:
            lines.append("    (all tangled together: " + ", ".join(sorted(component)) + ")")
    return "\n".join(lines)


GRAPH = import_graph()


def test_harness_has_no_import_cycle():
    found = [c for c in tangles(GRAPH) if any(m.split(".")[0] == "harness" for m in c)]
    assert not found, describe(GRAPH, found)


def test_the_whole_project_has_no_import_cycle():
    found = tangles(GRAPH)
    assert not found, describe(GRAPH, found)


def test_the_graph_sees_every_kind_of_import(tmp_path):
    """The parser's own check: each import form below is one edge, and the cycle is found."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "sub" / "__init__.py").write_text("", encoding="utf-8")
    (package / "a.py").write_text("from pkg.sub import b\n", encoding="utf-8")  # submodule
    (package / "sub" / "b.py").write_text(
        "def f():\n    from pkg import c\n", encoding="utf-8"
    )  # function level
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .d import X\n",
        encoding="utf-8",
    )  # TYPE_CHECKING, relative
    (package / "d.py").write_text("import pkg.a\nfrom pkg.sub.b import f\n", encoding="utf-8")
    graph = import_graph(tmp_path, ["pkg"])
    assert graph == {
        "pkg": set(),
        "pkg.a": {"pkg.sub.b"},
        "pkg.sub": set(),
        "pkg.sub.b": {"pkg.c"},
        "pkg.c": {"pkg.d"},
        "pkg.d": {"pkg.a", "pkg.sub.b"},
    }
    assert cycles(graph) == [["pkg.a", "pkg.sub.b", "pkg.c", "pkg.d", "pkg.a"]]
