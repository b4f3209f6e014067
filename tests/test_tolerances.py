"""The default tolerances catch a one-part-in-10^4 gradient error and raise no false alarm.

The false-alarm half is the library run (test_library.py: torch and jax agree with the
reference on every case) and tests/test_cancellation.py. Here an error of 1e-4 relative is
injected into the first-step gradient of each parameter of each float32 case, one
parameter at a time, and must be flagged at that parameter wherever some element of it is
detectable: an element whose terms cancel more than about a hundredfold is allowed the
rounding error of those terms (docs/tolerances.md), so 1e-4 of it may be within tolerance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from support import CASES

from harness.cases.loader import load_cases
from harness.run.runner import run
from harness.verdict.compare import compare

INJECTED = 1e-4
FLOAT32_CASES = [case for case in load_cases([CASES]) if case.dtype == "float32"]
FUZZ_FINDINGS = "fuzz-findings.yaml"


def detectable_params(case, reference: pd.DataFrame) -> pd.Series:
    """Per first-step gradient parameter: whether some element's 1e-4 relative change
    exceeds its tolerance atol + rtol·magnitude."""
    table = compare(reference, [case], "numpy")
    grads = table[(table["quantity"] == "grad") & (table["step"] == 0)]
    visible = INJECTED * grads["value"].abs() > grads["tol"]
    return visible.groupby(grads["param"]).any()


# Full tier: one reference run per float32 case; the floor test below covers them all at once.
@pytest.mark.full
@pytest.mark.parametrize("case", FLOAT32_CASES, ids=[c.name for c in FLOAT32_CASES])
def test_a_1e4_gradient_error_is_flagged_at_that_parameter(case):
    reference = run([case], ["numpy"])
    visible = detectable_params(case, reference)
    detectable = visible[visible].index
    injected = []
    for param in detectable:
        rows = (
            (reference["quantity"] == "grad")
            & (reference["step"] == 0)
            & (reference["param"] == param)
        )
        values = np.where(rows, reference["value"] * (1 + INJECTED), reference["value"])
        injected.append(reference.assign(backend=f"inject:{param}", value=values))
    if not injected:
        pytest.skip(f"every gradient of {case.name} is below the detection floor")
    table = compare(pd.concat([reference, *injected], ignore_index=True), [case], "numpy")
    for param in detectable:
        flagged = table[(table["backend"] == f"inject:{param}") & (table["status"] == "diverged")]
        assert not flagged.empty, f"{case.name}: 1e-4 error in grad {param} not flagged"
        first = flagged.iloc[0]
        assert (first["step"], first["quantity"], first["param"]) == (0, "grad", param)


def test_most_float32_gradients_are_above_the_detection_floor():
    """The floor excludes only gradients that are tiny or cancelling by design. The fuzz
    findings are left out: a tiny or cancelling gradient is what made most of them findings."""
    written = [case for case in FLOAT32_CASES if f"{FUZZ_FINDINGS}:" not in case.source]
    table = run(written, ["numpy"])
    by_case = {c.name: c for c in written}
    visible = pd.concat(
        {name: detectable_params(by_case[name], rows) for name, rows in table.groupby("case")}
    )
    hidden = visible[~visible]
    assert len(hidden) / len(visible) < 0.1, hidden.to_string()
    assert set(hidden.index.get_level_values(0)) <= {
        "edge-bce-moderate[dtype=float32]",
        "edge-sigmoid-saturated[dtype=float32]",
        "loss-bce[dtype=float32]",
    }, hidden.to_string()


@pytest.mark.parametrize(
    ("value", "reference", "status"),
    [
        (np.inf, np.inf, "ok"),
        (-np.inf, -np.inf, "ok"),
        (np.nan, np.nan, "ok"),
        (1.0, np.inf, "diverged"),  # an infinite reference makes atol + rtol·|ref| infinite
        (-np.inf, np.inf, "diverged"),
        (np.inf, 1.0, "diverged"),
        (np.nan, 1.0, "diverged"),
        (1.0, np.nan, "diverged"),
        (np.inf, np.nan, "diverged"),
    ],
)
def test_nan_agrees_only_with_nan_and_an_infinity_only_with_the_same_infinity(
    seed_case, value, reference, status
):
    """docs/spec.md §6.4: whatever the tolerance, special values agree only with themselves."""
    reference_rows = run([seed_case], ["numpy"])
    loss = (reference_rows["quantity"] == "loss").to_numpy()
    mine = reference_rows.assign(
        backend="special", value=np.where(loss, value, reference_rows["value"])
    )
    reference_rows = reference_rows.assign(value=np.where(loss, reference, reference_rows["value"]))
    table = compare(pd.concat([reference_rows, mine], ignore_index=True), [seed_case], "numpy")
    row = table[(table["backend"] == "special") & (table["quantity"] == "loss")].iloc[0]
    assert row["status"] == status
