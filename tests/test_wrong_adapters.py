"""A wrong or crashing adapter is reported where it goes wrong, and nothing else is lost."""

from __future__ import annotations

import pandas as pd
import pytest
from adapters import WRONG_PARAM
from fake_plugins import register
from support import CASES

from harness.cli import main


@pytest.fixture(autouse=True)
def test_adapters(monkeypatch):
    register(
        monkeypatch,
        {"wrong_bias": "adapters:WrongBiasGradientBackend", "crashing": "adapters:CrashingBackend"},
    )


@pytest.mark.parametrize("case_file", ["seed.yaml", "mlp-nonsquare.yaml"])
def test_a_bias_gradient_off_by_a_thousandth_is_diverged_at_that_parameter(
    tmp_path, capsys, case_file
):
    status = main(
        ["run", str(CASES / case_file), "--backend", "wrong_bias", "--out", str(tmp_path)]
    )
    assert status == 1
    table = pd.read_csv(tmp_path / "results.csv")
    wrong = table[table["backend"] == "wrong_bias"]
    diverged = wrong[wrong["status"] == "diverged"]
    first = diverged.iloc[0]
    assert (first["step"], first["quantity"], first["param"]) == (0, "grad", WRONG_PARAM)
    # Every gradient row of every other parameter at the first step still agrees.
    first_grads = wrong[(wrong["step"] == 0) & (wrong["quantity"] == "grad")]
    assert set(first_grads.loc[first_grads["param"] != WRONG_PARAM, "status"]) == {"ok"}
    # The forward pass before the update agrees too: the divergence starts at that gradient.
    assert set(wrong.loc[wrong["quantity"] == "output", "status"]) == {"ok"}
    printed = capsys.readouterr().out
    assert f"step 0 grad {WRONG_PARAM}" in printed


def test_a_crash_is_a_crashed_row_and_the_other_backends_are_intact(tmp_path, capsys):
    status = main(
        [
            "run",
            str(CASES / "mlp-nonsquare.yaml"),
            "-b",
            "crashing",
            "-b",
            "torch",
            "--out",
            str(tmp_path),
        ]
    )
    assert status == 1
    table = pd.read_csv(tmp_path / "results.csv", keep_default_na=False)
    crashed = table[table["backend"] == "crashing"]
    assert set(crashed["status"]) == {"crashed"}
    assert len(crashed) == table["case"].nunique()  # one row per case
    assert crashed["detail"].str.contains("RuntimeError: simulated framework failure").all()
    torch_rows = table[table["backend"] == "torch"]
    assert len(torch_rows) == len(table[table["backend"] == "numpy"])
    assert set(torch_rows["status"]) == {"ok"}
    assert "crashed" in capsys.readouterr().out
