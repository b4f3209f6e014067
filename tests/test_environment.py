"""The environment a report records: the versions of what ran."""

from __future__ import annotations

import importlib.metadata
import json

import pytest
from fake_plugins import TEST_DISTRIBUTION, register
from support import CASES

from harness.cli import main
from harness.run import fingerprint
from harness.run.fingerprint import NOT_INSTALLED

SEED = str(CASES / "seed.yaml")


@pytest.fixture(autouse=True)
def test_adapters(monkeypatch):
    register(
        monkeypatch,
        {
            "echo": "fake_plugins:EchoPluginBackend",
            "ghost": "fake_plugins:MissingFrameworkBackend",
        },
    )


def test_versions_list_crossgrad_its_comparison_libraries_and_the_backends_that_ran():
    found = fingerprint.versions(["numpy", "torch"])
    expected = ["crossgrad", "numpy", "pandas", "pyarrow", "mpmath"]
    assert list(found)[: len(expected)] == expected
    assert found["crossgrad"] == importlib.metadata.version("crossgrad")
    assert found["torch"] == importlib.metadata.version("torch")
    try:
        assert found["ml_dtypes"] == importlib.metadata.version("ml_dtypes")
    except importlib.metadata.PackageNotFoundError:
        assert "ml_dtypes" not in found
    # Not hard-coded: frameworks that did not run are not listed.
    assert not {"jax", "jaxlib", "optax", "tensorflow-cpu", "tensorflow", "keras"} & set(found)


def test_a_backend_whose_distribution_is_not_installed_is_listed_as_not_installed():
    found = fingerprint.versions(["ghost"])  # its class loads; its framework is missing
    assert found["crossgrad-no-such-framework"] == NOT_INSTALLED
    assert found[TEST_DISTRIBUTION] == NOT_INSTALLED  # the plugin's own distribution
    assert fingerprint.versions(["no-such-backend"])["crossgrad"]  # unknown: nothing to add


def test_a_plugin_run_lists_its_own_distribution_and_only_the_frameworks_that_ran(tmp_path):
    assert main(["run", SEED, "-b", "echo", "--out", str(tmp_path)]) == 0
    (environment,) = json.loads((tmp_path / "environment.json").read_text())
    versions = environment["versions"]
    assert versions[TEST_DISTRIBUTION] == NOT_INSTALLED  # echo's plugin distribution
    assert versions["numpy"] == importlib.metadata.version("numpy")
    assert "torch" not in versions and "tensorflow-cpu" not in versions
    assert f"| {TEST_DISTRIBUTION} | {NOT_INSTALLED} |" in (tmp_path / "summary.md").read_text()
