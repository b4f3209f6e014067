"""docs/adding-an-adapter.md: its example adapter, run as written, passes the kit."""

from __future__ import annotations

import re
import tomllib

import pytest
from fake_plugins import register
from support import ROOT

from backends import registry
from harness.conformance.battery import battery, check_adapter

GUIDE = (ROOT / "docs" / "adding-an-adapter.md").read_text(encoding="utf-8")
EXAMPLES = dict(re.findall(r"<!-- example: (\S+) -->\n```\w+\n(.*?)```", GUIDE, re.DOTALL))


@pytest.fixture
def example_adapter(tmp_path, monkeypatch):
    package = tmp_path / "crossgrad_minitorch"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "adapter.py").write_text(EXAMPLES["adapter.py"], encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    project = tomllib.loads(EXAMPLES["pyproject.toml"])["project"]
    register(monkeypatch, project["entry-points"]["crossgrad.backends"], project["name"])
    return "minitorch"


def test_the_guide_has_every_example_file():
    assert set(EXAMPLES) == {"pyproject.toml", "adapter.py", "conftest.py", "test_conformance.py"}


# Full tier: the whole conformance battery on the example adapter.
@pytest.mark.full
def test_the_example_adapter_passes_the_conformance_kit(example_adapter):
    results, table = check_adapter(example_adapter)
    statuses = {r.check: r.status for r in results}
    assert not [r for r in results if r.failed], table
    assert statuses["capabilities"] == "pass"  # relu, adam, float16, ... are declined
    assert statuses["finite-difference"] == "pass"
    assert {"activation[tanh]", "optimizer[sgd]", "dtype[float64]"} <= set(statuses)
    assert statuses["lazy-import"] == "pass"  # it imports torch in __init__
    assert statuses["optimizer[sgd+nesterov+weight_decay]"] == "pass"
    assert not [name for name in statuses if name.startswith("optimizer[adam")]


def _check_table() -> set[str]:
    """The check names in the first column of the guide's table of checks."""
    table = GUIDE[GUIDE.index("| check | what it proves |") :].split("\n\n")[0]
    return {
        name
        for row in table.splitlines()[2:]
        for name in re.findall(r"`([^`]+)`", row.split(" | ")[0])
    }


def test_the_guide_lists_every_check_of_the_battery():
    listed = _check_table()
    for check in battery(registry.load_class("numpy")):  # every option declared
        family = re.sub(r"\[([^]]+)\]", lambda m: "[X+ARGS]" if "+" in m[1] else "[X]", check.name)
        assert family in listed, check.name
        if family == "optimizer[X+ARGS]":  # and each argument check by name
            assert f"`{check.name.removeprefix('optimizer[')[:-1]}`" in GUIDE, check.name


def test_the_guide_test_files_are_the_ones_the_keras_plugin_uses():
    plugin_tests = ROOT / "plugins" / "crossgrad-keras" / "tests"
    assert EXAMPLES["conftest.py"].strip() in (plugin_tests / "conftest.py").read_text()
    assert (
        EXAMPLES["test_conformance.py"].strip()
        in (plugin_tests / "test_conformance.py").read_text()
    )


def test_the_guide_names_the_pytest_setting_the_plugin_reads():
    settings = tomllib.loads(EXAMPLES["pyproject.toml"])["tool"]["pytest"]["ini_options"]
    assert settings == {"crossgrad_adapter": "minitorch"}
