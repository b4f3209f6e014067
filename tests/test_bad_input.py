"""Bad case files: exit 2, a message naming file:line:col and the key path, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
from support import ROOT, write_case

from harness.cli import main

GOOD = """\
name: ok-case
network:
  sizes: [1, 1, 1]
  params:
    layers.0.weight: [[1.58]]
    layers.0.bias: [-0.14]
    layers.1.weight: [[2.45]]
    layers.1.bias: [-0.11]
data:
  x: [[0.8]]
  y: [[1.0]]
loss: mse
optimizer: {name: sgd, lr: 0.1}
"""

BAD_INPUTS = {
    "unknown key": (
        GOOD + "optimiser: sgd\n",
        "14:1: optimiser: unknown key (did you mean 'optimizer'?)",
    ),
    "wrong type": (GOOD + "steps: three\n", "14:8: steps: expected an integer, got str 'three'"),
    "wrong shape": (
        GOOD.replace("layers.0.weight: [[1.58]]", "layers.0.weight: [[1.58, 2.0]]"),
        "5:22: network.params.layers.0.weight: expected shape (1, 1), got (1, 2)",
    ),
    "unknown activation": (
        GOOD.replace("  sizes: [1, 1, 1]\n", "  sizes: [1, 1, 1]\n  activation: sigmoidd\n"),
        "4:15: network.activation: unknown value 'sigmoidd' (did you mean 'sigmoid'?)",
    ),
    "missing key": (
        GOOD.replace("loss: mse\noptimizer: {name: sgd, lr: 0.1}\n", "loss: mse\n"),
        "1:1: optimizer: required key is missing",
    ),
    "malformed yaml": (GOOD.replace("  x: [[0.8]]", "  x: [[0.8]"), "invalid YAML"),
    "data width": (
        GOOD.replace("x: [[0.8]]", "x: [[0.8, 0.1]]"),
        "10:6: data.x: expected shape (batch, 1), got (1, 2)",
    ),
    "missing sgd lr": (
        GOOD.replace("{name: sgd, lr: 0.1}", "{name: sgd}"),
        "13:12: optimizer.lr: required by sgd",
    ),
}


@pytest.mark.parametrize("text, expected", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_case_file_is_exit_2_with_its_location(tmp_path, capsys, text, expected):
    path = write_case(tmp_path, text)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:" in err
    assert expected in err


def test_every_problem_of_a_file_is_reported_at_once(tmp_path, capsys):
    text = GOOD.replace("loss: mse", "loss: msee") + "steps: 0\nfoo: 1\n"
    path = write_case(tmp_path, text)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "3 problems" in err
    assert "loss: unknown value 'msee'" in err
    assert "steps: expected an integer in 1..100,000, got 0" in err
    assert "foo: unknown key" in err


def test_run_on_a_bad_file_exits_2_without_traceback(tmp_path):
    path = write_case(tmp_path, GOOD + "optimiser: sgd\n")
    result = subprocess.run(
        [sys.executable, "-m", "harness", "run", str(path), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 2
    assert f"{path}:14:1: optimiser: unknown key" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_unknown_backend_is_a_usage_error(tmp_path, capsys):
    path = write_case(tmp_path, GOOD)
    assert main(["run", str(path), "--backend", "pytorch", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "unknown backend 'pytorch'" in err
    assert "Expected one of" in err


def test_missing_path_is_exit_2(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nowhere.yaml")]) == 2
    assert "no such file or directory" in capsys.readouterr().err
