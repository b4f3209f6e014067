"""Fixtures (the built-in backends as a parametrized fixture, the seed case), the report
header, and the two test tiers.

Plain ``pytest`` is the inner loop: every module exercised on NumPy and at least one
framework, in under two minutes on two cores. ``pytest --full`` adds the tests marked
``full`` (every framework, subprocesses, the whole case library, determinism); CI, the
README's test command and ``nox -s tests`` run it. Shared helpers live in support.py.
"""

from __future__ import annotations

import importlib.metadata

import pytest
from support import BUILTIN_BACKENDS, CASES

from backends import registry
from harness.cases.loader import load_cases


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--full",
        action="store_true",
        help="run the full tier too: every framework, subprocesses, the case library",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--full"):
        return
    deselected = [item for item in items if item.get_closest_marker("full") is not None]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item.get_closest_marker("full") is None]


def pytest_report_header(config: pytest.Config) -> list[str]:
    versions = []
    for dist in ("numpy", "pandas", "torch", "jax", "optax", "tensorflow-cpu", "keras"):
        try:
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{dist} (not installed)")
    tier = "full (--full)" if config.getoption("--full") else "default (pytest --full for all)"
    return ["crossgrad frameworks: " + ", ".join(versions), f"crossgrad test tier: {tier}"]


# TensorFlow is the slowest framework to import and trace: the backend fixture runs it in
# the full tier only.
BACKEND_PARAMS = [
    pytest.param(name, marks=pytest.mark.full) if name == "tensorflow" else name
    for name in BUILTIN_BACKENDS
]


@pytest.fixture(params=BACKEND_PARAMS, ids=BUILTIN_BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    reason = registry.load_class(request.param).unavailable_reason()
    if reason:
        pytest.skip(f"{request.param}: {reason}")
    return str(request.param)


@pytest.fixture
def seed_case():
    (case,) = load_cases([CASES / "seed.yaml"])
    return case
