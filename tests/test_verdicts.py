"""Who is right, why, and where it starts: a deliberately wrong adapter is named as the one
off the oracle, with its first diverging quantity and the cause, and its repro command
reproduces just that pair."""

from __future__ import annotations

import shlex

import pandas as pd
import pytest
from adapters import WRONG_PARAM
from fake_plugins import register
from support import CASES

from harness.cli import main

TEST_ADAPTERS = {
    "wrong_bias": "adapters:WrongBiasGradientBackend",
    "half_precision": "adapters:HalfPrecisionBackend",
    "wrong_hidden": "adapters:WrongHiddenActivationBackend",
}


@pytest.fixture(autouse=True)
def test_adapters(monkeypatch):
    register(monkeypatch, TEST_ADAPTERS)


def summary_row(out, case: str, backend: str) -> dict[str, str]:
    """The summary.md table row of one pair, by column name."""
    lines = (out / "summary.md").read_text().splitlines()
    header = next(line for line in lines if line.startswith("| case |"))
    names = [cell.strip() for cell in header.strip("|").split("|")]
    for line in lines:
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        if cells[:2] == [case, backend]:
            return dict(zip(names, cells, strict=True))
    raise AssertionError(f"no summary row for {case} on {backend}")


def test_a_wrong_gradient_is_named_off_the_oracle_with_its_first_divergence_and_cause(
    tmp_path, capsys
):
    status = main(["run", str(CASES / "seed.yaml"), "-b", "wrong_bias", "--out", str(tmp_path)])
    assert status == 1
    row = summary_row(tmp_path, "seed-1-1-1", "wrong_bias")
    assert row["status"] == "diverged"
    assert row["first divergence"].startswith(f"step 0 grad {WRONG_PARAM}[0]")
    assert row["cause"] == "semantic"  # the float64 control run is wrong too
    assert row["off the oracle"].startswith("wrong_bias (")
    assert summary_row(tmp_path, "seed-1-1-1", "numpy")["status"] == "ok"
    table = pd.read_csv(tmp_path / "results.csv", keep_default_na=False)
    diverged = table[table["status"] == "diverged"]
    assert set(diverged["backend"]) == {"wrong_bias"}
    assert set(diverged["cause"]) == {"semantic"}
    first = diverged[(diverged["quantity"] == "grad") & (diverged["param"] == WRONG_PARAM)].iloc[0]
    reference = table[
        (table["backend"] == "numpy")
        & (table["quantity"] == "grad")
        & (table["param"] == WRONG_PARAM)
    ].iloc[0]
    # The reference is within float32's tolerance (rtol 1e-5) of the oracle; the wrong
    # value is 0.1% off.
    assert float(reference["oracle_err"]) < 1e-5 * abs(float(reference["oracle"]))
    assert float(first["oracle_err"]) > 5e-4 * abs(float(first["oracle"]))


def test_a_low_precision_bug_is_triaged_as_precision(tmp_path):
    status = main(
        ["run", str(CASES / "mlp-nonsquare.yaml"), "-b", "half_precision", "--out", str(tmp_path)]
    )
    assert status == 1
    table = pd.read_csv(tmp_path / "results.csv", keep_default_na=False)
    mine = table[table["backend"] == "half_precision"]
    float32 = mine[mine["dtype"] == "float32"]
    assert "diverged" in set(float32["status"])
    assert set(float32.loc[float32["status"] == "diverged", "cause"]) == {"precision"}
    # The float64 case computes in float64 and agrees: nothing to triage there.
    assert set(mine.loc[mine["dtype"] == "float64", "status"]) == {"ok"}
    case = "mlp-3-4-2[network.activation=tanh,optimizer.momentum=0.0]"
    assert summary_row(tmp_path, case, "half_precision")["cause"] == "precision"


def test_a_wrong_hidden_layer_is_localized_to_that_layer_before_the_output(tmp_path):
    main(["run", str(CASES / "mlp-nonsquare.yaml"), "-b", "wrong_hidden", "--out", str(tmp_path)])
    row = summary_row(tmp_path, "mlp-3-4-2-f64", "wrong_hidden")
    assert row["first divergence"].startswith("step 0 activation layers.0[")
    assert row["cause"] == "semantic"
    assert row["off the oracle"].startswith("wrong_hidden (")


def test_first_divergence_follows_backprop_order_from_the_last_layer_back():
    from harness.verdict.localize import first_divergence

    def row(quantity, param, status="diverged", step=0, index=0):
        return {
            "step": step,
            "quantity": quantity,
            "param": param,
            "index": index,
            "status": status,
        }

    rows = pd.DataFrame(
        [
            row("grad", "layers.0.weight"),
            row("grad", "layers.1.weight"),
            row("grad", "layers.1.bias"),
            row("param", "layers.0.weight", step=0),
            row("activation", "layers.0", status="ok"),
        ]
    )
    assert first_divergence(rows)["param"] == "layers.1.bias"
    rows.loc[4, "status"] = "diverged"
    assert first_divergence(rows)["quantity"] == "activation"
    assert first_divergence(rows.assign(status="ok")) is None


def test_the_repro_command_reruns_just_that_case_on_just_that_backend(tmp_path, monkeypatch):
    report = tmp_path / "report"
    main(["run", str(CASES / "mlp-nonsquare.yaml"), "-b", "wrong_bias", "--out", str(report)])
    commands = (report / "repro" / "commands.sh").read_text().splitlines()
    # Every case of the file diverges on wrong_bias: one command per pair.
    assert len(commands) == 5
    assert "## Reproduce" in (report / "summary.md").read_text()
    words = shlex.split(commands[0])
    assert words[:2] == ["crossgrad", "run"]
    assert words[2].startswith(str(report / "repro"))  # the copied case file
    monkeypatch.chdir(tmp_path)
    assert main(words[1:]) == 1
    table = pd.read_csv(tmp_path / "reports" / "repro" / "results.csv", keep_default_na=False)
    assert table["case"].nunique() == 1
    assert set(table["backend"]) == {"numpy", "wrong_bias"}


def test_a_known_divergence_has_cause_known_and_needs_no_control_run():
    from support import run_and_compare

    from harness.cases.loader import load_cases
    from harness.verdict.triage import assign_causes

    cases = load_cases([CASES / "seed.yaml"])
    table = run_and_compare(cases, ["wrong_bias"])
    registered = table["status"] == "diverged"
    table.loc[registered, "status"] = "known"  # as the known-divergence registry marks it
    causes = assign_causes(table, cases, "numpy")
    assert set(causes.loc[registered, "cause"]) == {"known"}
    assert set(causes.loc[~registered, "cause"]) == {""}
