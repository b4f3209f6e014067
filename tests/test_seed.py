"""The seed network reproduces the article's published values on every backend."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from support import CASES, ROOT

from backends import registry
from harness.cases.inputs import make_inputs

# The article's printed values (docs/spec.md §1.2), 4 decimals.
ARTICLE = {
    "a_l2": 0.8506,
    "layers.0.weight": 1.5814,
    "layers.0.bias": -0.1383,
    "layers.1.weight": 2.4529,
    "layers.1.bias": -0.1062,
    "updated_a_l2": 0.8515,
}


def test_seed_reproduces_the_article(backend_name, seed_case):
    trace = registry.create(backend_name).run(seed_case, make_inputs(seed_case))
    assert round(float(trace.output.item()), 4) == ARTICLE["a_l2"]
    for name in ("layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"):
        assert round(float(trace.params[-1][name].item()), 4) == ARTICLE[name], name
    assert round(float(trace.output_after.item()), 4) == ARTICLE["updated_a_l2"]


def test_seed_gradients_match_the_articles_hand_backprop(backend_name, seed_case):
    """The article's plain-Python backprop, in float64, is the yardstick for every gradient."""
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    a0, w1, b1, w2, b2 = 0.8, 1.58, -0.14, 2.45, -0.11
    z1 = w1 * a0 + b1
    a1 = sigmoid(z1)
    z2 = w2 * a1 + b2
    a2 = sigmoid(z2)
    dc_db2 = sigmoid(z2) * (1 - sigmoid(z2)) * 2 * (a2 - 1)
    dc_db1 = sigmoid(z1) * (1 - sigmoid(z1)) * w2 * dc_db2
    expected = {
        "layers.0.weight": a0 * dc_db1,
        "layers.0.bias": dc_db1,
        "layers.1.weight": a1 * dc_db2,
        "layers.1.bias": dc_db2,
    }
    trace = registry.create(backend_name).run(seed_case, make_inputs(seed_case))
    for name, value in expected.items():
        assert trace.grads[0][name].item() == pytest.approx(value, rel=1e-5), name


@pytest.mark.full  # a subprocess importing every framework
def test_cli_run_on_the_seed_exits_0_with_all_four_backends_ok(tmp_path):
    out = tmp_path / "report"
    result = subprocess.run(
        [sys.executable, "-m", "harness", "run", str(CASES / "seed.yaml"), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    table = pd.read_csv(out / "results.csv")
    # Every installed backend runs by default: the four built-ins, and any plugin adapter
    # installed on this machine.
    assert {"jax", "numpy", "tensorflow", "torch"} <= set(table["backend"])
    assert set(table["status"]) == {"ok"}
    checked = table.dropna(subset=["expected"])
    # output, 4 updated parameters and output_after, on each backend
    assert len(checked) == 6 * table["backend"].nunique()
    assert (checked["value"].round(4) == checked["expected"]).all()
    assert (out / "results.parquet").exists()
    assert "seed-1-1-1" in (out / "summary.md").read_text()
