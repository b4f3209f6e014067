"""The conformance battery as a pytest plugin: one test item per check, for an adapter's own suite.

In the adapter package's ``conftest.py``::

    pytest_plugins = ["harness.conformance.pytest_plugin"]

name the adapter in the pytest configuration (``crossgrad_adapter = "myfw"`` under
``[tool.pytest.ini_options]``, or ``--crossgrad-adapter myfw``), optionally the triaged
divergences (``crossgrad_known = "path/to/known_divergences.yaml"``, relative to the
rootdir), and write one test::

    from harness.conformance.pytest_plugin import assert_conforms

    def test_conformance(crossgrad_result):
        assert_conforms(crossgrad_result)

Each check becomes its own item (``test_conformance[optimizer[adam]]``), so every failure is
reported, not just the first. A ``known`` result is an xfail, a ``skipped`` one a skip.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from backends import registry
from harness.conformance.battery import DEFAULT_REFERENCE, battery, open_kit
from harness.conformance.checks import FAIL, KNOWN, SKIPPED, Check, CheckResult, Kit
from harness.verdict.known import adapter_known, known_option

if TYPE_CHECKING:
    from collections.abc import Iterator


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("crossgrad", "crossgrad adapter conformance")
    group.addoption("--crossgrad-adapter", default=None, help="backend name to check")
    group.addoption("--crossgrad-reference", default=None, help="reference backend (numpy)")
    group.addoption("--crossgrad-known", default=None, help="known-divergences YAML file")
    parser.addini("crossgrad_adapter", "backend name the conformance battery checks")
    parser.addini("crossgrad_reference", "reference backend name", default=DEFAULT_REFERENCE)
    parser.addini("crossgrad_known", "known-divergences YAML file, relative to the rootdir")


def _setting(config: pytest.Config, name: str) -> str:
    value = config.getoption(f"--{name.replace('_', '-')}") or config.getini(name)
    if not value:
        raise pytest.UsageError(
            f"crossgrad conformance: set `{name}` in the pytest configuration or pass "
            f"--{name.replace('_', '-')} NAME"
        )
    return str(value)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "crossgrad_check" in metafunc.fixturenames:
        name = _setting(metafunc.config, "crossgrad_adapter")
        checks = battery(registry.load_class(name))
        metafunc.parametrize("crossgrad_check", checks, ids=[check.name for check in checks])


@pytest.fixture(scope="session")
def crossgrad_kit(pytestconfig: pytest.Config) -> Iterator[Kit]:
    """The adapter under test and the reference, created once per session."""
    name = _setting(pytestconfig, "crossgrad_adapter")
    reason = registry.load_class(name).unavailable_reason()
    if reason:
        pytest.skip(f"{name}: {reason}")
    known_file = pytestconfig.getoption("--crossgrad-known") or pytestconfig.getini(
        "crossgrad_known"
    )
    # The built-in entries and the adapter's own always apply; a named file adds to them.
    named = [str(pytestconfig.rootpath / known_file)] if known_file else None
    known = adapter_known([name], known_option(named))
    yield open_kit(name, _setting(pytestconfig, "crossgrad_reference"), known)


@pytest.fixture
def crossgrad_result(crossgrad_kit: Kit, crossgrad_check: Check) -> CheckResult:
    """This item's check, run on the adapter under test."""
    return crossgrad_check.run(crossgrad_kit)


def assert_conforms(result: CheckResult) -> None:
    """Fail with the first problem in plain words; known divergences xfail, declined cases skip."""
    if result.status == FAIL:
        pytest.fail(f"{result.check}: {result.detail}", pytrace=False)
    if result.status == KNOWN:
        pytest.xfail(f"{result.check}: known divergence: {result.detail}")
    if result.status == SKIPPED:
        pytest.skip(f"{result.check}: {result.detail}")
