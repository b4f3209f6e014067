"""The environment a report records: the versions of what ran, each setting once, and each
backend's settings as its own worker read them back, a plugin's own report included."""

from __future__ import annotations

import importlib.metadata
import json
import os

import pytest
from fake_plugins import TEST_DISTRIBUTION, register
from support import CASES

from harness.cli import main
from harness.run import fingerprint
from harness.run.fingerprint import NOT_INSTALLED, THREAD_VARIABLES

SEED = str(CASES / "seed.yaml")


@pytest.fixture(autouse=True)
def test_adapters(monkeypatch):
    register(
        monkeypatch,
        {
            "echo": "fake_plugins:EchoPluginBackend",
            "ghost": "fake_plugins:MissingFrameworkBackend",
            "settings": "fake_plugins:SettingsPluginBackend",
            "broken_settings": "fake_plugins:BrokenSettingsPluginBackend",
        },
    )


def _report(out):
    (environment,) = json.loads((out / "environment.json").read_text())
    run = json.loads((out / "run.json").read_text())
    summary = (out / "summary.md").read_text()
    table = summary[summary.index("## Environment") :].splitlines()
    rows = [line.strip("|").split(" | ") for line in table if line.startswith("| ")]
    return environment, run, {cells[0].strip(): cells[1].strip() for cells in rows[1:]}, rows


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
    environment, _, table, _ = _report(tmp_path)
    versions = environment["versions"]
    assert versions[TEST_DISTRIBUTION] == NOT_INSTALLED  # echo's plugin distribution
    assert versions["numpy"] == importlib.metadata.version("numpy")
    assert "torch" not in versions and "tensorflow-cpu" not in versions
    assert table[TEST_DISTRIBUTION] == NOT_INSTALLED


def test_the_environment_table_shows_each_setting_once_and_each_worker_s_own_values(tmp_path):
    assert main(["run", SEED, "-b", "jax", "--out", str(tmp_path)]) == 0
    environment, run, table, rows = _report(tmp_path)
    names = [cells[0].strip() for cells in rows[1:]]
    assert len(names) == len(set(names)), names
    for variable in THREAD_VARIABLES[:4]:  # OMP, MKL, OPENBLAS, XLA: once, not twice
        assert names.count(variable) == 1
        assert environment["threads"][variable] == table[variable]
        assert variable not in environment["determinism"]
    # What summary.md shows per backend is what its worker recorded in run.json.
    recorded = run["determinism"]["backends"]
    assert environment["backends"] == recorded
    assert recorded["jax"]["flags"] == {
        "jax_enable_x64": True,
        "jax_default_matmul_precision": "highest",
    }
    for backend, record in recorded.items():
        for part in ("threads", "flags", "adapter"):
            for name, value in record[part].items():
                assert table[f"{backend}: {name}"] == str(value)
    # No unlabelled framework flag: the run's own process computes nothing of a backend's.
    assert "jax_enable_x64" not in table and "jax_enable_x64" not in environment["determinism"]


def test_an_older_environment_json_still_shows_each_variable_once():
    older = {
        "python": "3.11.7",
        "threads": {"OMP_NUM_THREADS": "1", "torch.get_num_threads": 1},
        "determinism": {"OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0", "jax_enable_x64": True},
    }
    lines = fingerprint.markdown([older])
    assert sum(line.startswith("| OMP_NUM_THREADS |") for line in lines) == 1
    assert "| jax_enable_x64 | True |" in lines
    # A merged report's inputs may come from anywhere: a malformed record is left out.
    odd = [{"backends": ["jax"]}, {"backends": {"jax": {"flags": "x64", "threads": {"n": 1}}}}]
    assert "| jax: n |  | 1 |" in fingerprint.markdown(odd)


def test_a_plugin_records_its_own_determinism_settings_from_its_worker(tmp_path):
    assert main(["run", SEED, "-b", "settings", "--out", str(tmp_path)]) == 0
    environment, run, table, _ = _report(tmp_path)
    record = run["determinism"]["backends"]["settings"]
    assert environment["backends"]["settings"] == record
    adapter = dict(record["adapter"])
    assert adapter.pop("pid") != os.getpid()  # called in the backend's worker process
    assert adapter == {
        "deterministic": True,
        "threads": 1,  # what __init__ set: called once the adapter is built
        "pools": {"intra_op": 1, "inter_op": 1},
        "dtype": "float32",
    }
    assert run["determinism"]["backends"]["numpy"]["adapter"] == {}  # the default
    assert table["settings: deterministic"] == "True"
    assert table["settings: pools.intra_op"] == "1"


def test_a_failing_settings_report_is_recorded_and_the_run_goes_on(tmp_path):
    assert main(["run", SEED, "-b", "broken_settings", "--out", str(tmp_path)]) == 0
    _, run, _, _ = _report(tmp_path)
    assert run["determinism"]["backends"]["broken_settings"]["adapter"] == {
        "error": "determinism_settings() raised RuntimeError: simulated settings failure"
    }
