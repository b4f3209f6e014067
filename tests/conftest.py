"""Shared fixtures: the built-in backends as a parametrized fixture, paths, case loading."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from backends import registry
from harness.cases.loader import load_cases

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "cases"
DATA = Path(__file__).resolve().parent / "data"
BUILTIN_BACKENDS = ["numpy", "torch", "jax", "tensorflow"]


def pytest_report_header() -> list[str]:
    versions = []
    for dist in ("numpy", "pandas", "torch", "jax", "optax", "tensorflow-cpu", "keras"):
        try:
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{dist} (not installed)")
    return ["crossgrad frameworks: " + ", ".join(versions)]


@pytest.fixture(params=BUILTIN_BACKENDS, ids=BUILTIN_BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    reason = registry.load_class(request.param).unavailable_reason()
    if reason:
        pytest.skip(f"{request.param}: {reason}")
    return str(request.param)


@pytest.fixture
def seed_case():
    (case,) = load_cases([CASES / "seed.yaml"])
    return case


def write_case(tmp_path: Path, text: str, name: str = "case.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def run_and_compare(cases, backends, reference="numpy"):
    """The compared results table of ``cases`` on ``backends`` (reference run first)."""
    from harness.run.runner import run
    from harness.verdict.compare import compare

    names = list(dict.fromkeys([reference, *backends]))
    return compare(run(cases, names), cases, reference)
