"""The fifth framework, Keras 3 on PyTorch, added only through the plugin route.

Skipped where plugins/crossgrad-keras is not installed (the README's test command installs
it). It must pass the conformance battery, run every case with its divergences triaged,
and its package's own suite must pass through crossgrad's pytest plugin.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from support import ROOT

from backends import registry
from harness.cli import main

PLUGIN = ROOT / "plugins" / "crossgrad-keras"

pytestmark = pytest.mark.skipif(
    "keras_torch" not in registry.entries(),
    reason="crossgrad-keras not installed (pip install -e plugins/crossgrad-keras)",
)


def test_it_is_registered_by_its_entry_point(capsys):
    assert registry.entries()["keras_torch"].source == "plugin crossgrad-keras"
    assert main(["backends"]) == 0
    lines = capsys.readouterr().out.splitlines()
    line = next(text for text in lines if text.startswith("keras_torch"))
    assert "available" in line and line.endswith("plugin crossgrad-keras")


@pytest.mark.full  # imports Keras and torch, runs the whole battery
def test_it_passes_the_conformance_kit(capsys):
    assert main(["check-adapter", "keras_torch"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out
    assert out.rstrip().endswith(" 0 failed")


@pytest.mark.full  # the whole library on Keras
def test_it_runs_every_case_with_its_divergences_triaged(tmp_path, capsys):
    assert main(["run", "cases", "--backend", "keras_torch", "--out", str(tmp_path)]) == 0
    assert "stale" not in capsys.readouterr().err
    table = pd.read_parquet(tmp_path / "results.parquet")
    mine = table[table["backend"] == "keras_torch"]
    assert set(mine["status"]) <= {"ok", "known", "skipped"}
    assert (mine["status"] == "ok").sum() > (mine["status"] == "known").sum() / 2
    skipped = mine.loc[mine["status"] == "skipped", "detail"]
    assert skipped.str.contains("no dampening argument").all()
    # Keras computes in a child of the worker: the adapter reports that process's settings.
    run = json.loads((tmp_path / "run.json").read_text())
    settings = run["determinism"]["backends"]["keras_torch"]["adapter"]
    assert settings["keras_backend"] == "torch"
    assert settings["torch.deterministic_algorithms"] is True
    assert settings["torch.get_num_threads"] == 1


@pytest.mark.full  # a pytest subprocess importing keras and torch
def test_its_own_suite_passes_through_the_pytest_plugin():
    # PYTHONPATH: the package's suite must import this checkout's harness, wherever
    # crossgrad itself was installed from.
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        cwd=PLUGIN,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "xfailed" in result.stdout  # the triaged Keras optimizer differences
