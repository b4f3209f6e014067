"""backends/ has one shape per framework, and its modules share only public names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from support import ROOT

BACKENDS = ROOT / "backends"
FRAMEWORKS = ["torch", "jax", "tensorflow"]


def modules(folder: Path) -> set[str]:
    return {path.name for path in folder.glob("*.py")}


def test_every_framework_folder_has_the_same_modules():
    shapes = {name: modules(BACKENDS / name) for name in FRAMEWORKS}
    assert shapes["torch"] == {"__init__.py", "ops.py", "eager.py", "compiled.py", "vectorized.py"}
    assert shapes["jax"] == shapes["torch"] == shapes["tensorflow"]


def test_the_reference_has_the_same_shape_without_a_compiler():
    # Plus what only the reference has: its framework switches and its rounding magnitudes.
    only_the_reference = {"semantics.py", "rounding.py"}
    assert modules(BACKENDS / "numpy") - only_the_reference == modules(BACKENDS / "torch") - {
        "compiled.py"
    }
    assert "compiled.py" in (BACKENDS / "numpy" / "__init__.py").read_text(encoding="utf-8")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every ``from module import name`` and ``module.name`` reached
    through an imported ``backends`` module (``ops.activation`` after
    ``from backends.torch import ops``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[str, str]] = []
    aliases: dict[str, str] = {}  # local name -> backends module it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                found.append((node.module, alias.name))
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name.split(".")[0]] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and aliases.get(node.value.id, "").startswith("backends.")
        ):
            found.append((aliases[node.value.id], node.attr))
    return [(module, name) for module, name in found if module.startswith("backends")]


BACKEND_MODULES = sorted(BACKENDS.rglob("*.py"))


@pytest.mark.parametrize("path", BACKEND_MODULES, ids=[_module_name(p) for p in BACKEND_MODULES])
def test_no_module_imports_another_modules_private_name(path: Path):
    me = _module_name(path)
    private = [
        f"{module}.{name}"
        for module, name in _imports(path)
        if name.startswith("_") and module != me
    ]
    assert private == []


def test_the_private_import_check_sees_both_spellings(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from backends.torch.eager import _numpy\nfrom backends.jax import ops\nops._loss(1)\n",
        encoding="utf-8",
    )
    assert [name for _, name in _imports(probe)] == ["_numpy", "ops", "_loss"]


def _imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_eager_adapter_never_imports_its_compiled_modes(framework: str):
    compiled = f"backends.{framework}.compiled"
    assert compiled not in _imported_modules(BACKENDS / framework / "eager.py")
    assert f"backends.{framework}.eager" in _imported_modules(BACKENDS / framework / "compiled.py")


@pytest.mark.parametrize("path", BACKEND_MODULES, ids=[_module_name(p) for p in BACKEND_MODULES])
def test_no_adapter_skips_its_parents_run(path: Path):
    """A mode overrides what differs; none calls a grandparent's method past its parent's
    (``Backend.run(self, ...)``)."""
    explicit_self = [
        ast.unparse(node.func)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id[:1].isupper()
        and node.args
        and isinstance(node.args[0], ast.Name)
        and node.args[0].id == "self"
    ]
    assert explicit_self == []
