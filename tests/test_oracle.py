"""The accuracy oracle: float64 and 50-digit values agree, and the reference's gradients
match central finite differences, on every case in cases/."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from finite_differences import finite_difference_error
from support import CASES, run_and_compare

from harness.cases.inputs import make_inputs
from harness.cases.loader import load_cases
from harness.verdict import oracle, oracle_mp

ALL_CASES = load_cases([CASES])
IDS = [case.name for case in ALL_CASES]
FD_MAX_PARAMS = 2_000
# Edge cases built to sit where finite differences or float64 cannot follow, on purpose.
FD_NOT_APPLICABLE = {
    "edge-relu-zero": "a pre-activation exactly at the relu kink: a central difference straddles two slopes",
    "edge-sigmoid-saturated": "gradients near 1e-16 are below what a difference of float64 losses resolves",
    "edge-bce-near-0-and-1": "outputs 1e-8 from 0 and 1: the loss's curvature swamps a 1e-6 step",
    "edge-bce-moderate": "the two rows' bias gradients cancel to about 0: no relative error to speak of",
    "fuzz-adam-float16-tiny-eps-zero-gradient": "a relu pre-activation exactly at 0: as edge-relu-zero",
    "fuzz-gelu-negative-tail": "gradients near 1e-12 in GELU's tail: below what a loss difference resolves",
    "fuzz-tanh-output-saturated-adamw": "gradients near 1e-7 through a saturated tanh: as edge-sigmoid-saturated",
    "fuzz-elu-hidden-saturated-rmsprop": "weights of 1e-21 after saturated elus: far below a loss difference",
}
# 1 − o cancels for outputs 9e-9 from 1: float64 loses 8 digits there (measured 1.9e-11
# relative on the loss), which is why the 50-digit oracle exists.
ILL_CONDITIONED_RTOL = {"edge-bce-near-0-and-1": 1e-10}


def _base_name(case) -> str:
    return case.name.split("[", 1)[0]


@pytest.mark.parametrize("case", ALL_CASES, ids=IDS)
def test_the_float64_oracle_agrees_with_50_digit_arithmetic(case):
    inputs = make_inputs(case)
    if not oracle_mp.feasible(case, inputs.x.shape[0]):
        pytest.skip("too large for the 50-digit oracle (oracle_mp.MAX_WORK): float64 only")
    exact = oracle_mp.first_step(case, inputs)
    assert exact is not None
    exact_frame = pd.DataFrame(exact, columns=["step", "quantity", "param", "index", "exact"])
    float64 = pd.DataFrame(oracle.NumpyBackend().run(oracle.control_case(case), inputs).rows())
    both = float64.merge(exact_frame, on=["step", "quantity", "param", "index"])
    assert len(both) == len(exact_frame)  # every 50-digit value has its float64 counterpart
    assert set(both["quantity"]) >= {"output", "loss", "grad"}
    rtol = ILL_CONDITIONED_RTOL.get(case.name, 1e-12)
    np.testing.assert_allclose(both["value"], both["exact"], rtol=rtol, atol=1e-15)


@pytest.mark.parametrize("case", ALL_CASES, ids=IDS)
def test_reference_gradients_match_central_finite_differences(case):
    if _base_name(case) in FD_NOT_APPLICABLE:
        pytest.skip(FD_NOT_APPLICABLE[_base_name(case)])
    if sum(p.size for p in make_inputs(case).params.values()) > FD_MAX_PARAMS:
        pytest.skip(f"more than {FD_MAX_PARAMS} parameters: two forward passes each is slow")
    # Central differences in float64 are good to about h² + eps/h ≈ 1e-10 relative with
    # h = 1e-6; 1e-6 leaves room for curvature and is still far below any real bug.
    assert finite_difference_error(case, make_inputs(case)) < 1e-6


def test_finite_differences_catch_a_wrong_gradient(monkeypatch):
    """The check can fail: a reference whose bias gradient is 0.1% off is caught."""
    from backends.numpy import eager

    (case,) = load_cases([CASES / "seed.yaml"])
    original = eager.NumpyModel.train_step

    def wrong(self):
        loss, grads = original(self)
        grads["layers.1.bias"] = grads["layers.1.bias"] * 1.001
        return loss, grads

    monkeypatch.setattr(eager.NumpyModel, "train_step", wrong)
    assert finite_difference_error(case, make_inputs(case)) > 1e-4


def test_every_row_carries_its_oracle_value_and_error():
    cases = load_cases([CASES / "mlp-nonsquare.yaml"])
    table = run_and_compare(cases, ["numpy"])
    assert table["oracle"].notna().all()
    np.testing.assert_array_equal(table["oracle_err"], (table["value"] - table["oracle"]).abs())
    float64 = table[table["dtype"] == "float64"]
    float32 = table[table["dtype"] == "float32"]
    # The float64 reference is the oracle up to rounding; float32 is visibly farther off.
    assert (float64["oracle_err"] <= 1e-12 * (1 + float64["oracle"].abs())).all()
    assert float32["oracle_err"].max() > 1e-9
    assert float32["oracle_err"].max() < 1e-4


def test_a_sigmoid_saturated_even_at_50_digits_leaves_bce_without_an_exact_step(tmp_path):
    # z = 2**12: sigmoid(z) rounds to exactly 1 at 50 digits, so bce's slope divides by 0.
    case = tmp_path / "saturated.yaml"
    case.write_text(
        "name: saturated\n"
        "network:\n  sizes: [1, 1]\n  output_activation: sigmoid\n"
        "  params: {layers.0.weight: [[4096.0]], layers.0.bias: [0.0]}\n"
        "data: {x: [[1.0]], y: [[0.5]]}\n"
        "loss: bce\noptimizer: {name: sgd, lr: 0.1}\nsteps: 1\ndtype: float64\n",
        encoding="utf-8",
    )
    (loaded,) = load_cases([case])
    inputs = make_inputs(loaded)
    assert oracle_mp.first_step(loaded, inputs) is None
    columns = oracle.oracle_rows(loaded, inputs)  # the float64 control stands
    assert len(columns["oracle"]) > 0
