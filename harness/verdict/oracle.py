"""The accuracy oracle: each case recomputed in high precision, independent of any framework.

The oracle is the hand-written reference backprop run in float64 from the very same
starting numbers the low-precision run got (they are exactly representable in float64),
so ``|value - oracle|`` says how far each backend is from the truth, not from the
reference. Where the case is small enough, the forward pass, loss and gradients of the
first step are recomputed once more in 50-digit arithmetic (mpmath), and those values
replace the float64 ones: the oracle is then exact to the last float64 bit. The float64
reference gradients are checked against central finite differences by the test suite
(tests/finite_differences.py).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from backends.numpy.eager import NumpyBackend
from harness.cases.inputs import Inputs
from harness.cases.model import Case
from harness.verdict import oracle_mp


def control_case(case: Case) -> Case:
    """The same case in float64 with float64's default tolerance: the oracle and triage control."""
    return dataclasses.replace(case, dtype="float64", tolerance=None)


def oracle_rows(case: Case, inputs: Inputs) -> dict[str, np.ndarray]:
    """Columns ``step, quantity, param, index, oracle`` for every value a backend records."""
    rows = NumpyBackend().run(control_case(case), inputs).rows()
    oracle = rows["value"].copy()
    exact = oracle_mp.first_step(case, inputs)
    if exact is not None:
        # A dict lookup rather than a DataFrame merge: sweeps call this once per case.
        keys = zip(rows["step"], rows["quantity"], rows["param"], rows["index"], strict=True)
        position = {key: k for k, key in enumerate(keys)}
        for step, quantity, param, index, value in exact:
            k = position.get((step, quantity, param, index))
            if k is not None and not np.isnan(value):
                oracle[k] = value
    return {
        "case": np.full(len(oracle), case.name, dtype=object),
        **{key: rows[key] for key in ("step", "quantity", "param", "index")},
        "oracle": oracle,
    }


def add_oracle_error(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (with its ``oracle`` column) plus ``oracle_err`` = |value - oracle|."""
    value = table["value"].to_numpy(dtype=np.float64)
    oracle = table["oracle"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        error = np.abs(value - oracle)
    both_nan = np.isnan(value) & np.isnan(oracle)
    table["oracle_err"] = np.where(both_nan | (value == oracle), 0.0, error)
    return table


def normalize_keys(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["step"] = pd.to_numeric(frame["step"]).astype("Int64")
    index = pd.to_numeric(frame["index"])
    frame["index"] = index.where(index >= 0).astype("Int64")
    for column in ("case", "quantity", "param"):
        frame[column] = frame[column].astype(str)
    return frame
