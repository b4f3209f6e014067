"""The conformance battery as a pytest plugin, run the way an adapter package's suite runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT

CONFTEST = """\
import sys
sys.path[:0] = [{root!r}, {tests!r}]
from fake_plugins import register
register(None, {{"sigmoid_slope": "conformance_adapters:SigmoidSlopeBackend"}})
pytest_plugins = ["harness.conformance.pytest_plugin"]
"""

TEST_FILE = """\
from harness.conformance.pytest_plugin import assert_conforms


def test_conformance(crossgrad_result):
    assert_conforms(crossgrad_result)
"""


def run_suite(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(
        CONFTEST.format(root=str(ROOT), tests=str(ROOT / "tests")), encoding="utf-8"
    )
    (tmp_path / "test_adapter_conformance.py").write_text(TEST_FILE, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rf", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )


@pytest.mark.full  # a pytest subprocess
def test_a_correct_adapter_passes_one_item_per_check(tmp_path):
    result = run_suite(tmp_path, "--crossgrad-adapter", "numpy", "-v")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "test_conformance[optimizer[adam]] PASSED" in result.stdout
    assert "test_conformance[finite-difference] PASSED" in result.stdout


@pytest.mark.full  # a pytest subprocess
def test_a_wrong_adapter_fails_the_items_it_gets_wrong_with_plain_words(tmp_path):
    result = run_suite(tmp_path, "--crossgrad-adapter", "sigmoid_slope")
    assert result.returncode == 1
    assert (
        "FAILED test_adapter_conformance.py::test_conformance[finite-difference]" in result.stdout
    )
    assert "finite-difference: float64: grad of layers.0.weight[0] is" in result.stdout
    assert "the backward pass does not match the forward pass" in result.stdout
    assert "test_conformance[activation[tanh]]" not in result.stdout  # it passed


@pytest.mark.full  # a pytest subprocess each
@pytest.mark.parametrize("args", [(), ("--crossgrad-adapter", "")], ids=["unset", "empty"])
def test_an_unnamed_adapter_is_an_error_saying_how_to_name_it(tmp_path, args):
    result = run_suite(tmp_path, *args)
    assert result.returncode == 2  # an error during collection
    assert "set `crossgrad_adapter` in the pytest configuration" in result.stdout
