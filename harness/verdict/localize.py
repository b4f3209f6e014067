"""Where a divergence starts, in the order the computation happens, and who is off the truth.

Within a step: the hidden activations layer by layer, the output, the loss, the gradients
from the last layer back (as backprop produces them: bias, then weight), the updated
parameters; ``output_after`` closes the last step. The first failing value in that order
is where a bug shows first; everything after it may be its consequence.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from harness.verdict.status import FAILING_OR_KNOWN

STAGES = ("activation", "output", "loss", "grad", "param", "output_after")
_LAYER = re.compile(r"layers\.(\d+)(?:\.(weight|bias))?$")


def computation_key(row: pd.Series) -> tuple[float, int, int, int, float]:
    """Sort key of one results row in computation order."""
    step = -1.0 if pd.isna(row["step"]) else float(row["step"])
    stage = STAGES.index(row["quantity"]) if row["quantity"] in STAGES else len(STAGES)
    match = _LAYER.match(str(row["param"]))
    layer = int(match.group(1)) if match else 0
    bias_first = 0 if match and match.group(2) == "bias" else 1
    if row["quantity"] == "grad":
        layer = -layer  # backprop: last layer first
    index = -1.0 if pd.isna(row["index"]) else float(row["index"])
    return step, stage, layer, bias_first, index


def first_divergence(rows: pd.DataFrame) -> pd.Series | None:
    """The pair's first failing row in computation order, or None when every row passes."""
    bad = rows[rows["status"].isin(FAILING_OR_KNOWN)]
    if bad.empty:
        return None
    keys = [computation_key(row) for _, row in bad.iterrows()]
    return bad.iloc[min(range(len(keys)), key=keys.__getitem__)]


def off_oracle(row: pd.Series, reference: str) -> str:
    """Which side of a diverged value is farther from the oracle, with both distances."""
    if pd.isna(row.get("oracle", np.nan)) or pd.isna(row["reference"]):
        return ""
    backend_err = float(row["oracle_err"])
    with np.errstate(invalid="ignore"):  # inf - inf is NaN, quietly: no side is nearer then
        reference_err = float(abs(row["reference"] - row["oracle"]))
    farther = row["backend"] if backend_err > reference_err else reference
    return f"{farther} ({row['backend']} {backend_err:.3g} from the oracle, {reference} {reference_err:.3g})"
